// Where a build runs: a scratch directory outside the repository checkout holding a copy of
// the function's source directory (src/), the output directory (out/) and a temp directory
// (tmp/). Compilers only ever see the copy, so a build cannot write into the repository; the
// copy refuses symlinks that lead outside the repository, and native compilers run under
// bubblewrap, which shows them /usr read-only, src/ read-only and out/ writable and nothing
// else (no repository, no home, no network), so they cannot read outside it either.

import { spawn } from "node:child_process";
import { copyFile, lstat, mkdir, mkdtemp, readdir, readlink, realpath, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { edgeError } from "../lib/errors.ts";

export interface Scratch {
  root: string;
  src: string;
  out: string;
  tmp: string;
  remove(): Promise<void>;
}

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent + path.sep);

/** Directories the copy (like the source tree hash) leaves out. */
const SKIPPED_DIRS = new Set([".git", "node_modules"]);

export async function createScratch(parent: string | null, repoRoot: string): Promise<Scratch> {
  const base = await realpath(parent ?? tmpdir());
  if (inside(base, repoRoot)) {
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `builder.scratchDir ${base} is inside the repository checkout ${repoRoot}; builds must run outside it`,
    );
  }
  const root = await mkdtemp(path.join(base, "edgeplane-build-"));
  const scratch = {
    root,
    src: path.join(root, "src"),
    out: path.join(root, "out"),
    tmp: path.join(root, "tmp"),
    remove: () => rm(root, { recursive: true, force: true }),
  };
  await Promise.all([mkdir(scratch.src), mkdir(scratch.out), mkdir(scratch.tmp)]);
  return scratch;
}

/**
 * Copies repoRoot/sourceDir into dest. A symlink is copied as the file or directory it points
 * to when that is inside the repository, and refused (EDGE_ERR_BUILD_COMPILE naming it) when it
 * leads outside. Only regular files, directories and such links are copied; at most maxBytes.
 */
