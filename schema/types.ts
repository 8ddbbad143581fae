// TypeScript shapes of the manifest documents after validation with defaults applied, built on
// the types generated from edge.schema.json (the single source of truth for both).

import type * as Written from "./types.generated.ts";

// The documents as written are generated from the schema (types.generated.ts); what the loader
// returns has the schema's defaults applied, so those fields are required here.

export type {
  Metadata,
  Notification,
  Preview,
  ProjectSpec,
  Rollout,
  RolloutWave,
  Source,
} from "./types.generated.ts";
export type Language = Written.Source["language"];
export type Abi = NonNullable<Written.FunctionSpec["abi"]>;
export type Runtime = NonNullable<Written.FunctionSpec["runtime"]>;
export type Method = NonNullable<Written.RouteManifest["methods"]>[number];
export type Limits = Required<Written.Limits>;
export type Capabilities = Required<Written.Capabilities>;
export type RouteManifest = Written.RouteManifest & { priority: number };

export interface FunctionSpec
  extends Omit<Written.FunctionSpec, "runtime" | "abi" | "limits" | "capabilities" | "routes"> {
  runtime: Runtime;
  abi: Abi;
  limits: Limits;
  capabilities: Capabilities;
  routes: RouteManifest[];
}

export type ProjectManifest = Written.ProjectManifest;

export interface FunctionManifest extends Omit<Written.FunctionManifest, "spec"> {
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
