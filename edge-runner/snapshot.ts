// The last applied desired state, kept on disk beside the artifact cache. DESIGN.md "Runner
// rules": with the control plane unreachable the runner restarts from its local cache — the
// cache holds the modules, this file holds which of them to serve under which routes, and the
// generation to report in the next Hello.

import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../lib/log.ts";
import type { DesiredState } from "../proto/index.ts";

// A leading dot keeps it apart from `{functionId}/` directories (ids cannot start with a dot).
const FILE = ".last-applied.json";

export class Snapshot {
  readonly path: string;
  readonly #dir: string;
  readonly #logger: Logger;

  constructor(cacheDir: string, logger: Logger) {
    this.#dir = cacheDir;
    this.path = join(cacheDir, FILE);
    this.#logger = logger;
  }

  /** The saved state, or null when there is none or it is unreadable (then the runner starts empty). */
  async load(): Promise<DesiredState | null> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.#logger.warn({ err }, "cannot read last applied state");
      return null;
    }
    try {
      const state = JSON.parse(text) as DesiredState;
      if (
        typeof state.generation !== "string" ||
        !Array.isArray(state.functions) ||
        !Array.isArray(state.routes)
      ) {
        throw new Error("not a DesiredState");
      }
      return state;
    } catch (err) {
      this.#logger.warn({ err, path: this.path }, "ignoring a corrupt last applied state");
      return null;
    }
  }

  /** Writes atomically (temp file + rename), so a crash leaves the old state or the new one. */
  async save(state: DesiredState): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const temp = `${this.path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(temp, JSON.stringify(state));
      await rename(temp, this.path);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
  }
}
