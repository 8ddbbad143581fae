// Checks a built module against the ABI and limits before anything is stored: what reaches a
// runner is valid wasm, imports only what the sandbox provides, exports what its ABI lane
// needs with the right signature, and can never hold more memory than the manifest allows
// (DESIGN.md "Function ABI", "Sandbox rules"). Every problem found is listed, the first one
// in the message.

import { edgeError } from "../lib/errors.ts";
import type { Abi } from "../schema/index.ts";
import { exportedFunctionTypes, type FuncType, formatFuncType, sections } from "./binary.ts";
import { type MemoryInfo, readMemories } from "./memory.ts";

/** The start section's id (WebAssembly spec §5.5.10). */
const SECTION_START = 8;

const EDGE_V1_IMPORTS = new Set(["request_len", "request_read", "response_write", "log"]);

/** Every function of WASI preview 1 (wasi_snapshot_preview1, witx of 2020-12). */
export const WASI_PREVIEW1_FUNCTIONS: ReadonlySet<string> = new Set([
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_advise",
  "fd_allocate",
  "fd_close",
  "fd_datasync",
  "fd_fdstat_get",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_read",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "fd_write",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_exit",
  "proc_raise",
  "sched_yield",
  "random_get",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
]);

/** The entry point of each lane and its signature (docs/abi.md). */
const ENTRY: Record<Abi, { name: string; type: FuncType }> = {
  "edge-v1": { name: "edge_handle", type: { params: [], results: ["i32"] } },
  wagi: { name: "_start", type: { params: [], results: [] } },
};

export interface ModuleFacts {
  abi: Abi;
  imports: string[];
  exports: string[];
  /** Limits of the first memory in 64 KiB pages; maximum null when the module sets none. */
  memory: { initial: number; maximum: number | null } | null;
  size: number;
}

export interface ValidateOptions {
  /** Largest module accepted, in bytes; default no limit. */
  maxBytes?: number;
}

export function validateModule(
  input: Uint8Array,
  abi: Abi,
  memoryPages: number,
  options: ValidateOptions = {},
): ModuleFacts {
  const bytes = input as Uint8Array<ArrayBuffer>; // WebAssembly takes only non-shared buffers
  if (options.maxBytes !== undefined && bytes.byteLength > options.maxBytes) {
    throw edgeError(
      "EDGE_ERR_BUILD_INVALID_MODULE",
      `module is ${bytes.byteLength} bytes; the artifact size limit is ${options.maxBytes} bytes`,
      [{ where: "module", message: `size ${bytes.byteLength} > ${options.maxBytes}` }],
    );
  }
  // Memory flags first: a 64-bit memory fails WebAssembly.validate on engines without
  // memory64, and "not valid" would hide the reason.
  let memories: MemoryInfo[];
  try {
    memories = readMemories(bytes);
  } catch {
    memories = [];
  }
  const problems: string[] = [];
  memories.forEach((m, i) => {
    const which = memories.length > 1 ? `memory ${i}` : "memory";
    if (m.shared) problems.push(`${which} is shared (threads); shared memories are not allowed`);
    if (m.memory64) problems.push(`${which} is 64-bit (memory64); only 32-bit memories are allowed`);
  });
  if (problems.length === 0 && !WebAssembly.validate(bytes)) {
    let reason = "";
    try {
      new WebAssembly.Module(bytes);
    } catch (err) {
      reason = `: ${(err as Error).message.replace(/^WebAssembly\.Module\(\): /, "")}`;
    }
    throw edgeError("EDGE_ERR_BUILD_INVALID_MODULE", `the output is not a valid WebAssembly module${reason}`);
  }
  if (problems.length > 0) throw invalid(problems);

  // A start function runs while the module is instantiated, before any entry point and outside
  // the ABI: a runner would run it at warm-up, and an endless one would only fail there, after
  // the commit was accepted. Both lanes have their own place for initialisation.
  if (sections(bytes).some((s) => s.id === SECTION_START)) {
    problems.push(
      "has a start function (start section), which runs during instantiation; initialise in an exported _initialize (edge-v1) or in _start (wagi)",
    );
  }

  const module = new WebAssembly.Module(bytes);
  const imports = WebAssembly.Module.imports(module);
  const exports = WebAssembly.Module.exports(module);

  for (const imp of imports) {
    if (imp.module === "wasi_snapshot_preview1") {
      if (imp.kind !== "function" || !WASI_PREVIEW1_FUNCTIONS.has(imp.name))
        problems.push(
          `imports "wasi_snapshot_preview1.${imp.name}" (${imp.kind}), which WASI preview 1 does not define`,
        );
    } else if (imp.module === "edge") {
      if (abi !== "edge-v1")
        problems.push(`imports "edge.${imp.name}"; the ${abi} lane provides only wasi_snapshot_preview1`);
      else if (!(imp.kind === "function" && EDGE_V1_IMPORTS.has(imp.name)))
        problems.push(`imports "edge.${imp.name}" (${imp.kind}), which the edge-v1 ABI does not provide`);
    } else {
      problems.push(
        `imports "${imp.module}.${imp.name}": only the "edge" and "wasi_snapshot_preview1" modules are provided`,
      );
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
  const entry = ENTRY[abi];
  if (detected === null) {
    const wrongKind = exported.get(entry.name);
    problems.push(
      wrongKind
        ? `exports "${entry.name}" as a ${wrongKind}; the ${abi} lane needs a function ${formatFuncType(entry.type)}`
        : `exports neither "edge_handle" (edge-v1) nor "_start" (wagi); abi: ${abi} needs "${entry.name}"`,
    );
  } else if (detected !== abi) {
    problems.push(`exports the ${detected} entry point but the manifest says abi: ${abi}`);
  } else {
    const types = exportedFunctionTypes(bytes);
    const type = types?.get(entry.name);
    if (type && formatFuncType(type) !== formatFuncType(entry.type)) {
      problems.push(
        `exports "${entry.name}" with type ${formatFuncType(type)}; the ${abi} lane needs ${formatFuncType(entry.type)}`,
      );
    }
    if (abi === "edge-v1" && exported.has("_initialize")) {
      const init = types?.get("_initialize");
      if (exported.get("_initialize") !== "function" || (init && formatFuncType(init) !== "() -> ()"))
        problems.push('exports "_initialize", which must be a function () -> ()');
    }
  }

  const memory = memories[0] ? { initial: memories[0].initial, maximum: memories[0].maximum } : null;
  memories.forEach((m, i) => {
    const which = memories.length > 1 ? `memory ${i}` : "memory";
    if (m.initial > memoryPages)
      problems.push(`${which} starts with ${m.initial} pages; limits.memoryPages is ${memoryPages}`);
    else if (m.maximum === null || m.maximum > memoryPages)
      problems.push(
        `${which} declares a maximum of ${m.maximum ?? "none"} pages; it must be at most limits.memoryPages (${memoryPages})`,
      );
  });
  if (problems.length > 0) throw invalid(problems);
  return {
    abi,
    imports: imports.map((i) => `${i.module}.${i.name}`),
    exports: exports.map((e) => e.name),
    memory,
    size: bytes.byteLength,
  };
}

function invalid(problems: string[]) {
  return edgeError(
    "EDGE_ERR_BUILD_INVALID_MODULE",
    `module ${problems[0]}`,
    problems.map((message) => ({ where: "module", message })),
  );
}
