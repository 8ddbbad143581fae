// The one error catalogue of edgeplane. Every error a component raises on purpose is an
// EdgeError with a stable code `EDGE_ERR_<AREA>_<WHAT>` and an HTTP status. Codes never change
// meaning once released; docs/errors.md documents each one (a test checks that it does).
//
// 4xx messages are written for the client and shown to it; 5xx responses show only the code
// and an error id (see toHttpError), the details go to the log.

export interface ErrorDetail {
  /** Where: a file:line:col, a JSON pointer, a function name… */
  where?: string;
  /** What was wrong and what was expected. */
  message: string;
}

export class EdgeError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details?: ErrorDetail[];

  constructor(code: string, status: number, message: string, details?: ErrorDetail[], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    if (details !== undefined) this.details = details;
  }
}

/** Invalid edge.yaml: syntax, schema or semantic rule. Details name file:line:col. */
export class ManifestError extends EdgeError {}
/** Webhook receiver: signature, payload, size. */
export class WebhookError extends EdgeError {}
/** Git fetch and checkout of a registered repository. */
export class GitError extends EdgeError {}
/** Building a function to wasm and validating the result. */
export class BuildError extends EdgeError {}
/** Storing, fetching and verifying artifacts. */
export class ArtifactError extends EdgeError {}
/** Running a function on a runner. */
export class RuntimeError extends EdgeError {}
/** The control protocol between control plane and runners. */
export class ControlError extends EdgeError {}
/** Configuration given to a process. */
export class ConfigError extends EdgeError {}
/** The HTTP API: routing, lookups. */
export class ApiError extends EdgeError {}

type Ctor = new (
  code: string,
  status: number,
  message: string,
  details?: ErrorDetail[],
  cause?: unknown,
) => EdgeError;

interface CatalogueEntry {
  status: number;
  area: Ctor;
  /** One line for docs/errors.md: when this error happens. */
  summary: string;
}

