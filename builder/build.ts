// Building one function: source directory → validated wasm bytes + sha256. The language's
// toolchain compiles; validateModule checks the result against the ABI and limits.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/hash.ts";
import type { Abi, Language } from "../schema/index.ts";
import { ascVersion, compileAssemblyScript } from "./assemblyscript.ts";
import { type ModuleFacts, validateModule } from "./validate.ts";

export interface BuildInput {
  /** Absolute path of the checked-out repository. */
  repoDir: string;
  /** Function source directory relative to repoDir ("" for the root). */
  sourceDir: string;
  language: Language;
  /** Entry file inside sourceDir; defaults per language (index.ts for AssemblyScript). */
  entry?: string;
  abi: Abi;
  memoryPages: number;
}

export interface BuildOutput {
  bytes: Uint8Array<ArrayBuffer>;
  sha256: string;
  facts: ModuleFacts;
  /** Which toolchain built it, e.g. "assemblyscript 0.28.20"; part of the build cache key. */
  toolchain: string;
  durationMs: number;
}

export function toolchainVersion(language: Language): string {
  return language === "assemblyscript" ? `assemblyscript ${ascVersion}` : language;
}

export async function buildFunction(input: BuildInput): Promise<BuildOutput> {
  const started = performance.now();
  let bytes: Uint8Array<ArrayBuffer>;
  switch (input.language) {
    case "assemblyscript":
      bytes = await compileAssemblyScript({
        repoDir: input.repoDir,
        sourceDir: input.sourceDir,
        entry: input.entry ?? "index.ts",
        memoryPages: input.memoryPages,
      });
      break;
    case "wasm": {
      // A prebuilt module checked into the repo; it is validated like any other output.
      const entry = input.entry ?? "module.wasm";
      const rel = path.posix.normalize(path.posix.join(input.sourceDir, entry));
      if (rel.startsWith("../") || path.isAbsolute(entry)) {
        throw edgeError(
          "EDGE_ERR_BUILD_UNSUPPORTED",
          `source.entry "${entry}" points outside the repository`,
        );
      }
      bytes = await readFile(path.join(input.repoDir, rel)).catch(() => {
        throw edgeError("EDGE_ERR_BUILD_COMPILE", `${rel}: prebuilt module not found`);
      });
      break;
    }
    default:
      throw edgeError(
        "EDGE_ERR_BUILD_UNSUPPORTED",
        `language "${input.language}" is not supported by this builder yet (supported: assemblyscript, wasm)`,
      );
  }
  const facts = validateModule(bytes, input.abi, input.memoryPages);
  return {
    bytes,
    sha256: sha256Hex(bytes),
    facts,
    toolchain: toolchainVersion(input.language),
    durationMs: performance.now() - started,
  };
}
