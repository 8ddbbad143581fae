// The runner's local artifact cache: `{cacheDir}/{functionId}/{version}.wasm`.
//
// Seed Property 5 (local cache consistency): a cached file always hashes to the sha256 the
// deployment expects. So bytes are verified *before* they are written, they appear under their
// final name only by an atomic rename (a crash never leaves a half-written module under it), and
// every read re-verifies; a file that no longer matches is deleted and treated as absent.

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { edgeError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import type { InventoryItem } from "../proto/index.ts";

const SUFFIX = ".wasm";
const TEMP_MARK = ".tmp-";

// Ids and versions become path segments, so they must not be able to climb out of cacheDir
// ("..", "/") or collide with temp files and other entries (leading dot).
const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._+@-]*$/;

function checkSegment(what: string, value: string): void {
  if (!SAFE_SEGMENT.test(value) || value.length > 200) {
    throw edgeError(
      "EDGE_ERR_ARTIFACT_STORE",
      `${what} ${JSON.stringify(value)} cannot be used as a cache file name`,
    );
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

export class ArtifactCache {
  readonly dir: string;
  readonly #logger: Logger | undefined;
  /** What this object knows the disk holds: filled by list(), kept current by put/get/remove. */
  readonly #index = new Map<string, InventoryItem>();

  constructor(dir: string, logger?: Logger) {
    this.dir = dir;
    this.#logger = logger;
  }

  /** Where a version lives; throws EDGE_ERR_ARTIFACT_STORE for ids that are not safe file names. */
  pathOf(functionId: string, version: string): string {
    checkSegment("function id", functionId);
    checkSegment("version", version);
    return join(this.dir, functionId, version + SUFFIX);
  }

  /**
   * Stores verified bytes. Throws EDGE_ERR_ARTIFACT_SHA256_MISMATCH (and writes nothing) when
   * the bytes do not hash to `expectedSha256`; EDGE_ERR_ARTIFACT_STORE when the disk fails.
   */
  async put(functionId: string, version: string, bytes: Uint8Array, expectedSha256: string): Promise<string> {
    const actual = sha256Hex(bytes);
    if (actual !== expectedSha256.toLowerCase()) {
      throw edgeError(
        "EDGE_ERR_ARTIFACT_SHA256_MISMATCH",
        `artifact ${functionId}@${version} hashes to ${actual}, expected ${expectedSha256}`,
      );
    }
    const target = this.pathOf(functionId, version);
    const dir = join(this.dir, functionId);
    // The temp file sits in the same directory so the rename stays on one filesystem (atomic).
    const temp = join(dir, `${TEMP_MARK}${version}-${randomBytes(6).toString("hex")}`);
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(temp, "wx");
      try {
        await fh.writeFile(bytes);
        // Flush before the rename, or a power loss could leave the final name on empty blocks.
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not write ${target}: ${(err as Error).message}`,
        undefined,
        err,
      );
    }
    this.#index.set(target, { function_id: functionId, version, sha256: actual });
    return target;
  }

  /** The cached bytes if present and intact; a file that fails verification is deleted. */
  async get(functionId: string, version: string, expectedSha256: string): Promise<Uint8Array | null> {
    const path = this.pathOf(functionId, version);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) {
        this.#index.delete(path);
        return null;
      }
      throw edgeError(
        "EDGE_ERR_ARTIFACT_STORE",
        `could not read ${path}: ${(err as Error).message}`,
        undefined,
        err,
      );
    }
    const actual = sha256Hex(bytes);
    if (actual !== expectedSha256.toLowerCase()) {
      this.#logger?.warn(
        { function_id: functionId, version, expected: expectedSha256, actual },
        "cached artifact is corrupt; deleting it",
      );
      this.#index.delete(path);
      await unlink(path).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      return null;
    }
    this.#index.set(path, { function_id: functionId, version, sha256: actual });
    return bytes;
  }

  /** Deletes a cached version; absent files are fine. */
  async remove(functionId: string, version: string): Promise<void> {
    const path = this.pathOf(functionId, version);
    this.#index.delete(path);
    await unlink(path).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /**
   * The inventory as of the last list() plus what was stored, read or removed through this
   * object since: cheap enough for every heartbeat, unlike list(), which hashes every file.
   */
  held(): InventoryItem[] {
    return [...this.#index.values()];
  }

  /**
   * What the cache holds, with the sha256 of each file as it is on disk now (not as it was
   * meant to be), so a restarted runner reports the truth in its Hello.
   */
  async list(): Promise<InventoryItem[]> {
    const items: InventoryItem[] = [];
    this.#index.clear();
    let functionDirs: string[];
    try {
      functionDirs = (await readdir(this.dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && SAFE_SEGMENT.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch (err) {
      if (isNotFound(err)) return items;
      throw err;
    }
    for (const functionId of functionDirs) {
      const files = await readdir(join(this.dir, functionId)).catch(() => [] as string[]);
      for (const file of files.sort()) {
        if (!file.endsWith(SUFFIX) || file.startsWith(TEMP_MARK)) continue;
        const version = file.slice(0, -SUFFIX.length);
        if (!SAFE_SEGMENT.test(version)) continue;
        try {
          const path = join(this.dir, functionId, file);
          const item = { function_id: functionId, version, sha256: sha256Hex(await readFile(path)) };
          items.push(item);
          this.#index.set(path, item);
        } catch (err) {
          // Deleted between readdir and read (a concurrent get of a corrupt file): not held.
          if (!isNotFound(err)) throw err;
        }
      }
    }
    return items;
  }
}
