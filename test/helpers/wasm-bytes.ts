// Hand-assembled WebAssembly binaries for validation tests: the smallest modules that have
// exactly the imports, memory and exports a test needs. Every defined function is () -> i32
// and returns 0.

export interface WasmShape {
  /** Function imports, all of type () -> i32. */
  imports?: { module: string; name: string }[];
  memory?: { initial: number; maximum?: number } | null;
  /** Export names: "memory" exports the memory; any other name exports the defined function. */
  exports?: string[];
}

const enc = new TextEncoder();

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const name = (s: string) => [...uleb(enc.encode(s).length), ...enc.encode(s)];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

export function wasmModule(shape: WasmShape): Uint8Array {
  const imports = shape.imports ?? [];
  const memory = shape.memory === undefined ? { initial: 1, maximum: 1 } : shape.memory;
  const exports = shape.exports ?? ["memory", "edge_handle"];
  const bytes = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  bytes.push(...section(1, vec([[0x60, 0x00, 0x01, 0x7f]])));
  if (imports.length)
    bytes.push(...section(2, vec(imports.map((i) => [...name(i.module), ...name(i.name), 0x00, 0x00]))));
  bytes.push(...section(3, vec([[0x00]])));
  if (memory) {
    const limits =
      memory.maximum === undefined
        ? [0x00, ...uleb(memory.initial)]
        : [0x01, ...uleb(memory.initial), ...uleb(memory.maximum)];
    bytes.push(...section(5, vec([limits])));
  }
  bytes.push(
    ...section(
      7,
      vec(
        exports.map((e) =>
          e === "memory" ? [...name(e), 0x02, 0x00] : [...name(e), 0x00, ...uleb(imports.length)],
        ),
      ),
    ),
  );
  bytes.push(...section(10, vec([[0x04, 0x00, 0x41, 0x00, 0x0b]])));
  return new Uint8Array(bytes);
}
