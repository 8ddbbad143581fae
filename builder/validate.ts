// Checks a built module against the ABI and limits before anything is stored: what reaches a
// runner is valid wasm, imports only what the sandbox provides, exports what its ABI lane
// needs, and declares no more memory than the manifest allows (DESIGN.md "Sandbox rules").

import { edgeError } from "../lib/errors.ts";
import type { Abi } from "../schema/index.ts";

const ALLOWED_IMPORT_MODULES = new Set(["edge", "wasi_snapshot_preview1"]);
const EDGE_V1_IMPORTS = new Set(["request_len", "request_read", "response_write", "log"]);

export interface ModuleFacts {
  abi: Abi;
  imports: string[];
  exports: string[];
  /** Declared memory limits in 64 KiB pages; maximum null when the module sets none. */
  memory: { initial: number; maximum: number | null } | null;
}

export function validateModule(input: Uint8Array, abi: Abi, memoryPages: number): ModuleFacts {
  const bytes = input as Uint8Array<ArrayBuffer>; // WebAssembly takes only non-shared buffers
  if (!WebAssembly.validate(bytes)) {
    throw edgeError("EDGE_ERR_BUILD_INVALID_MODULE", "the output is not a valid WebAssembly module");
  }
  const module = new WebAssembly.Module(bytes);
  const imports = WebAssembly.Module.imports(module);
  const exports = WebAssembly.Module.exports(module);
  const problems: string[] = [];

  for (const imp of imports) {
    if (!ALLOWED_IMPORT_MODULES.has(imp.module)) {
      problems.push(
        `imports "${imp.module}.${imp.name}": only the "edge" and "wasi_snapshot_preview1" modules are provided`,
      );
    } else if (imp.module === "edge" && !(imp.kind === "function" && EDGE_V1_IMPORTS.has(imp.name))) {
      problems.push(`imports "edge.${imp.name}" (${imp.kind}), which the edge-v1 ABI does not provide`);
    }
  }
  const exported = new Map(exports.map((e) => [e.name, e.kind]));
  if (exported.get("memory") !== "memory") problems.push('does not export its linear memory as "memory"');
  const detected: Abi | null =
    exported.get("edge_handle") === "function"
      ? "edge-v1"
      : exported.get("_start") === "function"
        ? "wagi"
        : null;
  if (detected === null) problems.push('exports neither "edge_handle" (edge-v1) nor "_start" (wagi)');
  else if (detected !== abi)
    problems.push(`exports the ${detected} entry point but the manifest says abi: ${abi}`);

  const memory = readMemoryLimits(bytes);
  if (memory && memory.initial > memoryPages) {
    problems.push(`starts with ${memory.initial} memory pages; limits.memoryPages is ${memoryPages}`);
  }
  if (memory && (memory.maximum === null || memory.maximum > memoryPages)) {
    problems.push(
      `declares a memory maximum of ${memory.maximum ?? "none"}; it must be at most limits.memoryPages (${memoryPages})`,
    );
  }
  if (problems.length > 0) {
    throw edgeError(
      "EDGE_ERR_BUILD_INVALID_MODULE",
      `module ${problems[0]}`,
      problems.map((message) => ({ where: "module", message })),
    );
  }
  return {
    abi: abi,
    imports: imports.map((i) => `${i.module}.${i.name}`),
    exports: exports.map((e) => e.name),
    memory,
  };
}

/**
 * Reads the limits of the module's first memory (defined, or imported) from the binary: the
 * JS API does not expose them. Walks sections by id; 2 = import, 5 = memory.
 */
export function readMemoryLimits(bytes: Uint8Array): { initial: number; maximum: number | null } | null {
  let pos = 8; // magic + version
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++]!;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  };
  const limits = () => {
    const flags = bytes[pos++]!;
    const initial = u32();
    const maximum = flags & 1 ? u32() : null;
    return { initial, maximum };
  };
  const skipName = () => {
    const len = u32();
    pos += len;
  };
  while (pos < bytes.length) {
    const id = bytes[pos++]!;
    const size = u32();
    const end = pos + size;
    if (id === 5) {
      if (u32() > 0) return limits();
    } else if (id === 2) {
      const count = u32();
      for (let i = 0; i < count; i++) {
        skipName();
        skipName();
        const kind = bytes[pos++]!;
        if (kind === 0)
          u32(); // function: type index
        else if (kind === 1) {
          pos++; // table: element type, then limits
          limits();
        } else if (kind === 2) return limits();
        else if (kind === 3)
          pos += 2; // global: value type + mutability
        else if (kind === 4) {
          pos++; // tag: attribute + type index
          u32();
        }
      }
    }
    pos = end;
  }
  return null;
}
