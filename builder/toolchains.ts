// Finding the toolchain of each language, its version (part of the build cache key) and the
// sandbox native compilers run in. A toolchain that is missing or lacks the wasm32-wasi target
// is reported as EDGE_ERR_BUILD_TOOLCHAIN_MISSING with what to install; never as a crash.
// Successful look-ups are remembered for the life of the process; failures are not, so
// installing a toolchain takes effect on the next build.

import { execFile } from "node:child_process";
import { existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";
import type { Language } from "../schema/index.ts";
import type { BuilderConfig } from "./options.ts";
import { BWRAP_SYSTEM } from "./sandbox.ts";

const require = createRequire(import.meta.url);
const packageVersion = (name: string): string =>
  (require(`${name}/package.json`) as { version: string }).version;

export const ascVersion: string = packageVersion("assemblyscript");
export const wabtVersion: string = packageVersion("wabt");
export const binaryenVersion: string = packageVersion("binaryen");

export interface Toolchain {
  /** Shown in build results and logs, e.g. "rustc 1.63.0 (wasm32-wasi)". */
  display: string;
  /** Everything about the toolchain that can change the output bytes; goes into the cache key. */
  fingerprint: string;
  /** The compiler executable for native toolchains (rustc, clang). */
  command?: string;
  /** rustc: the directory of the target's self-contained wasi-libc, linked for memcpy/memcmp in no_std code. */
  libDir?: string;
}

/** The toolchain string of a language whose compiler ships with the builder (no look-up needed). */
export function bundledToolchain(language: Language): Toolchain | null {
  switch (language) {
    case "assemblyscript":
      return { display: `assemblyscript ${ascVersion}`, fingerprint: `assemblyscript ${ascVersion}` };
    case "wat":
      return { display: `wabt ${wabtVersion}`, fingerprint: `wabt ${wabtVersion}` };
    case "wasm":
      return { display: "prebuilt", fingerprint: "prebuilt" };
    default:
      return null;
  }
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: 15_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}

function why(err: unknown, command: string): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ENOENT") return `${command} not found`;
  if (e.code === "EACCES") return `${command} is not executable`;
  return `${command} failed: ${String(e.message).split("\n")[0]}`;
}

/**
 * Whether a program clang names (absolute, or a bare name it looks up beside itself and then on
 * PATH, as clang does) exists.
 */
function findProgram(name: string, clang: string): boolean {
  if (path.isAbsolute(name)) return existsSync(name);
  const dirs = (process.env.PATH ?? "/usr/bin:/bin").split(":");
  const clangPath = path.isAbsolute(clang)
    ? clang
    : dirs.map((d) => path.join(d, clang)).find((p) => existsSync(p));
  if (clangPath) {
    try {
      dirs.unshift(path.dirname(realpathSync(clangPath)));
    } catch {
      // fall back to PATH
    }
  }
  return dirs.some((d) => existsSync(path.join(d, name)));
}

const found = new Map<string, Toolchain>();

async function memo(key: string, detect: () => Promise<Toolchain>): Promise<Toolchain> {
  const known = found.get(key);
  if (known) return known;
  const t = await detect();
  found.set(key, t);
  return t;
}

const RUST_HINT =
  "install Debian's rustc and libstd-rust-dev-wasm32 (apt-get install rustc libstd-rust-dev-wasm32) or set builder.toolchains.rustc";
const C_HINT =
  "install clang-14, lld-14, wasi-libc and libclang-rt-14-dev-wasm32 (apt-get install …) or set builder.toolchains.clang";

function rustMissing(detail: string) {
  return edgeError(
    "EDGE_ERR_BUILD_TOOLCHAIN_MISSING",
    `toolchain rustc (wasm32-wasi) not installed: ${detail}; ${RUST_HINT}`,
  );
}

function cMissing(detail: string) {
  return edgeError(
    "EDGE_ERR_BUILD_TOOLCHAIN_MISSING",
    `toolchain clang (wasm32-wasi) not installed: ${detail}; ${C_HINT}`,
  );
}

