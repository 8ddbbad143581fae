// A minimal reader of the WebAssembly binary format (spec §5): enough to walk sections, imports,
// limits and function types, for what the JS API does not expose. Every read is bounds-checked,
// so a truncated or hostile module yields Truncated, never a read past its end.

import { edgeError } from "../lib/errors.ts";

export const SECTION_IMPORT = 2;
export const SECTION_MEMORY = 5;
export const FLAG_HAS_MAX = 0x01;
export const FLAG_SHARED = 0x02;
export const FLAG_MEMORY64 = 0x04;

export class Truncated extends Error {}

/** A cursor over the binary; every read is bounds-checked, so a truncated module cannot read past its end. */
export class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
  ) {
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.bytes.length) throw new Truncated();
    return this.bytes[this.pos++]!;
  }
  /** An unsigned LEB128 of up to 64 bits, as a double (exact up to 2^53, enough to compare). */
  uleb(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new Truncated();
  }
  skip(n: number): void {
    if (this.pos + n > this.bytes.length) throw new Truncated();
    this.pos += n;
  }
  skipName(): void {
    this.skip(this.uleb());
  }
}

export interface Limits {
  flags: number;
  initial: number;
  maximum: number | null;
}

export function readLimits(r: Reader): Limits {
  const flags = r.byte();
  const initial = r.uleb();
  const maximum = flags & FLAG_HAS_MAX ? r.uleb() : null;
  return { flags, initial, maximum };
}

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  end: number;
}

export function sections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw edgeError("EDGE_ERR_BUILD_INVALID_MODULE", "the output is not a WebAssembly module (bad magic)");
  }
  const r = new Reader(bytes, 8);
  const out: Section[] = [];
  while (r.pos < bytes.length) {
    const start = r.pos;
    const id = r.byte();
    const size = r.uleb();
    const contentStart = r.pos;
    r.skip(size);
    out.push({ id, start, contentStart, end: r.pos });
  }
  return out;
}

export const SECTION_TYPE = 1;
export const SECTION_FUNCTION = 3;
export const SECTION_EXPORT = 7;

/**
 * Walks the entries of an import section. onMemory is called with the reader at the memory's
 * limits and must read them; onFunction gets a function import's type index.
 */
export function walkImports(
  r: Reader,
  on: { onMemory?: (limitsStart: number) => void; onFunction?: (typeIndex: number) => void },
): void {
  const count = r.uleb();
  for (let i = 0; i < count; i++) {
    r.skipName();
    r.skipName();
    const kind = r.byte();
    if (kind === 0) {
      const type = r.uleb();
      on.onFunction?.(type);
    } else if (kind === 1) {
      r.byte(); // table: reference type, then limits
      readLimits(r);
    } else if (kind === 2) {
      if (on.onMemory) on.onMemory(r.pos);
      else readLimits(r);
    } else if (kind === 3) {
      r.byte(); // global: value type, mutability
      r.byte();
    } else if (kind === 4) {
      r.byte(); // tag: attribute, type index
      r.uleb();
    } else throw new Truncated();
  }
}

const VALUE_TYPES: Record<number, string> = {
  127: "i32",
  126: "i64",
  125: "f32",
  124: "f64",
  123: "v128",
  112: "funcref",
  111: "externref",
};

export interface FuncType {
  params: string[];
  results: string[];
}

/** "(i32, i32) -> i32" */
export function formatFuncType(t: FuncType): string {
  const results =
    t.results.length === 0 ? "()" : t.results.length === 1 ? t.results[0] : `(${t.results.join(", ")})`;
  return `(${t.params.join(", ")}) -> ${results}`;
}

/**
 * The signature of every exported function, by export name. Returns null when the module uses
 * type encodings beyond MVP value types (GC proposal rec groups and reference heap types): the
 * caller then skips signature checks rather than guessing.
 */
export function exportedFunctionTypes(bytes: Uint8Array): Map<string, FuncType> | null {
  try {
    const types: FuncType[] = [];
    const funcTypes: number[] = [];
    const exported = new Map<string, number>();
    for (const s of sections(bytes)) {
      const r = new Reader(bytes.subarray(0, s.end), s.contentStart);
      if (s.id === SECTION_TYPE) {
        const count = r.uleb();
        for (let i = 0; i < count; i++) {
          if (r.byte() !== 0x60) return null;
          const vec = () => {
            const n = r.uleb();
            const out: string[] = [];
            for (let j = 0; j < n; j++) {
              const t = VALUE_TYPES[r.byte()];
              if (t === undefined) throw new Unsupported();
              out.push(t);
            }
            return out;
          };
          const params = vec();
          types.push({ params, results: vec() });
        }
      } else if (s.id === SECTION_IMPORT) {
        walkImports(r, { onFunction: (t) => funcTypes.push(t) });
      } else if (s.id === SECTION_FUNCTION) {
        const count = r.uleb();
        for (let i = 0; i < count; i++) funcTypes.push(r.uleb());
      } else if (s.id === SECTION_EXPORT) {
        const count = r.uleb();
        for (let i = 0; i < count; i++) {
          const len = r.uleb();
          const start = r.pos;
          r.skip(len);
          const name = new TextDecoder().decode(bytes.subarray(start, start + len));
          const kind = r.byte();
          const index = r.uleb();
          if (kind === 0) exported.set(name, index);
        }
      }
    }
    const out = new Map<string, FuncType>();
    for (const [name, index] of exported) {
      const type = types[funcTypes[index] ?? -1];
      if (type) out.set(name, type);
    }
    return out;
  } catch (err) {
    if (err instanceof Unsupported) return null;
    throw err;
  }
}

class Unsupported extends Error {}
