// Rust → wasm32-wasi with rustc (Debian's, which ships the wasm32-wasi standard library).
// A function is a single file (source.entry "lib.rs" / "main.rs") or a crate (a Cargo.toml with
// src/lib.rs or src/main.rs). Crates are compiled with rustc directly, as cargo would for a
// crate without dependencies: the builder is offline, so it cannot fetch crates, and refuses
// `[dependencies]` and build scripts with a clear error rather than failing halfway.
//
// The lane decides the crate type: edge-v1 → cdylib (exports `edge_handle`, no `_start`);
// wagi → bin (a WASI command with `_start`).

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";
import { parseRustcDiagnostics } from "./diagnostics.ts";
import { type CompileJob, inRepo, nativeFailure, stackBytes } from "./job.ts";
import { runNative, SANDBOX_SRC } from "./sandbox.ts";

interface RustPlan {
  crateName: string;
  edition: string;
  /** The crate root, relative to the function's directory. */
  root: string;
  crateType: "cdylib" | "bin";
}

/** Plans the rustc invocation from source.entry, Cargo.toml or the default file names. */
export function planRust(job: CompileJob): RustPlan {
  const crateType = job.abi === "wagi" ? "bin" : "cdylib";
  const src = job.scratch.src;
  const entry = job.entry ?? (existsSync(path.join(src, "Cargo.toml")) ? "Cargo.toml" : null);
  if (entry !== null && path.posix.basename(entry) === "Cargo.toml") {
    return planCrate(job, entry, crateType);
  }
  const file = entry ?? (crateType === "bin" ? "main.rs" : "lib.rs");
  if (!file.endsWith(".rs")) {
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      `${inRepo(job, file)}: a Rust entry must be a .rs file or a Cargo.toml`,
    );
  }
  if (!existsSync(path.join(src, file))) {
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      `${inRepo(job, file)}: not found (a Rust function is a Cargo.toml crate, or a single ${crateType === "bin" ? "main.rs" : "lib.rs"}; set source.entry to choose another file)`,
    );
  }
  return { crateName: crateIdent(path.posix.basename(file, ".rs")), edition: "2021", root: file, crateType };
}

function crateIdent(name: string): string {
  const ident = name.replace(/-/g, "_");
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(ident) ? ident : "function";
}

function planCrate(job: CompileJob, manifestRel: string, crateType: "cdylib" | "bin"): RustPlan {
  const where = inRepo(job, manifestRel);
  let text: string;
  try {
    text = readFileSync(path.join(job.scratch.src, manifestRel), "utf8");
  } catch {
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${where}: not found`);
  }
  const toml = parseCargoToml(text, where);
  const pkg = toml.get("package") ?? new Map<string, string>();
  const name = pkg.get("name");
  if (!name)
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${where}: [package] has no name`, [
      { where, message: "[package] needs name" },
    ]);
  for (const [table, entries] of toml) {
    const deps = /^(?:target\..+\.)?dependencies(\..+)?$/.exec(table);
    if (deps && (deps[1] !== undefined || entries.size > 0)) {
      throw edgeError(
        "EDGE_ERR_BUILD_UNSUPPORTED",
        `${where}: crate dependencies are not supported; the builder compiles offline with rustc and cannot fetch crates (vendor the code into the crate instead)`,
        [{ where, message: `[${table}] is not empty` }],
      );
    }
  }
  const dir = path.posix.dirname(manifestRel) === "." ? "" : `${path.posix.dirname(manifestRel)}/`;
  if (pkg.has("build") || existsSync(path.join(job.scratch.src, dir, "build.rs"))) {
    throw edgeError(
      "EDGE_ERR_BUILD_UNSUPPORTED",
      `${where}: build scripts (build.rs) are not supported; a build runs no code from the repository`,
    );
  }
  const table = crateType === "cdylib" ? toml.get("lib") : toml.get("bin");
  const root = `${dir}${table?.get("path") ?? (crateType === "cdylib" ? "src/lib.rs" : "src/main.rs")}`;
  if (!existsSync(path.join(job.scratch.src, root))) {
    throw edgeError(
      "EDGE_ERR_BUILD_COMPILE",
      `${inRepo(job, root)}: not found (abi: ${job.abi} builds the crate's ${crateType === "cdylib" ? "library (src/lib.rs) as a cdylib" : "binary (src/main.rs)"})`,
    );
  }
  return {
    crateName: crateIdent(table?.get("name") ?? name),
    edition: pkg.get("edition") ?? "2015",
    root,
    crateType,
  };
}

/**
 * The small part of TOML a Cargo.toml for a dependency-free crate needs: [tables],
 * [[arrays of tables]] (the first entry is kept) and `key = "string"` pairs. Other values are
 * kept as their raw text.
 */
export function parseCargoToml(text: string, where: string): Map<string, Map<string, string>> {
  const tables = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  tables.set("", current);
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\s+#.*$|^#.*$/, "").trim();
    if (!line) return;
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?$/.exec(line);
    if (header) {
      const name = header[1]!.replace(/["']/g, "");
      const existing = tables.get(name);
      if (existing && line.startsWith("[[")) {
        current = new Map(); // later [[bin]] entries are not used
        return;
      }
      current = existing ?? new Map();
      tables.set(name, current);
      return;
    }
    const kv = /^([A-Za-z0-9_.-]+|"[^"]*")\s*=\s*(.*)$/.exec(line);
    if (!kv) {
      throw edgeError("EDGE_ERR_BUILD_COMPILE", `${where}:${i + 1}:1: cannot read this line of Cargo.toml`, [
        { where: `${where}:${i + 1}:1`, message: "expected key = value or [table]" },
      ]);
    }
    const value = kv[2]!.trim();
    const str = /^"((?:[^"\\]|\\.)*)"$|^'([^']*)'$/.exec(value);
    current.set(kv[1]!.replace(/"/g, ""), str ? (str[1] ?? str[2]!) : value);
  });
  return tables;
}

export async function compileRust(job: CompileJob): Promise<Uint8Array> {
  const plan = planRust(job);
  const native = job.native!;
  const result = await runNative({
    command: native.command,
    scratch: job.scratch,
    sandbox: native.sandbox,
    bwrap: native.bwrap,
    memoryBytes: native.memoryBytes,
    timeoutMs: native.timeoutMs,
    args: (p) => [
      "--crate-name",
      plan.crateName,
      "--edition",
      plan.edition,
      "--crate-type",
      plan.crateType,
      "--target",
      "wasm32-wasi",
      "-C",
      "opt-level=s",
      "-C",
      "panic=abort",
      "-C",
      "debuginfo=0",
      "-C",
      "strip=debuginfo",
      "-C",
      `link-arg=-zstack-size=${stackBytes(job.memoryPages)}`,
      // no_std code still calls memcpy/memcmp (slice copies and comparisons); std links libc
      // itself, a no_std crate would import them from "env". Linking the target's libc
      // resolves them and adds nothing that is not used.
      ...(native.libDir ? ["-C", `link-arg=-L${native.libDir}`, "-C", "link-arg=-lc"] : []),
      "--error-format=json",
      "-o",
      `${p.out}/module.wasm`,
      plan.root,
    ],
  });
  if (result.code !== 0) {
    throw nativeFailure(
      "rustc",
      job,
      result,
      parseRustcDiagnostics(result.stderr, job.sourceDir, SANDBOX_SRC),
    );
  }
  return readFileSync(path.join(job.scratch.out, "module.wasm"));
}
