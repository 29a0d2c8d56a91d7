// The steps Medusa's module loader takes to load the Locking Module and its
// providers, and the module's service, reproduced for these tests. This is
// our own code (nothing of the framework is copied, and it has no awilix):
// each step cites the file and lines of medusajs/medusa it follows, at
// commit 59e6747800133e091d20c2c167f600981abc5c0d (develop, 2024-10-24:
// @medusajs/locking 2.0.0). Paths below are relative to that repository.
//
// Where it differs from the framework, it says so: the app's directory is a
// parameter (the framework uses process.cwd()), the framework's own require
// of a provider is made from the app's directory, and the in-memory provider
// is not reproduced (these tests always make raftlock the default).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

// ---- the container: awilix 8 as Medusa uses it ----
// packages/core/utils/src/common/medusa-container.ts (createMedusaContainer,
// lines 43-57; registerAdd, lines 20-41) on awilix's createContainer.

const SINGLETON = 'SINGLETON';

export const asValue = (value) => ({ resolve: () => value, isLeakSafe: true });
// asFunction(fn) calls fn with the cradle; .singleton() caches the result.
export function asFunction(fn, opts = {}) {
  const r = { resolve: (c) => fn(c.cradle), lifetime: opts.lifetime ?? 'TRANSIENT' };
  r.singleton = () => Object.assign(r, { lifetime: SINGLETON });
  return r;
}
export const aliasTo = (name) => ({ resolve: (c) => c.resolve(name) });

export function createContainer() {
  const registrations = {};
  const singletons = new Map();
  const c = {
    registrations,
    register(name, resolver) {
      if (typeof name === 'object') {
        for (const [k, r] of Object.entries(name)) c.register(k, r);
      } else {
        registrations[name] = resolver;
        singletons.delete(name);
      }
      return c;
    },
    hasRegistration: (name) => Object.hasOwn(registrations, name),
    resolve(name, { allowUnregistered = false } = {}) {
      const r = registrations[name];
      if (!r) {
        if (allowUnregistered) return undefined;
        // awilix's AwilixResolutionError
        throw new Error(`Could not resolve '${String(name)}'.`);
      }
      if (r.lifetime !== SINGLETON) return r.resolve(c);
      if (!singletons.has(name)) singletons.set(name, r.resolve(c));
      return singletons.get(name);
    },
    // medusa-container.ts lines 20-41: an array registration the values are added to.
    registerAdd(name, resolver) {
      const store = `${name}_STORE`;
      if (registrations[store] === undefined) c.register(store, asValue([]));
      const list = c.resolve(store);
      if (registrations[name] === undefined) c.register(name, { resolve: (cc) => list.map((r) => r.resolve(cc)) });
      list.unshift(resolver);
      return c;
    },
  };
  // awilix's cradle: a proxy that resolves on property access, and throws for
  // a name that is not registered.
  c.cradle = new Proxy({}, {
    get: (_, name) => (typeof name === 'symbol' ? undefined : c.resolve(name)),
    has: (_, name) => c.hasRegistration(name),
  });
  return c;
}

// ---- packages/core/utils/src/modules-sdk/module-provider-registration-key.ts, lines 8-19 ----
export function providerRegistrationKey(providerId, providerIdentifier) {
  return `__providers__${providerIdentifier ?? ''}${providerId ? `${providerIdentifier ? '_' : ''}${providerId}` : ''}`;
}

// ---- packages/core/utils/src/common/dynamic-import.ts (14-17) and resolve-exports.ts (1-10) ----
function dynamicImport(requireFrom, path) {
  let m = requireFrom(path);
  while (m && 'default' in m && m.default && 'default' in m.default) m = m.default;
  return m;
}

// ---- the Locking Module's service ----

const LOCKING_PROVIDER_PREFIX = 'lp_'; // packages/modules/locking/src/types/index.ts, line 9
const DEFAULT_PROVIDER = 'default_provider'; // same file, line 6
const IDENTIFIERS = 'locking_providers_identifier'; // same file, line 7

// packages/modules/locking/src/services/locking-provider.ts, lines 9-40.
class LockingProviderService {
  constructor(cradle) { this.cradle = cradle; }

  static registrationIdentifier(klass) {
    if (!klass.identifier) throw new Error('Trying to register a locking provider without an identifier.');
    return `${klass.identifier}`;
  }

  retrieve(providerId) {
    try {
      return this.cradle[`${LOCKING_PROVIDER_PREFIX}${providerId}`];
    } catch {
      throw new Error(`Could not find a locking provider with id: ${providerId}`);
    }
  }
}

// packages/modules/locking/src/services/locking-module.ts, lines 16-90: every
// call goes to args.provider ?? the default provider, with args passed on whole.
export class LockingModuleService {
  constructor(cradle, moduleDeclaration) {
    this.providers = cradle.lockingProviderService;
    this.defaultProviderId = cradle[DEFAULT_PROVIDER];
    this.moduleDeclaration = moduleDeclaration;
  }

