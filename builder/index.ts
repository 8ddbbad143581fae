// The builder's public surface: source → validated wasm, source tree hashes, artifact stores.
export { type BuildInput, type BuildOutput, buildFunction, toolchainVersion } from "./build.ts";
export { hashSourceTree } from "./source-hash.ts";
export { type ArtifactStore, artifactKey, LocalArtifactStore, type StoredArtifact } from "./store.ts";
export { type ModuleFacts, readMemoryLimits, validateModule } from "./validate.ts";
