// Test fixture: the declarations of @medusajs/framework/utils that the
// README's Medusa examples use, restated from medusajs/medusa at commit
// 59e6747800133e091d20c2c167f600981abc5c0d:
// - Modules.LOCKING: packages/core/utils/src/modules-sdk/definition.ts, line 27;
// - defineConfig: packages/core/utils/src/common/define-config.ts, lines 32-66
//   and 76 (the config reduced to projectConfig and the modules array, whose
//   entries are InternalModuleDeclaration of
//   packages/core/types/src/modules-sdk/index.ts, lines 47-62);
// - loadEnv: packages/core/utils/src/common/load-env.ts (its signature).

export declare const Modules: {
  readonly LOCKING: "locking"
}

type InternalModuleDeclaration = {
  scope?: "internal"
  dependencies?: string[]
  resolve?: string
  options?: Record<string, unknown>
  alias?: string
  main?: boolean
  worker_mode?: "shared" | "worker" | "server"
  key?: string
  disable?: boolean
}

export declare function defineConfig(config?: {
  projectConfig?: Record<string, unknown>
  admin?: Record<string, unknown>
  modules?: InternalModuleDeclaration[]
}): unknown

export declare function loadEnv(environment: string, envDir: string): void