  #provider(args) { return this.providers.retrieve(args?.provider ?? this.defaultProviderId); }
  async execute(keys, job, args, sharedContext = {}) { return this.#provider(args).execute(keys, job, args, sharedContext); }
  async acquire(keys, args, sharedContext = {}) { await this.#provider(args).acquire(keys, args, sharedContext); }
  async release(keys, args, sharedContext = {}) { return this.#provider(args).release(keys, args, sharedContext); }
  async releaseAll(args, sharedContext = {}) { return this.#provider(args).releaseAll(args, sharedContext); }
}

// ---- packages/core/modules-sdk/src/loaders/utils/load-internal.ts ----

/** The module definition of LOCKING: packages/core/modules-sdk/src/definitions.ts, lines 282-292. */
const LOCKING_DEFINITION = { key: 'locking', label: 'Locking', dependencies: ['logger'] };

// lines 218-236: a module's (or provider's) own container resolves its
// dependencies from the container it is loaded into.
function localContainerOf(container, dependencies) {
  const local = createContainer();
  for (const dep of [...dependencies, 'manager', 'configModule', 'logger', '__pg_connection__']) {
    local.register(dep, asFunction(() => container.resolve(dep, { allowUnregistered: true })));
  }
  return local;
}

// lines 541-634 (loadResources) and 674-742 (prepareLoaders): services,
// models and repositories are imported from folders beside the resolved file;
// with no models there is no connection loader, and a container loader
// (registering the services found) runs before the module's own loaders.
function loadResources(requireFrom, discoveryPath, loadedLoaders) {
  const dir = dirname(discoveryPath);
  const found = {};
  for (const sub of ['services', 'models', 'repositories']) {
    if (existsSync(join(dir, sub))) throw new Error(`test replica: ${join(dir, sub)} would be imported; not reproduced`);
    found[sub] = [];
  }
  const mod = requireFrom(discoveryPath);
  const moduleService = (mod.default ?? mod).service;
  const containerLoader = async ({ container }) => {
    for (const s of found.services) container.register(s.name[0].toLowerCase() + s.name.slice(1), asFunction((cr) => new s(cr)));
  };
  return { moduleService, loaders: [containerLoader, ...(loadedLoaders ?? [])] };
}

// lines 636-672.
async function runLoaders(loaders, { container, local, logger, resolution, keyName, providerOptions }) {
  try {
    for (const loader of loaders) {
      await loader({
        container: local,
        logger,
        options: providerOptions ?? resolution.options,
        dataLoaderOnly: undefined,
        moduleOptions: providerOptions ? resolution.options : undefined,
      }, resolution.moduleDeclaration);
    }
    return undefined;
  } catch (err) {
    container.register(keyName, asValue(undefined));
    return { error: new Error(`Loaders for module ${resolution.definition.label} failed: ${err.message}`) };
  }
}

// lines 163-376 with loadingProviders set: one provider of the module.
async function loadProvider(container, resolution, logger, requireFrom, constructions) {
  const keyName = resolution.definition.key; // lines 180-182
  // resolveModuleExports, lines 55-101
  let exportsOf;
  try {
    const m = dynamicImport(requireFrom, resolution.resolutionPath);
    exportsOf = m.default ?? m;
    exportsOf.discoveryPath = resolution.resolutionPath;
  } catch (error) {
    return { error };
  }
  const resources = loadResources(requireFrom, exportsOf.discoveryPath, exportsOf.loaders); // lines 190-199
  const local = localContainerOf(container, resolution.dependencies); // lines 218-236
  const providerOptions = resolution.options.providers.find((p) => p.id === keyName)?.options; // lines 263-267
  const error = await runLoaders(resources.loaders, { container, local, logger, resolution, keyName, providerOptions }); // 285-298
  if (error) return error;
  // lines 300-355: register every service of the provider under
  // __providers__<identifier>_<id>, constructed with the MODULE's options.
  const moduleProviderServices = resources.moduleService ? [resources.moduleService] : exportsOf.services ?? exportsOf;
  for (const Service of moduleProviderServices) {
    if (!Service.identifier) throw new Error(`Module provider ${resolution.resolutionPath} does not have a static "identifier" property on its service class.`);
    const key = providerRegistrationKey(keyName, Service.identifier);
    if (container.hasRegistration(key)) {
      throw new Error(`Module provider ${Service.identifier} has already been registered. Please provide a different "id" in the provider options.`);
    }
    container.register(key, asFunction(() => {
      const args = [local.cradle, resolution.options, resolution.moduleDeclaration];
      constructions.push({ Service, args });
      return new Service(...args);
    }).singleton());
  }
  return undefined;
}

// packages/modules/locking/src/loaders/providers.ts, lines 20-37 and 39-92,
// with packages/core/modules-sdk/src/loaders/module-provider-loader.ts,
// lines 11-90 (moduleProviderLoader, loadModuleProvider).
async function lockingProvidersLoader({ container, logger, options }, requireFrom) {
  container.registerAdd(IDENTIFIERS, asValue(undefined));
  container.register(`${LOCKING_PROVIDER_PREFIX}in-memory`, asFunction(() => {
    throw new Error('test replica: the in-memory provider is not reproduced');
  }).singleton());
  container.registerAdd(IDENTIFIERS, asValue('in-memory'));
  container.register(DEFAULT_PROVIDER, asValue('in-memory'));

  const providers = options?.providers ?? [];
  await Promise.all(providers.map(async (provider) => {
    let loaded;
    try {
      loaded = typeof provider.resolve === 'string' ? dynamicImport(requireFrom, provider.resolve) : provider.resolve;
    } catch {
      throw new Error(`Unable to find module ${provider.resolve} -- perhaps you need to install its package?`);
    }
    loaded = loaded.default ?? loaded;
    if (!loaded?.services?.length) {
      throw new Error(`${provider.resolve} doesn't seem to have a main service exported -- make sure your module has a default export of a service.`);
    }
    await Promise.all(loaded.services.map(async (service) => {
      await service.validateOptions?.(provider.options);
      // registrationFn: lp_<identifier> is an alias of __providers__<identifier>_<id>
      const key = LockingProviderService.registrationIdentifier(service);
      if (!provider.id) throw new Error(`No "id" provided for provider ${key}`);
      container.register(`${LOCKING_PROVIDER_PREFIX}${key}`, aliasTo(providerRegistrationKey(provider.id, key)));
      container.registerAdd(IDENTIFIERS, asValue(key));
    }));
  }));

  const single = providers.length === 1;
  let hasDefault = false;
  for (const p of providers) {
    if (p.is_default || single) {
      if (p.is_default) hasDefault = true;
      container.register(DEFAULT_PROVIDER, asValue(p.id));
    }
  }
  if (!hasDefault) logger.warn(`No default locking provider explicit defined. Using "${container.resolve(DEFAULT_PROVIDER)}" as default.`);
}

/**
 * Loads the Locking Module with these options (what medusa-config gives it),
 * as the framework does: lines 163-376 of load-internal.ts without
 * loadingProviders, then the module service of packages/modules/locking.
 * app: the app's directory (package resolution starts there). Returns the
 * module's service (an ILockingModule), its container, and shutdown().
 */
export async function loadLockingModule({ options, app, logger = quietLogger() }) {
  const root = createContainer();
  root.register('logger', asValue(logger));
  const requireFrom = createRequire(join(resolve(app), 'package.json'));
  const resolution = {
    definition: LOCKING_DEFINITION,
    options,
    moduleDeclaration: { scope: 'internal', resources: 'shared' },
    dependencies: [...LOCKING_DEFINITION.dependencies],
  };
  const container = localContainerOf(root, resolution.dependencies);

  // loadInternalProvider, lines 103-161 (called at 247-262).
  const errors = [];
  const constructions = []; // what each provider was constructed with, for the tests
  for (const provider of options?.providers ?? []) {
    const res = provider.resolve;
    if (!res || (typeof res !== 'string' && res.services)) continue; // lines 119-124
    const err = await loadProvider(container, {
      ...resolution,
      definition: { ...resolution.definition, key: provider.id },
      resolutionPath: typeof res === 'string' ? requireFrom.resolve(res) : false,
    }, logger, requireFrom, constructions);
    if (err) errors.push(err);
  }
  if (errors.length) {
    throw new Error(`Errors while loading module providers for module locking:\n${errors.map((e) => e.error?.message).join('\n')}`);
  }

  // The module's own loaders (packages/modules/locking/src/index.ts, lines
  // 5-8), after its container loader registers its services (the
  // LockingProviderService of services/locking-provider.ts).
  container.register('lockingProviderService', asFunction((cradle) => new LockingProviderService(cradle)));
  const error = await runLoaders([(o) => lockingProvidersLoader(o, requireFrom)], {
    container: root, local: container, logger, resolution, keyName: 'locking',
  });
  if (error) throw error.error;

  // lines 356-368: the module service, made when first resolved.
  root.register('locking', asFunction(() => new LockingModuleService(container.cradle, resolution.moduleDeclaration)).singleton());
  const service = root.resolve('locking');
  return {
    service,
    container,
    constructions,
    provider: (id) => container.resolve(`${LOCKING_PROVIDER_PREFIX}${id}`),
    /**
     * What the module's shutdown hook does in newer versions of the
     * framework (optional provider shutdown(), as the Redis provider's
     * redis-lock-shutdown.spec.ts expects): shuts down every provider that
     * was made.
     */
    async shutdown() {
      for (const key of Object.keys(container.registrations)) {
        if (!key.startsWith('__providers__')) continue;
        await container.resolve(key).shutdown?.();
      }
    },
  };
}

export function quietLogger() {
  const lines = [];
  const log = (level) => (msg) => lines.push(`${level}: ${msg}`);
  return { lines, info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') };
}
