// Test fixture: the declarations of @medusajs/framework/types that the
// README's Medusa examples and the package's types meet, restated from
// medusajs/medusa at commit 59e6747800133e091d20c2c167f600981abc5c0d:
// - ILockingProvider, ILockingModule: packages/core/types/src/locking/index.ts,
//   lines 3-33 and 35-69 (signatures unchanged; the TSDoc is left out);
// - Context: packages/core/types/src/shared-context.ts, lines 30-76 (the
//   fields that are not types of their own);
// - ProviderLoaderOptions, ModuleProviderExports, ModuleProviderLoaderFunction:
//   packages/core/types/src/modules-sdk/module-provider.ts, lines 8-13, 15-36
//   and 38-41 (the migration hooks left out), with Logger reduced to its
//   logging methods;
// - MedusaContainer: packages/core/types/src/common/medusa-container.ts,
//   lines 13-19 (its resolve overloads; of awilix's container only register),
//   with ModuleImplementations reduced to the Locking Module
//   (packages/core/framework/src/types/container.ts, line 67).

export type Context<TManager = unknown> = {
  __type?: "MedusaContext"
  transactionManager?: TManager
  manager?: TManager
  isolationLevel?: string
  enableNestedTransactions?: boolean
  eventGroupId?: string
  transactionId?: string
  requestId?: string
  idempotencyKey?: string
  parentStepIdempotencyKey?: string
}

export interface ILockingProvider {
  execute<T>(
    keys: string | string[],
    job: () => Promise<T>,
    args?: {
      timeout?: number
    },
    sharedContext?: Context
  ): Promise<T>
  acquire(
    keys: string | string[],
    args?: {
      ownerId?: string | null
      expire?: number
    },
    sharedContext?: Context
  ): Promise<void>
  release(
    keys: string | string[],
    args?: {
      ownerId?: string | null
    },
    sharedContext?: Context
  ): Promise<boolean>
  releaseAll(
    args?: {
      ownerId?: string | null
    },
    sharedContext?: Context
  ): Promise<void>
}

export interface ILockingModule {
  execute<T>(
    keys: string | string[],
    job: () => Promise<T>,
    args?: {
      timeout?: number
      provider?: string
    },
    sharedContext?: Context
  ): Promise<T>
  acquire(
    keys: string | string[],
    args?: {
      ownerId?: string | null
      expire?: number
      provider?: string
    },
    sharedContext?: Context
  ): Promise<void>
  release(
    keys: string | string[],
    args?: {
      ownerId?: string | null
      provider?: string
    },
    sharedContext?: Context
  ): Promise<boolean>
  releaseAll(
    args?: {
      ownerId?: string | null
      provider?: string
    },
    sharedContext?: Context
  ): Promise<void>
}

export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

export type ModuleImplementations = {
  locking: ILockingModule
}

export type MedusaContainer<Cradle extends object = ModuleImplementations> = {
  register(name: string, registration: { resolve(...args: any[]): unknown }): unknown
  resolve<K extends keyof Cradle>(key: K): Cradle[K]
  resolve<T>(key: string): T
}

export type Constructor<T> = new (...args: any[]) => T

export type ProviderLoaderOptions<TOptions = Record<string, unknown>> = {
  container: MedusaContainer
  options?: TOptions
  logger?: Logger
  moduleOptions: Record<string, unknown>
}

export type ModuleProviderExports<Service = any> = {
  module?: string
  services: Constructor<Service>[]
  loaders?: ModuleProviderLoaderFunction[]
  discoveryPath?: string
}

export type ModuleProviderLoaderFunction = (
  options: ProviderLoaderOptions,
  moduleDeclaration?: unknown
) => Promise<void>
