// Loading a repository's manifests: find every edge.yaml / *.edge.yaml, parse each YAML
// document with source positions, validate it against edge.schema.json (defaults applied),
// then check the rules a schema cannot express. Every problem found is reported, each with
// file:line:col, not just the first; a repository with any problem yields no ManifestSet.

import { lstat, readdir, readFile, realpath } from "node:fs/promises";
import path from "node:path";
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { mapLimit } from "../lib/concurrency.ts";
import { type ErrorCode, type ErrorDetail, edgeError } from "../lib/errors.ts";
import schemaJson from "./edge.schema.json" with { type: "json" };
import { MAX_ALIAS_COUNT, MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES, MAX_SEARCH_DEPTH } from "./limits.ts";
import type {
  FunctionManifest,
  LoadedFunction,
  ManifestSet,
  ProjectManifest,
  SourceLocation,
} from "./types.ts";

export const manifestSchema = schemaJson;

const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: true });
const validateDocument = ajv.compile(schemaJson);

/** True for file names the loader reads: `edge.yaml` and `*.edge.yaml`. */
export function isManifestFile(name: string): boolean {
  return name === "edge.yaml" || name.endsWith(".edge.yaml");
}

/** Finds manifest files under root (relative, "/"-separated, sorted); never follows symlinks. */
export async function findManifestFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(rel: string, depth: number): Promise<void> {
    if (depth > MAX_SEARCH_DEPTH) return;
    const entries = await readdir(path.join(root, rel), { withFileTypes: true });
    for (const entry of entries) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
        await walk(childRel, depth + 1);
      } else if (entry.isFile() && isManifestFile(entry.name)) {
        found.push(childRel);
      }
    }
  }
  await walk("", 0);
  return found.sort();
}

interface ParsedDoc {
  value: Record<string, unknown>;
  file: string;
  /** Finds the source position of a path inside this document (nearest existing ancestor). */
  locate(segments: (string | number)[], key?: string): SourceLocation;
}

/** Files read (and realpaths resolved) at once; enough to hide disk latency, few enough for fds. */
const IO_CONCURRENCY = 16;

class Problems {
  readonly list: { code: ErrorCode; detail: ErrorDetail }[] = [];
  add(code: ErrorCode, where: SourceLocation | string, message: string): void {
    const at = typeof where === "string" ? where : `${where.file}:${where.line}:${where.col}`;
    this.list.push({ code, detail: { where: at, message } });
  }
}

/**
 * Loads and validates every manifest under `root` (a checked-out repository).
 * Throws a ManifestError whose details list every problem when anything is wrong.
 */
export async function loadManifests(root: string): Promise<ManifestSet> {
  const problems = new Problems();
  const files = await findManifestFiles(root);
  if (files.length === 0) {
    throw edgeError("EDGE_ERR_MANIFEST_NOT_FOUND", `no edge.yaml or *.edge.yaml found in the repository`);
  }
  if (files.length > MAX_MANIFEST_FILES) {
    problems.add(
      "EDGE_ERR_MANIFEST_INVALID",
      files[MAX_MANIFEST_FILES]!,
      `more than ${MAX_MANIFEST_FILES} manifest files`,
    );
  }
  const docs: ParsedDoc[] = [];
  // Files are read and parsed concurrently; each gets its own problem list so that problems
  // are still reported in file order.
  const parsed = await mapLimit(files.slice(0, MAX_MANIFEST_FILES), IO_CONCURRENCY, async (file) => {
    const own = new Problems();
    return { docs: await parseFile(root, file, own), problems: own };
  });
  for (const p of parsed) {
    docs.push(...p.docs);
    problems.list.push(...p.problems.list);
  }
  const set = await checkDocuments(root, files, docs, problems);
  if (problems.list.length > 0) throw manifestError(problems);
  return set;
}

function manifestError(problems: Problems) {
  // The most basic kind of problem names the error; all problems are in the details.
  const order: ErrorCode[] = [
    "EDGE_ERR_MANIFEST_SYNTAX",
    "EDGE_ERR_MANIFEST_SCHEMA",
    "EDGE_ERR_MANIFEST_INVALID",
  ];
  const code = order.find((c) => problems.list.some((p) => p.code === c)) ?? "EDGE_ERR_MANIFEST_INVALID";
  const details = problems.list.map((p) => p.detail);
  const n = details.length;
  const first = details[0]!;
  return edgeError(
    code,
    `${n} manifest problem${n === 1 ? "" : "s"}; first: ${first.where}: ${first.message}`,
    details,
  );
}

