// Compiler output → ErrorDetail[] with `where` = "path/in/repo:line:col", so a failed build
// reports the source position (the reconcile status and API show it), never a stack trace.
// Paths the compilers print are relative to the function's directory (they run inside the
// copy of it); they are shown relative to the repository root.

import path from "node:path";
import type { ErrorDetail } from "../lib/errors.ts";

const MAX_DETAILS = 20;

function repoPath(sourceDir: string, file: string, sandboxSrc: string): string {
  let rel = file;
  if (rel.startsWith(`${sandboxSrc}/`)) rel = rel.slice(sandboxSrc.length + 1);
  if (rel.startsWith("./")) rel = rel.slice(2);
  return path.posix.join(sourceDir, rel);
}

interface RustSpan {
  file_name: string;
  line_start: number;
  column_start: number;
  is_primary: boolean;
}

interface RustDiagnostic {
  message: string;
  code: { code: string } | null;
  level: string;
  spans: RustSpan[];
}

/** rustc --error-format=json writes one JSON diagnostic per line on stderr. */
export function parseRustcDiagnostics(stderr: string, sourceDir: string, sandboxSrc: string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  const other: ErrorDetail[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    let d: RustDiagnostic;
    try {
      d = JSON.parse(line) as RustDiagnostic;
    } catch {
      continue;
    }
    if (d.level !== "error" && d.level !== "error: internal compiler error") continue;
    const message = d.code ? `${d.code.code}: ${d.message}` : d.message;
    const span = d.spans.find((s) => s.is_primary) ?? d.spans[0];
    if (span) {
      out.push({
        where: `${repoPath(sourceDir, span.file_name, sandboxSrc)}:${span.line_start}:${span.column_start}`,
        message,
      });
    } else if (!/^aborting due to/.test(d.message)) {
      other.push({ message });
    }
  }
  return [...out, ...other].slice(0, MAX_DETAILS);
}

const CLANG_LINE = /^(.+?):(\d+):(\d+): (?:fatal )?error: (.*)$/;
const LINKER_LINE = /^(?:wasm-ld(?:-\d+)?|clang(?:-\d+)?): error: (.*)$/;

/** clang prints "file:line:col: error: message"; wasm-ld prints "wasm-ld: error: message". */
export function parseClangDiagnostics(stderr: string, sourceDir: string, sandboxSrc: string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const line of stderr.split("\n")) {
    const m = CLANG_LINE.exec(line);
    if (m) {
      out.push({ where: `${repoPath(sourceDir, m[1]!, sandboxSrc)}:${m[2]}:${m[3]}`, message: m[4]! });
      continue;
    }
    const l = LINKER_LINE.exec(line);
    if (l && !/linker command failed/.test(l[1]!)) {
      // Object files are temporaries named after nothing the user wrote; keep only the message.
      out.push({ where: "link", message: l[1]!.replace(/^\/?\S+\.o: /, "") });
    }
  }
  return out.slice(0, MAX_DETAILS);
}

const WABT_LINE = /:(\d+):(\d+): error: (.*)$/;

/**
 * wabt's parseWat/validate errors: "file:line:col: error: message" lines. The file is the one
 * given to wabt; it is not taken from the output (wabt.js garbles it when features are set).
 */
export function parseWabtDiagnostics(message: string, file: string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const line of message.split("\n")) {
    const m = WABT_LINE.exec(line);
    if (m) out.push({ where: `${file}:${m[1]}:${m[2]}`, message: m[3]! });
  }
  return out.slice(0, MAX_DETAILS);
}