export async function copySource(
  repoRoot: string,
  sourceDir: string,
  dest: string,
  maxBytes: number,
): Promise<void> {
  const from = path.join(repoRoot, sourceDir);
  const fromReal = await realpath(from).catch(() => {
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${sourceDir || "."}: source directory not found`);
  });
  if (!inside(fromReal, repoRoot)) {
    throw edgeError("EDGE_ERR_BUILD_COMPILE", `${sourceDir}: source directory leads outside the repository`);
  }
  let total = 0;
  const seen = new Set<string>();
  async function walk(absDir: string, rel: string, out: string): Promise<void> {
    const real = await realpath(absDir);
    if (seen.has(real)) return; // a link cycle
    seen.add(real);
    for (const entry of await readdir(absDir, { withFileTypes: true })) {
      if (SKIPPED_DIRS.has(entry.name)) continue;
      const abs = path.join(absDir, entry.name);
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      const target = path.join(out, entry.name);
      let st = await lstat(abs);
      let src = abs;
      if (st.isSymbolicLink()) {
        const resolved = await realpath(abs).catch(() => null);
        const where = path.posix.join(sourceDir, childRel);
        if (resolved === null) {
          throw edgeError("EDGE_ERR_BUILD_COMPILE", `${where}: symlink to ${await readlink(abs)} is broken`);
        }
        if (!inside(resolved, repoRoot)) {
          throw edgeError(
            "EDGE_ERR_BUILD_COMPILE",
            `${where}: symlink leads outside the repository; a build reads only files inside it`,
            [{ where, message: "symlink leads outside the repository" }],
          );
        }
        src = resolved;
        st = await stat(resolved);
      }
      if (st.isDirectory()) {
        await mkdir(target);
        await walk(src, childRel, target);
      } else if (st.isFile()) {
        total += st.size;
        if (total > maxBytes) {
          throw edgeError(
            "EDGE_ERR_BUILD_COMPILE",
            `${sourceDir || "."}: the function's sources exceed the builder's limit of ${maxBytes} bytes`,
          );
        }
        await copyFile(src, target);
      }
    }
  }
  await walk(fromReal, "", dest);
}

export interface NativeRun {
  command: string;
  /** Arguments, given the paths of src/ and out/ as the compiler sees them. */
  args: (paths: { src: string; out: string }) => string[];
  scratch: { src: string; out: string; tmp: string };
  sandbox: "bwrap" | "none";
  bwrap: string;
  memoryBytes: number;
  timeoutMs: number;
}

export interface NativeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const OUTPUT_CAP = 256 * 1024;

/** Where the scratch directories appear inside the bubblewrap namespace. */
export const SANDBOX_SRC = "/build/src";
const SANDBOX_OUT = "/build/out";

/**
 * The system a sandboxed compiler sees: /usr read-only, with the usual /lib, /lib64 and /bin
 * links into it. The availability probe (toolchains.ts) runs in the same view.
 */
export const BWRAP_SYSTEM: readonly string[] = [
  "--ro-bind",
  "/usr",
  "/usr",
  "--symlink",
  "usr/lib",
  "/lib",
  "--symlink",
  "usr/lib64",
  "/lib64",
  "--symlink",
  "usr/bin",
  "/bin",
];

async function bwrapArgs(run: NativeRun): Promise<string[]> {
  const args = [
    ...BWRAP_SYSTEM,
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--ro-bind",
    run.scratch.src,
    SANDBOX_SRC,
    "--bind",
    run.scratch.out,
    SANDBOX_OUT,
  ];
  // A toolchain installed outside /usr (say /opt/rust/bin/rustc) gets its prefix mounted read-only.
  const real = await realpath(run.command).catch(() => null);
  if (real && !real.startsWith("/usr/")) {
    const prefix = path.dirname(path.dirname(real));
    args.push("--ro-bind", prefix, prefix);
  }
  args.push(
    "--chdir",
    SANDBOX_SRC,
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    "--setenv",
    "PATH",
    "/usr/bin:/bin",
    "--setenv",
    "HOME",
    "/tmp",
    "--setenv",
    "TMPDIR",
    "/tmp",
    "--setenv",
    "LANG",
    "C.UTF-8",
  );
  return args;
}

/**
 * Runs a native compiler with an address-space limit (ulimit -v, applied before exec so it
 * binds the compiler and everything it starts) and a wall-clock limit, in bubblewrap or, with
 * sandbox "none", as a plain process in the scratch copy with a minimal environment.
 */
export async function runNative(run: NativeRun): Promise<NativeResult> {
  const inSandbox = run.sandbox === "bwrap";
  const paths = inSandbox
    ? { src: SANDBOX_SRC, out: SANDBOX_OUT }
    : { src: run.scratch.src, out: run.scratch.out };
  const command = inSandbox
    ? [run.bwrap, ...(await bwrapArgs(run)), run.command, ...run.args(paths)]
    : [run.command, ...run.args(paths)];
  const kib = Math.max(1, Math.floor(run.memoryBytes / 1024));
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", 'ulimit -v "$0" && exec "$@"', String(kib), ...command], {
      cwd: run.scratch.src,
      env: {
        PATH: "/usr/bin:/bin",
        HOME: run.scratch.tmp,
        TMPDIR: run.scratch.tmp,
        LANG: "C.UTF-8",
      },
      stdio: ["ignore", "pipe", "pipe"],
      // In the worker's process group: the parent's time limit kills the group, compilers and
      // their subprocesses (clang's cc1, wasm-ld) included. Under bwrap, --die-with-parent and
      // the PID namespace also end everything in the sandbox when the worker dies.
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      if (stdout.length < OUTPUT_CAP) stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += c.toString("utf8");
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, run.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Whether a failed native compiler ran out of its address space (rustc, LLVM and glibc phrasings). */
export function outOfMemory(result: NativeResult): boolean {
  return /memory allocation of \d+ bytes failed|out of memory|std::bad_alloc|Cannot allocate memory/i.test(
    result.stderr,
  );
}
