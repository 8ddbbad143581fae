// Fetching an artifact by URL (http or https; presigned S3 URLs are plain https GETs).
//
// Retries follow seed Property 13 / DESIGN.md "Runner rules": exponential backoff starting at
// 1 s, doubling to at most 60 s, at most 5 tries in all, then the failure is reported. The sleep
// and the delays are injectable so tests do not wait for real seconds.

import { type EdgeError, edgeError } from "../lib/errors.ts";

export interface DownloadOptions {
  /** Responses larger than this fail without retrying (a bigger file will not shrink). */
  maxBytes: number;
  /** Tries in all, at least 1. Default 5. */
  attempts?: number;
  /** Delay before the second try; doubles each try. Default 1000 ms. */
  minDelayMs?: number;
  /** Ceiling of the delay. Default 60000 ms. */
  maxDelayMs?: number;
  /** Per-try deadline for the whole transfer. Default 60000 ms. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry, e.g. to count `artifact_download_retries_total`. */
  onRetry?: (attempt: number, delayMs: number, error: EdgeError) => void;
}

/** The wait before try number `attempt + 1` (attempt counts from 1): min·2^(attempt-1), capped. */
export function retryDelay(attempt: number, minDelayMs: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, minDelayMs * 2 ** (attempt - 1));
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class NotRetryable extends Error {
  constructor(readonly error: EdgeError) {
    super(error.message);
  }
}

/** Downloads `url` and returns its bytes; throws EDGE_ERR_ARTIFACT_DOWNLOAD after the last try. */
export async function downloadArtifact(url: string, options: DownloadOptions): Promise<Uint8Array> {
  const attempts = options.attempts ?? 5;
  const minDelayMs = options.minDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const sleep = options.sleep ?? realSleep;

  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw edgeError("EDGE_ERR_ARTIFACT_DOWNLOAD", `artifact URL is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw edgeError(
      "EDGE_ERR_ARTIFACT_DOWNLOAD",
      `artifact URL must be http or https, got ${parsed.protocol}`,
    );
  }

  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchOnce(parsed, options.maxBytes, options.timeoutMs ?? 60_000);
    } catch (err) {
      if (err instanceof NotRetryable) throw err.error;
      const error = err as EdgeError;
      if (attempt >= attempts) {
        throw edgeError(
          "EDGE_ERR_ARTIFACT_DOWNLOAD",
          `${error.message} (after ${attempt} ${attempt === 1 ? "try" : "tries"})`,
          undefined,
          error,
        );
      }
      const delay = retryDelay(attempt, minDelayMs, maxDelayMs);
      options.onRetry?.(attempt, delay, error);
      await sleep(delay);
    }
  }
}

// A presigned URL carries its credentials in the query string; keep those out of error messages.
function redact(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

async function fetchOnce(url: URL, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  const where = redact(url);
  let response: Response;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    response = await fetch(url, { signal, redirect: "follow" });
  } catch (err) {
    throw edgeError("EDGE_ERR_ARTIFACT_DOWNLOAD", `GET ${where} failed: ${describe(err)}`, undefined, err);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw edgeError("EDGE_ERR_ARTIFACT_DOWNLOAD", `GET ${where} answered ${response.status}`);
  }
  const tooLarge = () =>
    new NotRetryable(
      edgeError("EDGE_ERR_ARTIFACT_DOWNLOAD", `GET ${where}: artifact is larger than ${maxBytes} bytes`),
    );
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (response.body === null) return new Uint8Array(0);

  // Count while reading: Content-Length may be absent or wrong.
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof NotRetryable) throw err;
    throw edgeError("EDGE_ERR_ARTIFACT_DOWNLOAD", `GET ${where} broke off: ${describe(err)}`, undefined, err);
  }
  return Buffer.concat(chunks, total);
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError") return "timed out";
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
