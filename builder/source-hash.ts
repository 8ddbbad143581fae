// The source tree hash of a function: what decides whether it must be rebuilt. It covers every
// file under the function's source directory (path and bytes, sorted), so a change of any
// file — and nothing else — yields a new hash. Symlinks are hashed as their target text and
// never followed, so a link cannot pull bytes from outside the repository into the hash.

import { createHash } from "node:crypto";
import { readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";

export async function hashSourceTree(dir: string): Promise<string> {
  const entries: { rel: string; kind: "f" | "l"; abs: string }[] = [];
  async function walk(rel: string): Promise<void> {
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (entry.name === ".git" || entry.name === "node_modules") continue;
        await walk(childRel);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        entries.push({ rel: childRel, kind: entry.isFile() ? "f" : "l", abs: path.join(dir, childRel) });
      }
    }
  }
  await walk("");
  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const h = createHash("sha256");
  for (const e of entries) {
    const bytes = e.kind === "f" ? await readFile(e.abs) : Buffer.from(await readlink(e.abs));
    h.update(`${e.kind} ${e.rel} ${bytes.length}\n`);
    h.update(bytes);
  }
  return h.digest("hex");
}
