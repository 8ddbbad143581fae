// The runner's own check of a module's resource limits, before V8 ever compiles it. The
// builder caps memory too, but a runner does not trust what it downloads (DESIGN.md "Sandbox
// rules"; seed Property 7, Requirement 7.1): the limits here are applied to the bytes the
// runner compiles, so they hold whatever toolchain or hand produced the artifact.
//
// - A defined memory's maximum is rewritten to min(declared maximum, memoryPages): `memory.grow`
//   past it then fails inside the guest (returns -1), on any engine. A memory that starts above
//   the limit, a shared (threads) or 64-bit memory, and more than one memory are refused.
// - An imported memory (only `env.memory`) is never rewritten: the executor supplies it as
//   `new WebAssembly.Memory({ initial, maximum })` with the same capped maximum.
// - Tables get the same treatment with TABLE_MAX_ELEMENTS, so a module cannot make each of its
//   instances allocate a huge table, at instantiation or with `table.grow`.
// - Imported tables and globals are refused: nothing on the host side backs them.
//
// Only the memory and table sections are re-encoded; every other byte is copied. The rewritten
// section is parsed completely (no trailing bytes), so V8 compiles exactly what was checked.

import { edgeError } from "../lib/errors.ts";

/** Ceiling of any table's elements (initial and maximum): far above what compilers emit. */
export const TABLE_MAX_ELEMENTS = 100_000;

export interface MemoryPlan {
  /** Supplied by the host (`env.memory`) rather than defined by the module. */
  imported: boolean;
  /** Pages of 64 KiB. */
  initial: number;
  /** Effective ceiling in pages: min(declared maximum, memoryPages). */
  maximum: number;
}

export interface LimitedModule {
  /** The module with its memory and table maxima capped; the input itself when nothing changed. */
  bytes: Uint8Array;
  /** Its only memory, or null when it has none. */
  memory: MemoryPlan | null;
}

const SECTION_IMPORT = 2;
const SECTION_TABLE = 4;
const SECTION_MEMORY = 5;
const KIND_TABLE = 1;
const KIND_MEMORY = 2;
const KIND_GLOBAL = 3;
const HAS_MAX = 0x01;
const SHARED = 0x02;
const MEMORY64 = 0x04;

class Malformed extends Error {}

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  byte(): number {
    if (this.pos >= this.end) throw new Malformed("unexpected end");
    return this.bytes[this.pos++]!;
  }
  /** Unsigned LEB128 of at most 32 bits (5 bytes). */
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw new Malformed("LEB128 out of range");
        return result;
      }
    }
    throw new Malformed("LEB128 too long");
  }
  skip(n: number): void {
    if (n > this.end - this.pos) throw new Malformed("unexpected end");
    this.pos += n;
  }
  name(): string {
    const len = this.u32();
    const start = this.pos;
    this.skip(len);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, len).toString("utf8");
  }
}

interface Limits {
  flags: number;
  initial: number;
  maximum: number | null;
}

