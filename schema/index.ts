// Manifest schema and loader: the public surface of schema/.

export * as manifestLimits from "./limits.ts";
export { findManifestFiles, hostAllowed, isManifestFile, loadManifests, manifestSchema } from "./loader.ts";
export * from "./types.ts";
