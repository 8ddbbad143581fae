// Bounds on manifest input, so a hostile repository cannot exhaust the control plane.

/** Largest edge.yaml file read, in bytes. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Most YAML alias expansions per document (yaml's own billion-laughs guard). */
export const MAX_ALIAS_COUNT = 100;
/** Most manifest files per repository. */
export const MAX_MANIFEST_FILES = 5000;
/** Deepest directory level searched for manifests. */
export const MAX_SEARCH_DEPTH = 16;