function readLimits(r: Reader): Limits {
  const flags = r.byte();
  if (flags > 0x07) throw new Malformed(`unknown limits flags 0x${flags.toString(16)}`);
  const initial = r.u32();
  const maximum = flags & HAS_MAX ? r.u32() : null;
  return { flags, initial, maximum };
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function refuse(message: string): never {
  throw edgeError("EDGE_ERR_RUNTIME_INSTANTIATE", message);
}

/** Checks one memory's limits against the ceiling and returns the capped maximum. */
function capMemory(l: Limits, memoryPages: number, which: string): number {
  if (l.flags & SHARED) refuse(`${which} is shared; only unshared memories are allowed`);
  if (l.flags & MEMORY64) refuse(`${which} is 64-bit; only 32-bit memories are allowed`);
  if (l.initial > memoryPages)
    refuse(`${which} starts with ${l.initial} pages; the limit is memoryPages = ${memoryPages}`);
  return Math.min(l.maximum ?? memoryPages, memoryPages);
}

function capTable(l: Limits, which: string): number {
  if (l.flags & ~HAS_MAX) refuse(`${which} has unsupported limits flags`);
  if (l.initial > TABLE_MAX_ELEMENTS)
    refuse(`${which} starts with ${l.initial} elements; at most ${TABLE_MAX_ELEMENTS} are allowed`);
  return Math.min(l.maximum ?? TABLE_MAX_ELEMENTS, TABLE_MAX_ELEMENTS);
}

/**
 * Applies the runner's limits to a module's bytes (see the header comment). Throws
 * EDGE_ERR_RUNTIME_INSTANTIATE naming the problem. Bytes without the wasm magic are left for
 * WebAssembly.compile to refuse with its own message.
 */
export function limitModule(bytes: Uint8Array, memoryPages: number): LimitedModule {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    return { bytes, memory: null };
  }
  const replaced: Array<{ start: number; end: number; content: number[] }> = [];
  let memory: MemoryPlan | null = null;
  let memories = 0;
  try {
    const outer = new Reader(bytes, 8, bytes.length);
    while (outer.pos < outer.end) {
      const headerStart = outer.pos;
      const id = outer.byte();
      const size = outer.u32();
      const start = outer.pos;
      outer.skip(size);
      const r = new Reader(bytes, start, start + size);
      if (id === SECTION_IMPORT) {
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          const module = r.name();
          const name = r.name();
          const kind = r.byte();
          if (kind === 0x00) r.u32();
          else if (kind === KIND_MEMORY) {
            const l = readLimits(r);
            const which = `imported memory ${module}.${name}`;
            if (module !== "env" || name !== "memory")
              refuse(`${which}: only env.memory may be imported as memory`);
            memories++;
            memory = { imported: true, initial: l.initial, maximum: capMemory(l, memoryPages, which) };
          } else if (kind === KIND_TABLE)
            refuse(`module imports a table (${module}.${name}); tables must be its own`);
          else if (kind === KIND_GLOBAL)
            refuse(`module imports a global (${module}.${name}); the runner provides none`);
          else throw new Malformed(`unknown import kind ${kind}`);
        }
        if (r.pos !== r.end) throw new Malformed("trailing bytes in the import section");
      } else if (id === SECTION_TABLE) {
        const count = r.u32();
        const content = uleb(count);
        for (let i = 0; i < count; i++) {
          const refType = r.byte();
          // funcref and externref only: newer encodings (typed references, table initialisers)
          // would be re-encoded wrongly, so they are refused rather than guessed at.
          if (refType !== 0x70 && refType !== 0x6f)
            throw new Malformed(`table ${i} has reference type 0x${refType.toString(16)}`);
          const l = readLimits(r);
          const max = capTable(l, `table ${i}`);
          content.push(refType, HAS_MAX, ...uleb(l.initial), ...uleb(max));
        }
        if (r.pos !== r.end) throw new Malformed("trailing bytes in the table section");
        replaced.push({
          start: headerStart,
          end: start + size,
          content: [id, ...uleb(content.length), ...content],
        });
      } else if (id === SECTION_MEMORY) {
        const count = r.u32();
        const content = uleb(count);
        for (let i = 0; i < count; i++) {
          const l = readLimits(r);
          const max = capMemory(l, memoryPages, count > 1 ? `memory ${i}` : "memory");
          memories++;
          memory = { imported: false, initial: l.initial, maximum: max };
          content.push(HAS_MAX, ...uleb(l.initial), ...uleb(max));
        }
        if (r.pos !== r.end) throw new Malformed("trailing bytes in the memory section");
        replaced.push({
          start: headerStart,
          end: start + size,
          content: [id, ...uleb(content.length), ...content],
        });
      }
    }
  } catch (err) {
    // Fail closed: a module whose limits cannot be read is not run, even if V8 might accept it.
    if (err instanceof Malformed) refuse(`not a valid WebAssembly module: ${err.message}`);
    throw err;
  }
  if (memories > 1) refuse(`module has ${memories} memories; one is allowed`);
  if (replaced.length === 0) return { bytes, memory };

  const parts: Uint8Array[] = [];
  let at = 0;
  for (const r of replaced) {
    parts.push(bytes.subarray(at, r.start), Uint8Array.from(r.content));
    at = r.end;
  }
  parts.push(bytes.subarray(at));
  return { bytes: Buffer.concat(parts), memory };
}
