// Control-plane configuration in three steps: ControlPlaneOptions (what a person writes, with
// units), defaults applied, compiled (numbers in ms/bytes, resolved paths). docs/configuration.md
// lists every option with its default; keep the two in step.

import path from "node:path";
import type { BuilderOptions, S3StoreOptions } from "../builder/index.ts";
import { edgeError } from "../lib/errors.ts";
import { parseDuration, parseSize } from "../lib/units.ts";

export interface ProjectRegistration {
  /** Project name; must equal metadata.name of the repo's Project document when it has one. */
  name: string;
  /**
   * Clone URL or local path of the repository (source "git"), or the directory (source
   * "directory"). Not used by source "api".
   */
  repo?: string;
  /**
   * "git" (default): reconcile commits of `branch`. "directory": read `repo` as a plain directory.
   * "api": no repository; functions and routes are written through the imperative API
   * (POST /api/v1/functions, /functions/:id/deploy, /routes), which Git projects refuse (409).
   */
  source?: "git" | "directory" | "api";
  /** Source "api" only: the hosts (and their subdomains) this project may route. */
  domains?: string[];
  /** "owner/name" as GitHub webhooks name the repository; webhooks are matched on it. */
  fullName?: string;
  /** Production branch. Default "main". */
  branch?: string;
  /** Secret for X-Hub-Signature-256. Webhooks for a project without one are refused. */
  webhookSecret?: string;
  /** Secret that signs notification webhooks (X-Edgeplane-Signature-256). Default: webhookSecret. */
  notificationSecret?: string;
  /**
   * A function whose toolchain this machine lacks: "fail" the whole reconcile (default), or
   * "skip" that function and apply the rest (what `edgectl serve` uses on a laptop).
   */
  missingToolchain?: "fail" | "skip";
}

export interface ControlPlaneOptions {
  /** Directory for embedded state: PGlite data, artifacts, git working trees. Default ".edgeplane". */
  dataDir?: string;
  /** PostgreSQL connection string. Default: none, i.e. embedded PGlite in {dataDir}/pglite. */
  databaseUrl?: string;
  /** Schema to use inside that database (tests use one each). Default: the server's search_path. */
  databaseSchema?: string;
  /** Local artifact directory. Default {dataDir}/artifacts. */
  artifactsDir?: string;
  /** Store artifacts in this S3 bucket instead of artifactsDir; runners download by presigned URL. */
  s3?: S3StoreOptions;
  /** HTTP API and webhook listener. Default 127.0.0.1:8081 (port 0 = any free port). */
  httpHost?: string;
  httpPort?: number;
  /** gRPC control listener for runners. Default 127.0.0.1:50051. */
  grpcHost?: string;
  grpcPort?: number;
  /**
   * Mutual TLS for the gRPC control protocol: PEM file paths of the CA that signs runner
   * certificates and of this control plane's certificate and key (`edgectl certs init` makes
   * them). A runner's node id is then taken from its certificate's common name.
   */
  tls?: { ca: string; cert: string; key: string };
  /** Allow plaintext gRPC on a non-loopback address. Default false. */
  insecure?: boolean;
  /** Base URL runners use to reach this control plane's HTTP listener. Default http://{httpHost}:{port}. */
  publicUrl?: string;
  /** Largest webhook body accepted. Default "5MiB" (413 above). */
  maxWebhookBytes?: string | number;
  /** Check each project's branch head this often and reconcile commits no webhook announced. "0" = off. Default "5m". */
  pollInterval?: string | number;
  /** How long a rollout waits for runners to ack a generation before reporting their POP failed. Default "30s". */
  ackTimeout?: string | number;
  /** A runner without a heartbeat for this long is offline and gets no intents. Default "2m". */
  offlineAfter?: string | number;
  /**
   * How long a replica's lease on a project lasts without renewal (renewed every third of it while
   * it reconciles). A replica that dies mid-reconcile leaves its reconcile "running"; once the
   * lease has expired, a replica (or the restarted one) queues it again. Default "60s".
   */
  reconcileLease?: string | number;
  /** A pull-request preview nobody pushed to for this long is torn down. Default "7d". */
  previewTtl?: string | number;
  /** The clock preview expiry reads (default: the database's). A seam for tests. */
  previewClock?: () => Date;
  /**
   * How long a replica's lease on a progressive rollout lasts without renewal (renewed while it
   * bakes). A rollout whose replica died is resumed by another once it expired. Default "60s".
   */
  rolloutLease?: string | number;
  /** GitHub commit statuses. Without apiBase none are posted. */
  github?: { apiBase?: string; token?: string };
  /** Retries of status deliveries (commit statuses, notifications): attempts and the doubling delay. */
  statusRetry?: { attempts?: number; minDelay?: string | number; maxDelay?: string | number };
  /**
   * Bearer token runners present to POST /api/v1/nodes/:id/heartbeat (for runners that cannot
   * hold a gRPC stream). Without one that endpoint is disabled (403).
   */
  runnerToken?: string;
  /**
   * Where a fresh control plane writes its first admin API token (mode 0600) when no admin
   * token exists yet. Default {dataDir}/admin-token; false = never create one.
   */
  adminTokenFile?: string | false;
  /** API rate limit per token, per replica: requests per window. Default 600 per "1m" (429 above). */
  apiRateLimit?: { requests?: number; window?: string | number };
  /** Largest module accepted by POST /api/v1/functions (source "api"). Default "32MiB" (413 above). */
  maxUploadBytes?: string | number;
  /** Builder options (docs/builder.md); the build cache defaults to {dataDir}/build-cache. */
  builder?: BuilderOptions;
  /** Registered projects. */
  projects?: ProjectRegistration[];
}

