// Generated from schema/edge.schema.json by schema/generate-types.ts (npm run gen:types). Do not edit.
// These are the documents as written; schema/types.ts adds the defaults the loader applies.

/**
 * One YAML document of an edge.yaml file: a Project or a Function. docs/manifest.md explains every field.
 */
export type Manifest = (ProjectManifest | FunctionManifest)
/**
 * A DNS label: lowercase letters, digits and '-', at most 63 characters.
 */
export type Name = string
/**
 * A lowercase host name, optionally starting with '*.' for any subdomain.
 */
export type Host = string
/**
 * A label selector over runner labels: 'key=value' and 'key!=value' terms joined by commas.
 */
export type Selector = string
/**
 * A duration such as "30s", "250ms", "5m" or "1h".
 */
export type Duration = string

export interface ProjectManifest {
apiVersion: "edgeplane.dev/v1"
kind: "Project"
metadata: Metadata
spec: ProjectSpec
}
export interface Metadata {
name: Name
labels?: {
[k: string]: string
}
}
export interface ProjectSpec {
/**
 * Hosts (and their subdomains) this project may route.
 * 
 * @minItems 1
 */
domains: [Host, ...(Host)[]]
preview?: Preview
notifications?: Notification[]
rollout?: Rollout
}
export interface Preview {
domain: Host
pops?: Selector
}
export interface Notification {
url: string
events?: ("reconcile" | "deploy" | "preview")[]
}
export interface Rollout {
/**
 * Waves in order; each adds the POPs its selector matches. After the last wave the version goes wherever its placement allows.
 * 
 * @minItems 1
 * @maxItems 32
 */
waves: [RolloutWave, ...(RolloutWave)[]]
/**
 * Largest share of 5xx answers (0..1) the new version may give in a wave's POPs. Default 0.05.
 */
maxErrorRate?: number
/**
 * Largest p99 latency in milliseconds the new version may show in a wave's POPs. Default: not checked.
 */
maxP99Ms?: number
/**
 * Requests a wave's POPs must answer before the error rate is judged. Default 1.
 */
minRequests?: number
}
export interface RolloutWave {
/**
 * The POPs this wave adds: a label selector over runner labels, or "*" for every POP.
 */
pops: ("*" | Selector)
bake?: Duration
}
export interface FunctionManifest {
apiVersion: "edgeplane.dev/v1"
kind: "Function"
metadata: Metadata
spec: FunctionSpec
}
export interface FunctionSpec {
source: Source
runtime?: ("wasm" | "wasm-aot")
abi?: ("edge-v1" | "wagi")
limits?: Limits
env?: {
[k: string]: string
}
/**
 * Names of env entries whose values are secret: previews of pull requests from forks get them removed.
 */
secretEnv?: string[]
capabilities?: Capabilities
/**
 * @minItems 1
 */
routes: [RouteManifest, ...(RouteManifest)[]]
placement?: Placement
rollout?: Rollout
}
export interface Source {
path: string
language: ("assemblyscript" | "rust" | "c" | "wat" | "wasm")
entry?: string
}
export interface Limits {
memoryPages?: number
maxExecutionMs?: number
maxRequestBytes?: number
maxInstances?: number
}
export interface Capabilities {
clock?: boolean
random?: boolean
}
export interface RouteManifest {
host: Host
path: string
methods?: ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS")[]
priority?: number
}
export interface Placement {
pops?: Selector
}
