// The S3 artifact store: artifacts live in a bucket (AWS S3 or anything speaking its API, such
// as MinIO, R2 or s3rver in tests) and runners download them through presigned GET URLs, so
// they need no S3 credentials of their own. Keys follow the seed:
// {prefix/}functions/{function_id}/{version}.wasm.

import { createHash } from "node:crypto";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { edgeError } from "../lib/errors.ts";
import { type ArtifactStore, KEY_PATTERN, type StoredArtifact } from "./store.ts";

export interface S3StoreOptions {
  /** The bucket artifacts are stored in; it must exist. */
  bucket: string;
  /** A key prefix inside the bucket, e.g. "edgeplane/prod"; default none. */
  prefix?: string;
  /** Default "us-east-1". */
  region?: string;
  /** An S3-compatible endpoint, e.g. "http://127.0.0.1:9000"; default AWS's. */
  endpoint?: string;
  /** Address buckets as http://host/bucket instead of http://bucket.host; most non-AWS servers need it. Default false. */
  forcePathStyle?: boolean;
  /** Static credentials; when absent, the AWS SDK's default chain (environment, profile, instance role…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** How long a url() stays valid, in seconds. Default 900 (15 min). */
  presignExpiresSeconds?: number;
}

/** Metadata key (sent as x-amz-meta-sha256) recording the hex sha256 of the object's bytes. */
const SHA256_META = "sha256";

export class S3ArtifactStore implements ArtifactStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly presignExpiresSeconds: number;
  readonly #client: S3Client;

  constructor(options: S3StoreOptions) {
    if (!options.bucket) throw edgeError("EDGE_ERR_ARTIFACT_STORE", "the S3 artifact store needs a bucket");
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined))
      throw edgeError("EDGE_ERR_ARTIFACT_STORE", "accessKeyId and secretAccessKey must be given together");
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.presignExpiresSeconds = options.presignExpiresSeconds ?? 900;
    this.#client = new S3Client({
      region: options.region ?? "us-east-1",
      ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.accessKeyId !== undefined && {
        credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey! },
      }),
      // Few retries and short timeouts: a store that is down should fail a build in seconds,
      // not leave it hanging for minutes. Bound per S3 call: 3 tries, each at most 2 s to
      // connect and 10 s for the response, with the SDK's jittered backoff between them (≤ 0.2
      // then 0.4 s): a refused connection fails within ~0.6 s, a black hole within ~37 s. A
      // put() is two calls (HEAD, then PUT), so at most ~75 s. See docs/RELIABILITY.md.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 2000, requestTimeout: 10000 },
    });
  }

  /** Releases the client's sockets. */
  close(): void {
    this.#client.destroy();
  }

  private objectKey(key: string): string {
    if (!KEY_PATTERN.test(key)) throw edgeError("EDGE_ERR_ARTIFACT_NOT_FOUND", `not an artifact key: ${key}`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private where(objectKey: string): string {
    return `s3://${this.bucket}/${objectKey}`;
  }

  async put(key: string, bytes: Uint8Array): Promise<StoredArtifact> {
    const objectKey = this.objectKey(key);
    const stored = { key, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength };
    // A version's artifact never changes: the same bytes again is a no-op, other bytes are refused.
    if (await this.checkExisting(objectKey, stored.sha256)) return stored;
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: bytes,
          ContentType: "application/wasm",
          Metadata: { [SHA256_META]: stored.sha256 },
          // Create-only, so two builders racing on one key cannot overwrite each other where
          // the server supports conditional writes (AWS S3 does; s3rver ignores it).
          IfNoneMatch: "*",
        }),
      );
    } catch (err) {
      // Someone stored the key between our HEAD and PUT: accept it only if it is the same bytes.
      if (statusOf(err) === 412 || statusOf(err) === 409) {
        if (await this.checkExisting(objectKey, stored.sha256)) return stored;
      }
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not upload ${this.where(objectKey)}: ${describe(err)}`,
        undefined,
        err,
      );
    }
    return stored;
  }

  /** True when objectKey holds bytes with this sha256, false when absent; throws when it holds others. */
  private async checkExisting(objectKey: string, sha256: string): Promise<boolean> {
    let existing: string | undefined;
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      existing = head.Metadata?.[SHA256_META];
    } catch (err) {
      if (isNotFound(err)) return false;
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not check ${this.where(objectKey)}: ${describe(err)}`,
        undefined,
        err,
      );
    }
    if (existing === sha256) return true;
    throw edgeError(
      "EDGE_ERR_ARTIFACT_STORE",
      `${this.where(objectKey)} already holds other bytes (sha256 ${existing ?? "unrecorded"}, ` +
        `new ${sha256}); an artifact version is immutable`,
    );
  }

  async get(key: string): Promise<Uint8Array> {
    const objectKey = this.objectKey(key);
    try {
      const res = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      if (!res.Body) throw new Error("the response has no body");
      return await res.Body.transformToByteArray();
    } catch (err) {
      if (isNotFound(err)) throw edgeError("EDGE_ERR_ARTIFACT_NOT_FOUND", `no artifact ${key}`);
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not download ${this.where(objectKey)}: ${describe(err)}`,
        undefined,
        err,
      );
    }
  }

  /** A presigned GET URL, valid for presignExpiresSeconds; signing is local, no request is made. */
  async url(key: string): Promise<string> {
    const objectKey = this.objectKey(key);
    try {
      return await getSignedUrl(this.#client, new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), {
        expiresIn: this.presignExpiresSeconds,
      });
    } catch (err) {
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not presign ${this.where(objectKey)}: ${describe(err)}`,
        undefined,
        err,
      );
    }
  }
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

/** The object is absent; a missing bucket is a misconfigured store, not a missing artifact. */
function isNotFound(err: unknown): boolean {
  const name = (err as SdkError | undefined)?.name;
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || statusOf(err) === 404;
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host lookup failed",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
};

/**
 * One line saying what failed: the network condition, or the S3 error code and HTTP status, and
 * how many tries the SDK made (its retries are bounded by maxAttempts above); never a stack.
 */
function describe(err: unknown): string {
  const attempts = (err as SdkError | undefined)?.$metadata?.attempts;
  const cause = describeCause(err);
  return attempts && attempts > 1 ? `${cause}, after ${attempts} tries` : cause;
}

function describeCause(err: unknown): string {
  const e = (err ?? {}) as SdkError;
  if (e.code && NETWORK_CODES[e.code]) return `${NETWORK_CODES[e.code]} (${e.code})`;
  if (e.name === "TimeoutError") return `timed out (${e.message ?? "no response"})`;
  // Node reports a failed connect to every address of a host as an AggregateError with an empty message.
  const inner = e.errors?.[0] as SdkError | undefined;
  if (inner?.code && NETWORK_CODES[inner.code]) return `${NETWORK_CODES[inner.code]} (${inner.code})`;
  const status = statusOf(err);
  const message = e.message || inner?.message || "unknown error";
  const name = e.name && e.name !== "Error" ? `${e.name}: ` : "";
  return status === undefined ? `${name}${message}` : `${name}${message} (HTTP ${status})`;
}
