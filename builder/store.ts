// Artifact stores. One interface; the local directory store is the embedded default (the
// control plane serves its files over HTTP at /artifacts/…); an S3 store comes with the
// builder issue. Keys follow the seed: functions/{function_id}/{version}.wasm.

import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";

export interface StoredArtifact {
  key: string;
  sha256: string;
  size: number;
}

export interface ArtifactStore {
  /** Stores bytes under key; idempotent for the same bytes. */
  put(key: string, bytes: Uint8Array): Promise<StoredArtifact>;
  /** The bytes under key; EDGE_ERR_ARTIFACT_NOT_FOUND when absent. */
  get(key: string): Promise<Uint8Array>;
  /** A URL a runner can download the artifact from. */
  url(key: string): Promise<string>;
  /** Releases connections, if the store holds any. */
  close?(): void;
}

export function artifactKey(functionId: string, version: string): string {
  return `functions/${functionId}/${version}.wasm`;
}

/** The keys both stores accept: functions/{function_id}/{version}.wasm. */
export const KEY_PATTERN = /^functions\/[A-Za-z0-9-]+\/[A-Za-z0-9._-]+\.wasm$/;

export class LocalArtifactStore implements ArtifactStore {
  readonly dir: string;
  /** Base URL under which the control plane serves this directory, e.g. http://127.0.0.1:8081/artifacts */
  baseUrl: string;

  constructor(dir: string, baseUrl = "") {
    this.dir = path.resolve(dir);
    this.baseUrl = baseUrl;
  }

  private fileOf(key: string): string {
    if (!KEY_PATTERN.test(key)) throw edgeError("EDGE_ERR_ARTIFACT_NOT_FOUND", `not an artifact key: ${key}`);
    return path.join(this.dir, key);
  }

  async put(key: string, bytes: Uint8Array): Promise<StoredArtifact> {
    const file = this.fileOf(key);
    try {
      await mkdir(path.dirname(file), { recursive: true });
      // Write then rename, so a reader never sees half an artifact.
      const tmp = `${file}.${randomUUID()}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not write ${key}: ${(err as Error).message}`,
        undefined,
        err,
      );
    }
    return { key, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength };
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return await readFile(this.fileOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw edgeError("EDGE_ERR_ARTIFACT_NOT_FOUND", `no artifact ${key}`);
      throw err;
    }
  }

  async url(key: string): Promise<string> {
    return `${this.baseUrl}/${key}`;
  }
}
