// Reading and rewriting the limits of a module's linear memories in the binary (the JS API
// exposes neither). The builder rewrites every memory's maximum to limits.memoryPages, so the
// artifact itself refuses `memory.grow` past the manifest's limit on any engine, whatever the
// language's toolchain declared (DESIGN.md "Sandbox rules": "Enforce by rewriting the memory
// maximum"). Shared (threads) and 64-bit memories are refused: the sandbox's page accounting
// assumes one unshared 32-bit memory per instance.

import { edgeError } from "../lib/errors.ts";
import {
  FLAG_HAS_MAX,
  FLAG_MEMORY64,
  FLAG_SHARED,
  type Limits,
  Reader,
  readLimits,
  SECTION_IMPORT,
  SECTION_MEMORY,
  sections,
  Truncated,
  uleb,
  walkImports,
} from "./binary.ts";

export interface MemoryInfo {
  /** Pages of 64 KiB. */
  initial: number;
  maximum: number | null;
  shared: boolean;
  memory64: boolean;
  /** Imported (from the host) rather than defined by the module. */
  imported: boolean;
}

function info(l: Limits, imported: boolean): MemoryInfo {
  return {
    initial: l.initial,
    maximum: l.maximum,
    shared: (l.flags & FLAG_SHARED) !== 0,
    memory64: (l.flags & FLAG_MEMORY64) !== 0,
    imported,
  };
}

/** Every memory of the module, imported ones first (the index space order). */
export function readMemories(bytes: Uint8Array): MemoryInfo[] {
  try {
    const out: MemoryInfo[] = [];
    for (const s of sections(bytes)) {
      const r = new Reader(bytes.subarray(0, s.end), s.contentStart);
      if (s.id === SECTION_IMPORT) {
        walkImports(r, { onMemory: () => out.push(info(readLimits(r), true)) });
      } else if (s.id === SECTION_MEMORY) {
        const count = r.uleb();
        for (let i = 0; i < count; i++) out.push(info(readLimits(r), false));
      }
    }
    return out;
  } catch (err) {
    if (err instanceof Truncated)
      throw edgeError("EDGE_ERR_BUILD_INVALID_MODULE", "the output is not a valid WebAssembly module");
    throw err;
  }
}

/** The limits of the module's first memory (defined or imported), or null when it has none. */
export function readMemoryLimits(bytes: Uint8Array): { initial: number; maximum: number | null } | null {
  const first = readMemories(bytes)[0];
  return first ? { initial: first.initial, maximum: first.maximum } : null;
}

/**
 * Checks every memory against memoryPages and returns the module with each memory's maximum
 * set to exactly memoryPages. Throws EDGE_ERR_BUILD_INVALID_MODULE, naming the problem, for a
 * shared or 64-bit memory or one that starts larger than the limit. Only the import and memory
 * sections are re-encoded; every other byte is copied as it was.
 */
export function limitMemory(bytes: Uint8Array, memoryPages: number): Uint8Array<ArrayBuffer> {
  const memories = readMemories(bytes);
  const problems: string[] = [];
  memories.forEach((m, i) => {
    const which = memories.length > 1 ? `memory ${i}` : "memory";
    if (m.shared) problems.push(`${which} is shared (threads); shared memories are not allowed`);
    if (m.memory64) problems.push(`${which} is 64-bit (memory64); only 32-bit memories are allowed`);
    if (m.initial > memoryPages)
      problems.push(`${which} starts with ${m.initial} pages; limits.memoryPages is ${memoryPages}`);
  });
  if (problems.length > 0) {
    throw edgeError(
      "EDGE_ERR_BUILD_INVALID_MODULE",
      `module ${problems[0]}`,
      problems.map((message) => ({ where: "module", message })),
    );
  }
  const encode = (initial: number) => [FLAG_HAS_MAX, ...uleb(initial), ...uleb(memoryPages)];

  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  for (const s of sections(bytes)) {
    if (s.id !== SECTION_IMPORT && s.id !== SECTION_MEMORY) {
      parts.push(bytes.subarray(s.start, s.end));
      continue;
    }
    const r = new Reader(bytes.subarray(0, s.end), s.contentStart);
    const content: number[] = [];
    if (s.id === SECTION_MEMORY) {
      const count = r.uleb();
      content.push(...uleb(count));
      for (let i = 0; i < count; i++) content.push(...encode(readLimits(r).initial));
    } else {
      // Copy the import section, replacing the limits of each memory import.
      let copied = s.contentStart;
      walkImports(r, {
        onMemory: (limitsStart) => {
          content.push(...bytes.subarray(copied, limitsStart));
          content.push(...encode(readLimits(r).initial));
          copied = r.pos;
        },
      });
      content.push(...bytes.subarray(copied, s.end));
    }
    parts.push(Uint8Array.from([s.id, ...uleb(content.length), ...content]));
  }
  const result = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    result.set(part, at);
    at += part.length;
  }
  return result;
}
