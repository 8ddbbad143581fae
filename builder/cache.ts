// The build cache: artifacts keyed by everything that decides their bytes — the hash of the
// exact source tree the compiler saw, the toolchain's version fingerprint, and the settings
// that change the output (language, entry, abi, memoryPages, runtime and the optimiser's
// version). An unchanged function is not rebuilt; the hit is recorded in the build result.
// Entries are verified by sha256 on every read: a damaged entry is dropped and rebuilt.

import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { canonicalJson, sha256Hex } from "../lib/hash.ts";
import type { OptimizeRecord } from "./job.ts";

/** Bump when the builder changes how it turns sources into bytes, to invalidate old entries. */
export const BUILDER_CACHE_VERSION = 1;

export interface CacheKeyParts {
  sourceHash: string;
  toolchain: string;
  language: string;
  entry: string | null;
  abi: string;
  memoryPages: number;
  runtime: string;
  optimizer: string | null;
}

export function cacheKey(parts: CacheKeyParts): string {
  return sha256Hex(canonicalJson({ builder: BUILDER_CACHE_VERSION, ...parts }));
}

export interface CachedBuild {
  bytes: Uint8Array<ArrayBuffer>;
  sha256: string;
  optimized: OptimizeRecord | null;
}

interface Meta {
  sha256: string;
  size: number;
  optimized: OptimizeRecord | null;
  toolchain: string;
  createdAt: string;
}

export class BuildCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  private files(key: string): { wasm: string; meta: string } {
    const base = path.join(this.dir, key.slice(0, 2), key);
    return { wasm: `${base}.wasm`, meta: `${base}.json` };
  }

  /** The cached build, or null when absent or damaged (a damaged entry is removed). */
  async get(key: string): Promise<CachedBuild | null> {
    const f = this.files(key);
    let meta: Meta;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      meta = JSON.parse(await readFile(f.meta, "utf8")) as Meta;
      bytes = new Uint8Array(await readFile(f.wasm));
    } catch {
      return null;
    }
    if (sha256Hex(bytes) !== meta.sha256) {
      await Promise.all([rm(f.wasm, { force: true }), rm(f.meta, { force: true })]);
      return null;
    }
    return { bytes, sha256: meta.sha256, optimized: meta.optimized };
  }

  /** Stores a build; write-then-rename, the metadata last, so a reader never sees half an entry. */
  async put(
    key: string,
    bytes: Uint8Array,
    sha256: string,
    toolchain: string,
    optimized: OptimizeRecord | null,
  ) {
    const f = this.files(key);
    await mkdir(path.dirname(f.wasm), { recursive: true });
    const meta: Meta = {
      sha256,
      size: bytes.byteLength,
      optimized,
      toolchain,
      createdAt: new Date().toISOString(),
    };
    const tmp = `.${randomUUID()}.tmp`;
    await writeFile(f.wasm + tmp, bytes);
    await rename(f.wasm + tmp, f.wasm);
    await writeFile(f.meta + tmp, JSON.stringify(meta));
    await rename(f.meta + tmp, f.meta);
  }
}
