// TypeScript shapes of the manifest documents after validation with defaults applied.
// They mirror edge.schema.json, which is the source of truth: a test validates fixtures of
// these types against the schema so the two cannot drift silently.

export type Language = "assemblyscript" | "rust" | "c" | "wat" | "wasm";
export type Abi = "edge-v1" | "wagi";
export type Runtime = "wasm" | "wasm-aot";
export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";

export interface Metadata {
  name: string;
  labels?: Record<string, string>;
}

export interface ProjectSpec {
  domains: string[];
  preview?: { domain: string; pops?: string };
  notifications?: { url: string; events?: ("reconcile" | "deploy" | "preview")[] }[];
}

export interface RouteManifest {
  host: string;
  path: string;
  methods?: Method[];
  priority: number;
}

export interface Limits {
  memoryPages: number;
  maxExecutionMs: number;
  maxRequestBytes: number;
  maxInstances: number;
}

export interface FunctionSpec {
  source: { path: string; language: Language; entry?: string };
  runtime: Runtime;
  abi: Abi;
  limits: Limits;
  env?: Record<string, string>;
  capabilities?: { clock: boolean; random: boolean };
  routes: RouteManifest[];
  placement?: { pops?: string };
}

export interface ProjectManifest {
  apiVersion: "edgeplane.dev/v1";
  kind: "Project";
  metadata: Metadata;
  spec: ProjectSpec;
}

export interface FunctionManifest {
  apiVersion: "edgeplane.dev/v1";
  kind: "Function";
  metadata: Metadata;
  spec: FunctionSpec;
}

/** Where a document came from, for error messages ("functions/edge.yaml:3:1"). */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export interface LoadedFunction {
  manifest: FunctionManifest;
  location: SourceLocation;
  /** source.path resolved and normalised, relative to the repo root, "/"-separated, no leading "./". */
  sourceDir: string;
}

/** Every manifest of one repository, validated. */
export interface ManifestSet {
  project: ProjectManifest | null;
  projectLocation: SourceLocation | null;
  /** Sorted by function name, so the order of files in the repo never matters. */
  functions: LoadedFunction[];
  /** The manifest files read, relative to the repo root, sorted. */
  files: string[];
}
