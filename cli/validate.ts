// edgectl validate: check a repository's manifests locally, as a reconcile would, before pushing.

import path from "node:path";
import type { ManifestSet } from "../schema/index.ts";
import { type Command, jsonOption } from "./args.ts";
import { EXIT } from "./exit.ts";
import { printJson, table } from "./table.ts";

/** Loads the manifests of `dir`; on invalid manifests prints file:line:col problems and returns null. */
export async function loadOrReport(dir: string, json: boolean): Promise<ManifestSet | null> {
  const [{ loadManifests }, { EdgeError }] = await Promise.all([
    import("../schema/index.ts"),
    import("../lib/errors.ts"),
  ]);
  try {
    return await loadManifests(dir);
  } catch (err) {
    if (!(err instanceof EdgeError)) throw err;
    const details = err.details ?? [{ message: err.message }];
    if (json) {
      printJson({ ok: false, error: { code: err.code, message: err.message, details } });
    } else {
      // Compiler-style lines, so editors and CI annotations can jump to file:line:col.
      for (const d of details) process.stderr.write(`${d.where ? `${d.where}: ` : ""}${d.message}\n`);
      process.stderr.write(`${err.code}: ${details.length} problem(s) in ${dir}\n`);
    }
    return null;
  }
}

export const validate: Command = {
  name: "validate",
  summary: "check the manifests of a repository (file:line:col errors, exit 1 when invalid)",
  usage: "[dir] [--json]",
  description: `Loads every edge.yaml and *.edge.yaml under dir (default: .) with the schema and the
rules a reconcile applies. Nothing is contacted.`,
  maxPositionals: 1,
  options: { ...jsonOption },
  examples: ["edgectl validate example-repo", "edgectl validate . --json | jq .functions"],
  async run(args) {
    const dir = path.resolve(args.positionals[0] ?? ".");
    const json = args.flag("json");
    const set = await loadOrReport(dir, json);
    if (!set) return EXIT.failure;
    const functions = set.functions.map((f) => ({
      name: f.manifest.metadata.name,
      language: f.manifest.spec.source.language,
      abi: f.manifest.spec.abi,
      runtime: f.manifest.spec.runtime,
      source: f.sourceDir || ".",
      routes: f.manifest.spec.routes.map((r) => `${r.host}${r.path}`),
      location: `${f.location.file}:${f.location.line}:${f.location.col}`,
    }));
    if (json) {
      printJson({ ok: true, project: set.project?.metadata.name ?? null, files: set.files, functions });
      return EXIT.ok;
    }
    process.stdout.write(
      `ok: ${set.files.length} file(s), ${set.project ? `project ${set.project.metadata.name}` : "no project"}, ${set.functions.length} function(s)\n`,
    );
    if (functions.length) {
      process.stdout.write(
        `\n${table(functions, [
          { header: "function", value: (f) => f.name },
          { header: "language", value: (f) => f.language },
          { header: "abi", value: (f) => f.abi },
          { header: "source", value: (f) => f.source },
          { header: "routes", value: (f) => f.routes.join(" ") },
          { header: "defined at", value: (f) => f.location },
        ])}`,
      );
    }
    return EXIT.ok;
  },
};