export interface CompiledProject {
  name: string;
  /** "" for source "api". */
  repo: string;
  source: "git" | "directory" | "api";
  domains: string[];
  fullName: string | null;
  branch: string;
  webhookSecret: string | null;
  notificationSecret: string | null;
  missingToolchain: "fail" | "skip";
}

export interface CompiledControlPlaneOptions {
  dataDir: string;
  databaseUrl: string | null;
  databaseSchema: string | null;
  artifactsDir: string;
  s3: S3StoreOptions | null;
  httpHost: string;
  httpPort: number;
  grpcHost: string;
  grpcPort: number;
  insecure: boolean;
  tls: { ca: string; cert: string; key: string } | null;
  publicUrl: string | null;
  maxWebhookBytes: number;
  pollIntervalMs: number;
  ackTimeoutMs: number;
  offlineAfterMs: number;
  reconcileLeaseMs: number;
  previewTtlMs: number;
  previewClock: (() => Date) | null;
  rolloutLeaseMs: number;
  github: { apiBase: string; token: string | null } | null;
  statusRetry: { attempts: number; minDelayMs: number; maxDelayMs: number };
  builder: BuilderOptions;
  runnerToken: string | null;
  adminTokenFile: string | null;
  apiRateLimit: { requests: number; windowMs: number };
  maxUploadBytes: number;
  projects: CompiledProject[];
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export function compileControlPlaneOptions(o: ControlPlaneOptions): CompiledControlPlaneOptions {
  const dataDir = path.resolve(o.dataDir ?? ".edgeplane");
  const grpcHost = o.grpcHost ?? "127.0.0.1";
  const insecure = o.insecure ?? false;
  if (!LOOPBACK.has(grpcHost) && !insecure && !o.tls) {
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `grpcHost ${grpcHost}: give tls (ca, cert, key; see edgectl certs init) or set insecure to serve plaintext gRPC beyond loopback`,
    );
  }
  if (o.tls && (!o.tls.ca || !o.tls.cert || !o.tls.key)) {
    throw edgeError("EDGE_ERR_CONFIG_INVALID", "tls: ca, cert and key are all required");
  }
  const names = new Set<string>();
  const projects = (o.projects ?? []).map((p, i): CompiledProject => {
    if (!p.name || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(p.name)) {
      throw edgeError(
        "EDGE_ERR_CONFIG_INVALID",
        `projects[${i}].name: expected a DNS label, got ${JSON.stringify(p.name)}`,
      );
    }
    if (names.has(p.name))
      throw edgeError("EDGE_ERR_CONFIG_INVALID", `projects[${i}].name: "${p.name}" is registered twice`);
    names.add(p.name);
    const source = p.source ?? "git";
    if (!["git", "directory", "api"].includes(source))
      throw edgeError(
        "EDGE_ERR_CONFIG_INVALID",
        `projects[${i}].source: expected git, directory or api, got ${JSON.stringify(source)}`,
      );
    if (!p.repo && source !== "api")
      throw edgeError("EDGE_ERR_CONFIG_INVALID", `projects[${i}].repo is required`);
    if (p.domains && source !== "api")
      throw edgeError(
        "EDGE_ERR_CONFIG_INVALID",
        `projects[${i}].domains: only for source api; a Git project lists its domains in its Project manifest`,
      );
    return {
      name: p.name,
      repo: p.repo ?? "",
      source,
      domains: (p.domains ?? []).map((d) => d.toLowerCase()),
      fullName: p.fullName ?? null,
      branch: p.branch ?? "main",
      webhookSecret: p.webhookSecret ?? null,
      notificationSecret: p.notificationSecret ?? p.webhookSecret ?? null,
      missingToolchain: p.missingToolchain ?? "fail",
    };
  });
  return {
    dataDir,
    databaseUrl: o.databaseUrl ?? null,
    databaseSchema: o.databaseSchema ?? null,
    artifactsDir: path.resolve(o.artifactsDir ?? path.join(dataDir, "artifacts")),
    s3: o.s3 ?? null,
    httpHost: o.httpHost ?? "127.0.0.1",
    httpPort: o.httpPort ?? 8081,
    grpcHost,
    grpcPort: o.grpcPort ?? 50051,
    insecure,
    tls: o.tls
      ? { ca: path.resolve(o.tls.ca), cert: path.resolve(o.tls.cert), key: path.resolve(o.tls.key) }
      : null,
    publicUrl: o.publicUrl ?? null,
    maxWebhookBytes: parseSize(o.maxWebhookBytes ?? "5MiB", "maxWebhookBytes"),
    pollIntervalMs: parseDuration(o.pollInterval ?? "5m", "pollInterval"),
    ackTimeoutMs: parseDuration(o.ackTimeout ?? "30s", "ackTimeout"),
    offlineAfterMs: parseDuration(o.offlineAfter ?? "2m", "offlineAfter"),
    reconcileLeaseMs: parseDuration(o.reconcileLease ?? "60s", "reconcileLease"),
    previewTtlMs: parseDuration(o.previewTtl ?? "7d", "previewTtl"),
    previewClock: o.previewClock ?? null,
    rolloutLeaseMs: parseDuration(o.rolloutLease ?? "60s", "rolloutLease"),
    github: o.github?.apiBase ? { apiBase: o.github.apiBase, token: o.github.token ?? null } : null,
    statusRetry: {
      attempts: o.statusRetry?.attempts ?? 5,
      minDelayMs: parseDuration(o.statusRetry?.minDelay ?? "1s", "statusRetry.minDelay"),
      maxDelayMs: parseDuration(o.statusRetry?.maxDelay ?? "60s", "statusRetry.maxDelay"),
    },
    builder: { cacheDir: path.join(dataDir, "build-cache"), ...o.builder },
    runnerToken: o.runnerToken ?? null,
    adminTokenFile:
      o.adminTokenFile === false ? null : path.resolve(o.adminTokenFile ?? path.join(dataDir, "admin-token")),
    apiRateLimit: {
      requests: o.apiRateLimit?.requests ?? 600,
      windowMs: parseDuration(o.apiRateLimit?.window ?? "1m", "apiRateLimit.window"),
    },
    maxUploadBytes: parseSize(o.maxUploadBytes ?? "32MiB", "maxUploadBytes"),
    projects,
  };
}
