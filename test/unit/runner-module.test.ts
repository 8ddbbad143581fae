// The runner's own limits on a module's bytes (edge-runner/module.ts): memory and table maxima
// rewritten, what cannot be limited refused, everything else copied.

import test from "ava";
import { limitModule, TABLE_MAX_ELEMENTS } from "../../edge-runner/module.ts";
import { EdgeError } from "../../lib/errors.ts";
import { wat } from "../helpers/wasm.ts";
import { wasmModule } from "../helpers/wasm-bytes.ts";

const refused = (bytes: Uint8Array, pages: number) => {
  try {
    limitModule(bytes, pages);
    return null;
  } catch (err) {
    return err instanceof EdgeError ? `${err.code}: ${err.message}` : String(err);
  }
};

test("module: a memory without a maximum gets memoryPages as its maximum", async (t) => {
  const limited = limitModule(wasmModule({ memory: { initial: 1 } }), 16);
  t.deepEqual(limited.memory, { imported: false, initial: 1, maximum: 16 });
  // V8 sees the new maximum.
  const memory = new WebAssembly.Instance(new WebAssembly.Module(limited.bytes as Uint8Array<ArrayBuffer>))
    .exports.memory as WebAssembly.Memory;
  t.is(memory.grow(15), 1);
  t.throws(() => memory.grow(1), { instanceOf: RangeError });
});

test("module: a lower declared maximum is kept, a higher one is cut to memoryPages", (t) => {
  t.is(limitModule(wasmModule({ memory: { initial: 1, maximum: 4 } }), 16).memory?.maximum, 4);
  t.is(limitModule(wasmModule({ memory: { initial: 1, maximum: 65536 } }), 16).memory?.maximum, 16);
});

test("module: bytes are untouched when nothing needs limiting", (t) => {
  const bytes = wasmModule({ memory: null, exports: ["edge_handle"] });
  t.is(limitModule(bytes, 16).bytes, bytes);
});

test("module: memories that cannot be limited are refused with a reason", async (t) => {
  t.regex(
    refused(wasmModule({ memory: { initial: 20, maximum: 30 } }), 16)!,
    /starts with 20 pages; the limit is memoryPages = 16/,
  );
  t.regex(refused(await wat("(module (memory 1 2 shared))"), 16)!, /shared/);
  t.regex(refused(await wat('(module (import "other" "mem" (memory 1)))'), 16)!, /only env\.memory/);
  t.regex(refused(await wat('(module (import "env" "t" (table 1 funcref)))'), 16)!, /imports a table/);
  t.regex(refused(await wat('(module (import "env" "g" (global i32)))'), 16)!, /imports a global/);
});

test("module: an imported env.memory is planned with the capped maximum, not rewritten", async (t) => {
  const bytes = await wat('(module (import "env" "memory" (memory 2)))');
  const limited = limitModule(bytes, 8);
  t.is(limited.bytes, bytes);
  t.deepEqual(limited.memory, { imported: true, initial: 2, maximum: 8 });
});

test("module: tables are capped at TABLE_MAX_ELEMENTS; a larger initial size is refused", async (t) => {
  const capped = limitModule(await wat('(module (table (export "t") 1 funcref))'), 16);
  const table = new WebAssembly.Instance(new WebAssembly.Module(capped.bytes as Uint8Array<ArrayBuffer>))
    .exports.t as WebAssembly.Table;
  t.throws(() => table.grow(TABLE_MAX_ELEMENTS), { instanceOf: RangeError });
  t.regex(
    refused(await wat("(module (table 10000000 funcref))"), 16)!,
    /table 0 starts with 10000000 elements/,
  );
});

test("module: sections it cannot read are refused rather than guessed at", (t) => {
  // A memory section whose limits flags are unknown.
  const bytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0x08, 1]);
  t.regex(refused(bytes, 16)!, /EDGE_ERR_RUNTIME_INSTANTIATE: not a valid WebAssembly module/);
  // Not wasm at all: left to WebAssembly.compile, which says so in its own words.
  const garbage = Buffer.from("not wasm");
  t.is(limitModule(garbage, 16).bytes, garbage);
});
