// The builder's public surface: source → validated, limited wasm (every supported language,
// each build in a child process), the build cache, source tree hashes, artifact stores.
export { ascFlags } from "./assemblyscript.ts";
export {
  type BuildInput,
  type BuildOutput,
  buildFunction,
  defaultEntry,
  toolchainVersion,
} from "./build.ts";
export { BuildCache, cacheKey } from "./cache.ts";
export type { OptimizeRecord } from "./job.ts";
export { limitMemory, type MemoryInfo, readMemories, readMemoryLimits } from "./memory.ts";
export {
  type BuilderConfig,
  type BuilderOptions,
  builderDefaults,
  compileBuilderOptions,
} from "./options.ts";
export { S3ArtifactStore, type S3StoreOptions } from "./s3-store.ts";
export { hashSourceTree } from "./source-hash.ts";
export { type ArtifactStore, artifactKey, LocalArtifactStore, type StoredArtifact } from "./store.ts";
export { type ModuleFacts, validateModule, WASI_PREVIEW1_FUNCTIONS } from "./validate.ts";