export const catalogue = {
  EDGE_ERR_MANIFEST_SYNTAX: {
    status: 400,
    area: ManifestError,
    summary: "An edge.yaml file is not valid YAML.",
  },
  EDGE_ERR_MANIFEST_SCHEMA: {
    status: 400,
    area: ManifestError,
    summary: "A manifest document does not match schema/edge.schema.json.",
  },
  EDGE_ERR_MANIFEST_INVALID: {
    status: 400,
    area: ManifestError,
    summary: "The manifests break a rule the schema cannot express (duplicates, paths, hosts).",
  },
  EDGE_ERR_MANIFEST_NOT_FOUND: {
    status: 400,
    area: ManifestError,
    summary: "No edge.yaml was found in the commit.",
  },
  EDGE_ERR_WEBHOOK_SIGNATURE: {
    status: 401,
    area: WebhookError,
    summary: "The webhook's X-Hub-Signature-256 is missing or does not match the project's secret.",
  },
  EDGE_ERR_WEBHOOK_PAYLOAD: {
    status: 400,
    area: WebhookError,
    summary: "The webhook body or headers are malformed.",
  },
  EDGE_ERR_WEBHOOK_TOO_LARGE: {
    status: 413,
    area: WebhookError,
    summary: "The webhook body exceeds the size limit.",
  },
  EDGE_ERR_WEBHOOK_UNKNOWN_REPO: {
    status: 404,
    area: WebhookError,
    summary: "The webhook names a repository that no registered project uses.",
  },
  EDGE_ERR_GIT_FETCH: { status: 502, area: GitError, summary: "Fetching or checking out the commit failed." },
  EDGE_ERR_BUILD_COMPILE: {
    status: 422,
    area: BuildError,
    summary: "The function's source did not compile; details carry file:line of the source error.",
  },
  EDGE_ERR_BUILD_INVALID_MODULE: {
    status: 422,
    area: BuildError,
    summary: "The built module is not valid wasm or breaks the ABI or limits.",
  },
  EDGE_ERR_BUILD_UNSUPPORTED: {
    status: 422,
    area: BuildError,
    summary: "The function's language or ABI is not supported by this builder.",
  },
  EDGE_ERR_BUILD_TOOLCHAIN_MISSING: {
    status: 422,
    area: BuildError,
    summary: "The compiler the function's language needs is not installed.",
  },
  EDGE_ERR_BUILD_TIMEOUT: {
    status: 422,
    area: BuildError,
    summary: "The build ran past the builder's time limit and was killed.",
  },
  EDGE_ERR_BUILD_OUT_OF_MEMORY: {
    status: 422,
    area: BuildError,
    summary: "The build ran past the builder's memory limit and was killed.",
  },
  EDGE_ERR_ARTIFACT_NOT_FOUND: {
    status: 404,
    area: ArtifactError,
    summary: "No artifact is stored under that key.",
  },
  EDGE_ERR_ARTIFACT_SHA256_MISMATCH: {
    status: 502,
    area: ArtifactError,
    summary: "Downloaded artifact bytes do not hash to the sha256 recorded at build.",
  },
  EDGE_ERR_ARTIFACT_DOWNLOAD: {
    status: 502,
    area: ArtifactError,
    summary: "Downloading an artifact failed.",
  },
  EDGE_ERR_ARTIFACT_STORE: {
    status: 500,
    area: ArtifactError,
    summary: "Writing to or reading from the artifact store failed.",
  },
  EDGE_ERR_RUNTIME_NO_ROUTE: {
    status: 404,
    area: RuntimeError,
    summary: "No route matches the request's host, path and method.",
  },
  EDGE_ERR_RUNTIME_TRAP: {
    status: 500,
    area: RuntimeError,
    summary: "The function trapped or returned a non-zero status.",
  },
  EDGE_ERR_RUNTIME_TIMEOUT: {
    status: 504,
    area: RuntimeError,
    summary: "The function ran past maxExecutionMs.",
  },
  EDGE_ERR_RUNTIME_BODY_TOO_LARGE: {
    status: 413,
    area: RuntimeError,
    summary: "The request body exceeds the function's maxRequestBytes.",
  },
  EDGE_ERR_RUNTIME_BAD_RESPONSE: {
    status: 502,
    area: RuntimeError,
    summary: "The function's CGI-style response could not be parsed.",
  },
  EDGE_ERR_RUNTIME_INSTANTIATE: {
    status: 500,
    area: RuntimeError,
    summary: "The module could not be compiled or instantiated with the edge imports.",
  },
  EDGE_ERR_RUNTIME_QUEUE_FULL: {
    status: 429,
    area: RuntimeError,
    summary: "The function version has as many requests waiting as its queue holds.",
  },
  EDGE_ERR_RUNTIME_BAD_REQUEST: {
    status: 400,
    area: RuntimeError,
    summary: "The HTTP request is malformed (syntax, framing, missing or repeated Host).",
  },
  EDGE_ERR_RUNTIME_HEADERS_TOO_LARGE: {
    status: 431,
    area: RuntimeError,
    summary: "The request head exceeds the runner's maxHeaderBytes or maxHeaderCount.",
  },
  EDGE_ERR_RUNTIME_REQUEST_TIMEOUT: {
    status: 408,
    area: RuntimeError,
    summary: "The client did not send its request within headersTimeout or requestTimeout.",
  },
  EDGE_ERR_CONTROL_PROTOCOL: {
    status: 400,
    area: ControlError,
    summary: "A control-protocol message is malformed.",
  },
  EDGE_ERR_CONFIG_INVALID: {
    status: 500,
    area: ConfigError,
    summary: "A configuration option has an invalid value.",
  },
  EDGE_ERR_API_NOT_FOUND: {
    status: 404,
    area: ApiError,
    summary: "The requested API object or path does not exist.",
  },
  EDGE_ERR_API_UNAUTHORIZED: {
    status: 401,
    area: ApiError,
    summary: "The request carries no valid bearer token for this endpoint.",
  },
  EDGE_ERR_API_FORBIDDEN: {
    status: 403,
    area: ApiError,
    summary: "The endpoint is disabled by configuration, or the token may not do this.",
  },
  EDGE_ERR_API_TOO_LARGE: {
    status: 413,
    area: ApiError,
    summary: "The API request body exceeds the endpoint's size limit.",
  },
  EDGE_ERR_API_BAD_REQUEST: { status: 400, area: ApiError, summary: "The API request is malformed." },
  EDGE_ERR_API_MANAGED_BY_GIT: {
    status: 409,
    area: ApiError,
    summary: "An imperative write to a project whose source is Git (change the repository instead).",
  },
  EDGE_ERR_API_CONFLICT: {
    status: 409,
    area: ApiError,
    summary: "The write conflicts with stored state (a route another function or project holds).",
  },
  EDGE_ERR_API_RATE_LIMITED: {
    status: 429,
    area: ApiError,
    summary: "The token sent more requests than the rate limit allows; see Retry-After.",
  },
  EDGE_ERR_INTERNAL: {
    status: 500,
    area: EdgeError,
    summary: "An unexpected failure; the log has the details under the error id.",
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof catalogue;

/** Creates the catalogued error for `code`, of its area's class, with its status. */
export function edgeError(
  code: ErrorCode,
  message: string,
  details?: ErrorDetail[],
  cause?: unknown,
): EdgeError {
  const entry: CatalogueEntry = catalogue[code];
  return new entry.area(code, entry.status, message, details, cause);
}

export interface HttpErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[]; id?: string };
}

/**
 * The single mapping from any thrown value to an HTTP status and JSON body. Client errors
 * (4xx) carry their message and details; server errors (5xx) carry only the code and an id,
 * which the caller logs beside the full error.
 */
export function toHttpError(err: unknown, errorId: string): { status: number; body: HttpErrorBody } {
  if (err instanceof EdgeError && err.status < 500) {
    const body: HttpErrorBody = { error: { code: err.code, message: err.message } };
    if (err.details) body.error.details = err.details;
    return { status: err.status, body };
  }
  const code = err instanceof EdgeError ? err.code : "EDGE_ERR_INTERNAL";
  const status = err instanceof EdgeError ? err.status : 500;
  return { status, body: { error: { code, message: `internal error (id ${errorId})`, id: errorId } } };
}