async function parseFile(root: string, file: string, problems: Problems): Promise<ParsedDoc[]> {
  const abs = path.join(root, file);
  const stat = await lstat(abs);
  if (stat.size > MAX_MANIFEST_BYTES) {
    problems.add(
      "EDGE_ERR_MANIFEST_INVALID",
      `${file}:1:1`,
      `file is ${stat.size} bytes; the limit is ${MAX_MANIFEST_BYTES}`,
    );
    return [];
  }
  const text = await readFile(abs, "utf8");
  const lineCounter = new LineCounter();
  const pos = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const out: ParsedDoc[] = [];
  for (const doc of parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true })) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const at = err.linePos?.[0] ?? { line: 1, col: 1 };
        problems.add(
          "EDGE_ERR_MANIFEST_SYNTAX",
          { file, ...at },
          err.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
        );
      }
      continue;
    }
    if (doc.contents === null) continue; // an empty document, e.g. after a trailing "---"
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      problems.add("EDGE_ERR_MANIFEST_SYNTAX", pos(doc.range[0]), (err as Error).message);
      continue;
    }
    const docStart = pos((doc.contents as Node).range?.[0] ?? doc.range[0]);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.add(
        "EDGE_ERR_MANIFEST_SCHEMA",
        docStart,
        "a manifest document must be a mapping (apiVersion, kind, metadata, spec)",
      );
      continue;
    }
    const locate = (segments: (string | number)[], key?: string): SourceLocation => {
      let node: unknown = doc.contents;
      let best = docStart;
      for (const seg of segments) {
        const next = childOf(node, seg);
        if (next === undefined) break;
        node = next;
        const start = (node as Node).range?.[0];
        if (start !== undefined) best = pos(start);
      }
      if (key !== undefined && isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
        const start = (pair?.key as Node | undefined)?.range?.[0];
        if (start !== undefined) best = pos(start);
      }
      return best;
    };
    out.push({ value: value as Record<string, unknown>, file, locate });
  }
  return out;
}

function childOf(node: unknown, seg: string | number): unknown {
  if (isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
    return pair?.value ?? undefined;
  }
  if (isSeq(node) && typeof seg === "number") return node.items[seg];
  return undefined;
}

function describeSchemaError(e: ErrorObject): {
  segments: (string | number)[];
  key?: string;
  message: string;
} {
  const segments = e.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const field = segments.length ? segments.join(".") : "document";
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties":
      return {
        segments,
        key: String(p.additionalProperty),
        message: `${field}: unknown field "${String(p.additionalProperty)}"`,
      };
    case "required":
      return { segments, message: `${field}: missing required field "${String(p.missingProperty)}"` };
    case "enum":
      return {
        segments,
        message: `${field}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "const":
      return { segments, message: `${field}: must be ${JSON.stringify(p.allowedValue)}` };
    default:
      return { segments, message: `${field}: ${e.message ?? "is invalid"}` };
  }
}

async function checkDocuments(
  root: string,
  files: string[],
  docs: ParsedDoc[],
  problems: Problems,
): Promise<ManifestSet> {
  let project: ProjectManifest | null = null;
  let projectLocation: SourceLocation | null = null;
  const functions: LoadedFunction[] = [];
  const firstByName = new Map<string, SourceLocation>();
  const docOf = new Map<LoadedFunction, ParsedDoc>();
  const pending: { fn: FunctionManifest; doc: ParsedDoc; at: SourceLocation }[] = [];

  for (const doc of docs) {
    if (!validateDocument(doc.value)) {
      for (const e of validateDocument.errors ?? []) {
        if (e.keyword === "if") continue; // the failing "then" branch already says what is wrong
        const d = describeSchemaError(e);
        problems.add("EDGE_ERR_MANIFEST_SCHEMA", doc.locate(d.segments, d.key), d.message);
      }
      continue;
    }
    const at = doc.locate([]);
    if (doc.value.kind === "Project") {
      if (project) {
        problems.add(
          "EDGE_ERR_MANIFEST_INVALID",
          at,
          `a second Project document; the first is at ${fmt(projectLocation!)} (at most one per repository)`,
        );
        continue;
      }
      project = doc.value as unknown as ProjectManifest;
      projectLocation = at;
      continue;
    }
    const fn = doc.value as unknown as FunctionManifest;
    const prior = firstByName.get(fn.metadata.name);
    if (prior) {
      problems.add(
        "EDGE_ERR_MANIFEST_INVALID",
        doc.locate(["metadata", "name"]),
        `duplicate function name "${fn.metadata.name}"; first defined at ${fmt(prior)}`,
      );
      continue;
    }
    firstByName.set(fn.metadata.name, at);
    pending.push({ fn, doc, at });
  }

  const realRoot = await realpath(root);
  const resolved = await mapLimit(pending, IO_CONCURRENCY, (p) =>
    resolveSourceDir(root, realRoot, p.doc, p.fn.spec.source.path),
  );
  for (const [i, r] of resolved.entries()) {
    const { fn, doc, at } = pending[i]!;
    if ("problem" in r) {
      problems.add("EDGE_ERR_MANIFEST_INVALID", doc.locate(["spec", "source", "path"]), r.problem);
      continue;
    }
    const loaded: LoadedFunction = { manifest: fn, location: at, sourceDir: r.dir };
    functions.push(loaded);
    docOf.set(loaded, doc);
  }

  functions.sort((a, b) => (a.manifest.metadata.name < b.manifest.metadata.name ? -1 : 1));
  checkHosts(project, functions, docOf, problems);
  checkRouteConflicts(functions, docOf, problems);
  return { project, projectLocation, functions, files };
}

const fmt = (l: SourceLocation) => `${l.file}:${l.line}:${l.col}`;

/** source.path is relative to the manifest's directory and must stay inside the repository. */
async function resolveSourceDir(
  root: string,
  realRoot: string,
  doc: ParsedDoc,
  sourcePath: string,
): Promise<{ dir: string } | { problem: string }> {
  if (path.isAbsolute(sourcePath) || /^[A-Za-z]:/.test(sourcePath)) {
    return { problem: `spec.source.path: "${sourcePath}" must be relative to the manifest's directory` };
  }
  const rel = path.posix
    .normalize(path.posix.join(path.posix.dirname(doc.file), sourcePath))
    .replace(/\/$/, "");
  if (rel === ".." || rel.startsWith("../")) {
    return { problem: `spec.source.path: "${sourcePath}" points outside the repository` };
  }
  const dir = rel === "." ? "" : rel;
  try {
    const realDir = await realpath(path.join(root, dir));
    if (realDir !== realRoot && !realDir.startsWith(realRoot + path.sep)) {
      return { problem: `spec.source.path: "${sourcePath}" leads outside the repository through a symlink` };
    }
    if (!(await lstat(realDir)).isDirectory()) {
      return { problem: `spec.source.path: "${sourcePath}" is not a directory` };
    }
  } catch {
    return { problem: `spec.source.path: "${sourcePath}" does not exist` };
  }
  return { dir };
}

