// Real git repositories for tests: a bare "origin" and a working clone to commit and push from.

import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { simpleGit } from "simple-git";

export interface TestRepo {
  origin: string;
  work: string;
  /** Writes files (path → content; null deletes), commits everything, pushes main; returns the sha. */
  commit(files: Record<string, string | Uint8Array | null>, message: string): Promise<string>;
  /** The sha of the last commit. */
  head(): Promise<string>;
  /** Copies a directory into the work tree. */
  copyIn(from: string, to: string): Promise<void>;
}

export async function createTestRepo(root: string): Promise<TestRepo> {
  const origin = path.join(root, "origin.git");
  const work = path.join(root, "work");
  await mkdir(origin, { recursive: true });
  await simpleGit(origin).init(true, ["--initial-branch=main"]);
  await mkdir(work, { recursive: true });
  const git = simpleGit(work);
  await git.init(["--initial-branch=main"]);
  await git.addConfig("user.name", "edgeplane test");
  await git.addConfig("user.email", "test@edgeplane.invalid");
  await git.addRemote("origin", origin);
  return {
    origin,
    work,
    async commit(files, message) {
      for (const [rel, content] of Object.entries(files)) {
        const abs = path.join(work, rel);
        if (content === null) await rm(abs, { recursive: true, force: true });
        else {
          await mkdir(path.dirname(abs), { recursive: true });
          await writeFile(abs, content);
        }
      }
      await git.add(["-A"]);
      await git.commit(message);
      await git.push("origin", "main");
      return (await git.revparse(["HEAD"])).trim();
    },
    async head() {
      return (await git.revparse(["HEAD"])).trim();
    },
    async copyIn(from, to) {
      await cp(from, path.join(work, to), { recursive: true });
    },
  };
}
