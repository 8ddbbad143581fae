// The runner's local artifact cache: `{cacheDir}/{functionId}/{version}.wasm`.
//
// Seed Property 5 (local cache consistency): a cached file always hashes to the sha256 the
// deployment expects. So bytes are verified *before* they are written, they appear under their
// final name only by an atomic rename (a crash never leaves a half-written module under it), and
// every read re-verifies; a file that no longer matches is deleted and treated as absent.
//
// Seed Property 15 (LRU eviction, Requirement 5.2): the cache is bounded by total bytes and by
// count; `evict` deletes the least recently used artifacts first until both limits hold,
// skipping those the runner serves now (they would only be downloaded again). Recency is kept
// in each file's mtime — set on every put and get from a clock that never repeats a value — so
// a restarted runner knows the same order.

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rmdir, stat, unlink, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import { edgeError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/hash.ts";
import type { Logger } from "../lib/log.ts";
import type { InventoryItem } from "../proto/index.ts";
import { Lru } from "./lru.ts";

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

export interface CacheLimits {
  maxBytes: number;
  maxEntries: number;
  /** Clock in epoch ms (injectable for tests). */
  now?: () => number;
  /** Called when a read finds a file that no longer hashes to its sha256 (it is then deleted). */
  onCorrupt?: (functionId: string, version: string) => void;
}

export class ArtifactCache {
  readonly dir: string;
  readonly #logger: Logger | undefined;
  /**
   * What this object knows the disk holds, least recently used first, weighed in bytes: filled
   * by list(), kept current by put/get/remove.
   */
  readonly #index: Lru<string, InventoryItem>;
  readonly #now: () => number;
  readonly #onCorrupt: ((functionId: string, version: string) => void) | undefined;
  /** The last recency stamp given out; every new one is larger. */
  #clock = 0;

  constructor(dir: string, logger?: Logger, limits?: CacheLimits) {
    this.dir = dir;
    this.#logger = logger;
    this.#index = new Lru({
      maxCount: limits?.maxEntries ?? Number.POSITIVE_INFINITY,
      maxWeight: limits?.maxBytes ?? Number.POSITIVE_INFINITY,
    });
    this.#now = limits?.now ?? Date.now;
    this.#onCorrupt = limits?.onCorrupt;
  }

  /** A recency stamp (ms) later than any given before, so stored order never has ties. */
  #stamp(): number {
    this.#clock = Math.max(Math.floor(this.#now()), this.#clock + 1);
    return this.#clock;
  }

  /** Marks a file as just used, in memory and in its mtime (for the next process). */
  async #used(path: string, item: InventoryItem, size: number): Promise<void> {
    const t = this.#stamp() / 1000;
    this.#index.set(path, item, size);
    await utimes(path, t, t).catch((err) => {
      if (!isNotFound(err)) this.#logger?.warn({ err, path }, "could not record an artifact's use");
    });
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
      const t = this.#stamp() / 1000;
      await utimes(temp, t, t);
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
    this.#index.set(target, { function_id: functionId, version, sha256: actual }, bytes.byteLength);
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
      this.#onCorrupt?.(functionId, version);
      this.#index.delete(path);
      await unlink(path).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      return null;
    }
    await this.#used(path, { function_id: functionId, version, sha256: actual }, bytes.byteLength);
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
    return this.#index.keys().map((k) => this.#index.get(k)!);
  }

  /** Bytes and number of artifacts held. */
  usage(): { bytes: number; entries: number } {
    return { bytes: this.#index.weight, entries: this.#index.size };
  }

  /**
   * Deletes least recently used artifacts until the cache is within its limits, never one for
   * which `keep(functionId, version)` is true. Returns what was deleted, least recent first.
   */
  async evict(
    keep: (functionId: string, version: string) => boolean = () => false,
  ): Promise<InventoryItem[]> {
    const gone = this.#index.evict((_path, item) => keep(item.function_id, item.version));
    for (const { key } of gone) {
      await unlink(key).catch((err) => {
        if (!isNotFound(err)) this.#logger?.warn({ err, path: key }, "could not delete an evicted artifact");
      });
      // The function's directory goes with its last version (another version may still be in it).
      await rmdir(dirname(key)).catch(() => {});
    }
    if (gone.length > 0) {
      this.#logger?.info(
        { evicted: gone.map((g) => `${g.value.function_id}@${g.value.version}`), ...this.usage() },
        "evicted least recently used artifacts from the local cache",
      );
    }
    if (this.#index.overLimit()) {
      this.#logger?.warn(this.usage(), "local cache is over its limits with artifacts that are being served");
    }
    return gone.map((g) => g.value);
  }

  /**
   * What the cache holds, with the sha256 of each file as it is on disk now (not as it was
   * meant to be), so a restarted runner reports the truth in its Hello.
   */
  async list(): Promise<InventoryItem[]> {
    const found: Array<{ path: string; item: InventoryItem; size: number; mtimeMs: number }> = [];
    for (const key of this.#index.keys()) this.#index.delete(key);
    let functionDirs: string[];
    try {
      functionDirs = (await readdir(this.dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && SAFE_SEGMENT.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch (err) {
      if (isNotFound(err)) return [];
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
          const [bytes, info] = await Promise.all([readFile(path), stat(path)]);
          const item = { function_id: functionId, version, sha256: sha256Hex(bytes) };
          found.push({ path, item, size: bytes.byteLength, mtimeMs: info.mtimeMs });
        } catch (err) {
          // Deleted between readdir and read (a concurrent get of a corrupt file): not held.
          if (!isNotFound(err)) throw err;
        }
      }
    }
    // Least recently used first, as the last process left them.
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) {
      this.#index.set(f.path, f.item, f.size);
      this.#clock = Math.max(this.#clock, Math.ceil(f.mtimeMs));
    }
    return found.map((f) => f.item);
  }
}