/** True when host is one of the domains or a subdomain of one ("*.a.com" counts as under "a.com"). */
export function hostAllowed(host: string, domains: string[]): boolean {
  const bare = host.startsWith("*.") ? host.slice(2) : host;
  return domains.some((d) => bare === d || bare.endsWith(`.${d}`));
}

type DocIndex = Map<LoadedFunction, ParsedDoc>;

function checkHosts(
  project: ProjectManifest | null,
  functions: LoadedFunction[],
  docOf: DocIndex,
  problems: Problems,
) {
  if (!project) return; // without a Project document the registration's own domains apply (later issue)
  for (const fn of functions) {
    fn.manifest.spec.routes.forEach((route, i) => {
      if (!hostAllowed(route.host, project.spec.domains)) {
        problems.add(
          "EDGE_ERR_MANIFEST_INVALID",
          docOf.get(fn)!.locate(["spec", "routes", i, "host"]),
          `spec.routes.${i}.host: "${route.host}" is outside the project's domains (${project.spec.domains.join(", ")})`,
        );
      }
    });
  }
}

/** Two routes of different functions with the same host, path and priority whose methods overlap. */
function checkRouteConflicts(functions: LoadedFunction[], docOf: DocIndex, problems: Problems) {
  const seen = new Map<string, { fn: string; methods: Set<string> | null }[]>();
  for (const fn of functions) {
    fn.manifest.spec.routes.forEach((route, i) => {
      const key = `${route.host}\n${route.path}\n${route.priority}`;
      const methods = route.methods?.length ? new Set<string>(route.methods) : null;
      const others = seen.get(key) ?? [];
      for (const other of others) {
        if (other.fn === fn.manifest.metadata.name) continue;
        const overlap = !methods || !other.methods || [...methods].some((m) => other.methods!.has(m));
        if (overlap) {
          problems.add(
            "EDGE_ERR_MANIFEST_INVALID",
            docOf.get(fn)!.locate(["spec", "routes", i]),
            `route ${route.host}${route.path} (priority ${route.priority}) of "${fn.manifest.metadata.name}" conflicts with the same route of "${other.fn}"`,
          );
        }
      }
      others.push({ fn: fn.manifest.metadata.name, methods });
      seen.set(key, others);
    });
  }
}