export function rustToolchain(config: BuilderConfig): Promise<Toolchain> {
  const rustc = config.toolchains.rustc;
  return memo(`rust ${rustc}`, async () => {
    let verbose: string;
    let sysroot: string;
    try {
      verbose = await run(rustc, ["--version", "--verbose"]);
      sysroot = (await run(rustc, ["--print", "sysroot"])).trim();
    } catch (err) {
      throw rustMissing(why(err, rustc));
    }
    const targetLib = path.join(sysroot, "lib", "rustlib", "wasm32-wasi", "lib");
    if (!existsSync(targetLib)) {
      throw rustMissing(`${rustc} has no wasm32-wasi standard library (no ${targetLib})`);
    }
    const version = verbose.split("\n")[0]!.trim();
    // The rlib file names carry the std build's hash: a new libstd-rust-dev-wasm32 changes them.
    const rlibs = readdirSync(targetLib).sort().join(",");
    const selfContained = path.join(targetLib, "self-contained");
    return {
      display: `${version} (wasm32-wasi)`,
      fingerprint: `${verbose.trim()}\n${rlibs}`,
      command: rustc,
      ...(existsSync(path.join(selfContained, "libc.a")) ? { libDir: selfContained } : {}),
    };
  });
}

export function cToolchain(config: BuilderConfig): Promise<Toolchain> {
  const { clang, wasiSysroot } = config.toolchains;
  return memo(`c ${clang} ${wasiSysroot}`, async () => {
    let version: string;
    let linker: string;
    let builtins: string;
    try {
      version = (await run(clang, ["--version"])).split("\n")[0]!.trim();
      linker = (await run(clang, ["--target=wasm32-wasi", "-print-prog-name=wasm-ld"])).trim();
      builtins = (await run(clang, ["--target=wasm32-wasi", "-print-libgcc-file-name"])).trim();
    } catch (err) {
      throw cMissing(why(err, clang));
    }
    const libc = path.join(wasiSysroot, "lib", "wasm32-wasi", "libc.a");
    if (!existsSync(libc)) throw cMissing(`wasi-libc not found (no ${libc})`);
    if (!findProgram(linker, clang)) throw cMissing("the wasm-ld linker (lld) not found");
    if (!existsSync(builtins)) throw cMissing(`compiler-rt builtins for wasm32 not found (no ${builtins})`);
    const libcStat = statSync(libc);
    const short = /clang version (\S+)/.exec(version)?.[1] ?? version;
    return {
      display: `clang ${short} (wasm32-wasi)`,
      fingerprint: `${version}\nlibc.a ${libcStat.size} ${libcStat.mtimeMs}`,
      command: clang,
    };
  });
}

/** The toolchain of a language, or EDGE_ERR_BUILD_TOOLCHAIN_MISSING / _UNSUPPORTED. */
export async function resolveToolchain(language: Language, config: BuilderConfig): Promise<Toolchain> {
  const bundled = bundledToolchain(language);
  if (bundled) return bundled;
  if (language === "rust") return rustToolchain(config);
  if (language === "c") return cToolchain(config);
  throw edgeError(
    "EDGE_ERR_BUILD_UNSUPPORTED",
    `language "${String(language)}" is not supported (supported: assemblyscript, rust, c, wat, wasm)`,
  );
}

const sandboxes = new Map<string, Promise<boolean>>();

/** Whether bubblewrap is installed and can create namespaces here (containers may forbid it). */
function bwrapWorks(bwrap: string): Promise<boolean> {
  let works = sandboxes.get(bwrap);
  if (works === undefined) {
    works = run(bwrap, [...BWRAP_SYSTEM, "--unshare-all", "--die-with-parent", "/usr/bin/true"]).then(
      () => true,
      () => false,
    );
    works.then((ok) => {
      if (!ok) sandboxes.delete(bwrap); // look again next time
    });
    sandboxes.set(bwrap, works);
  }
  return works;
}

/** The sandbox native compilers run in: bwrap when configured (or "auto" and available), else none. */
export async function resolveSandbox(config: BuilderConfig): Promise<"bwrap" | "none"> {
  if (config.sandbox === "none") return "none";
  const ok = await bwrapWorks(config.toolchains.bwrap);
  if (ok) return "bwrap";
  if (config.sandbox === "auto") return "none";
  throw edgeError(
    "EDGE_ERR_BUILD_TOOLCHAIN_MISSING",
    `sandbox bwrap not available: ${config.toolchains.bwrap} is not installed or cannot create namespaces here; ` +
      `apt-get install bubblewrap, or set builder.sandbox to "auto" or "none"`,
  );
}
