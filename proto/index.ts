// The control protocol's public surface: the loaded gRPC service definition and the plain
// TypeScript shapes of its messages (proto-loader with keepCase, longs and enums as strings).
// docs: proto/edge.proto documents every field.

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const PROTO_PATH = fileURLToPath(new URL("./edge.proto", import.meta.url));

export interface InventoryItem {
  function_id: string;
  version: string;
  sha256: string;
}

export interface Hello {
  node_id: string;
  pop: string;
  labels: Record<string, string>;
  generation: string;
  inventory: InventoryItem[];
  http_address: string;
}

/** Requests and 5xx errors of one function version since the previous heartbeat (uint64 as string). */
export interface FunctionCounters {
  function_id: string;
  version: string;
  requests: string;
  errors: string;
  /** p99 latency of those requests in ms (the upper bound of its histogram bucket); 0 or absent = unknown. */
  p99_ms?: number;
}

export interface Heartbeat {
  inventory: InventoryItem[];
  in_flight: number;
  /** Optional when sending: runners without counters leave it out. */
  counters?: FunctionCounters[];
}

export type FunctionResultStatus = "OK" | "SHA256_MISMATCH" | "DOWNLOAD_FAILED" | "INVALID_MODULE";

export interface FunctionResult {
  function_id: string;
  version: string;
  status: FunctionResultStatus;
  message: string;
}

export interface Ack {
  generation: string;
  results: FunctionResult[];
}

export type RunnerMessage = { hello: Hello } | { ack: Ack } | { heartbeat: Heartbeat };

export interface FunctionSpec {
  function_id: string;
  name: string;
  version: string;
  project: string;
  artifact_url: string;
  sha256: string;
  abi: "edge-v1" | "wagi";
  memory_pages: number;
  max_execution_ms: number;
  max_request_bytes: number;
  max_instances: number;
  env: Record<string, string>;
  /** WASI capabilities granted by the manifest ("clock", "random"); anything absent is denied. */
  capabilities: Record<string, boolean>;
}

export interface RouteSpec {
  host: string;
  path: string;
  methods: string[];
  priority: number;
  function_id: string;
}

/** uint64 generations travel as decimal strings (proto-loader `longs: String`). */
export interface DesiredState {
  generation: string;
  functions: FunctionSpec[];
  routes: RouteSpec[];
}

export type ControlMessage = { desired: DesiredState };

export type ConnectStream = grpc.ClientDuplexStream<RunnerMessage, ControlMessage>;
export type ServerConnectStream = grpc.ServerDuplexStream<RunnerMessage, ControlMessage>;

const packageDefinition = protoLoader.loadSync(PROTO_PATH, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: false,
});

// biome-ignore lint/suspicious/noExplicitAny: grpc's loaded package object is untyped by nature
const loaded = grpc.loadPackageDefinition(packageDefinition) as any;

/** The EdgeControl service definition, for `server.addService`. */
export const edgeControlService: grpc.ServiceDefinition = loaded.edgeplane.v1.EdgeControl.service;

/** A client constructor for EdgeControl. */
export const EdgeControlClient: grpc.ServiceClientConstructor = loaded.edgeplane.v1.EdgeControl;

export { grpc };
