// The builder's public surface: source → validated wasm, source tree hashes, artifact stores.
export { ascFlags } from "./assemblyscript.ts";
export { type BuildInput, type BuildOutput, buildFunction, toolchainVersion } from "./build.ts";
export { S3ArtifactStore, type S3StoreOptions } from "./s3-store.ts";
export { hashSourceTree } from "./source-hash.ts";
export { type ArtifactStore, artifactKey, LocalArtifactStore, type StoredArtifact } from "./store.ts";
export { type ModuleFacts, readMemoryLimits, validateModule } from "./validate.ts";
