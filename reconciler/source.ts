// Where a project's manifests and function sources come from. A GitSource fetches a commit of
// the registered repository (the clone URL comes from the registration, never from a webhook
// payload) into the project's own working tree; a DirectorySource reads a plain directory,
// which is what `edgectl serve example-repo` uses.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { simpleGit } from "simple-git";
import { hashSourceTree } from "../builder/index.ts";
import { edgeError } from "../lib/errors.ts";

export interface Checkout {
  /** Absolute directory holding the commit's files. */
  dir: string;
  /** The commit sha (or, for a directory, "dir-" + a content hash). */
  commit: string;
}

export interface ProjectSource {
  readonly kind: "git" | "directory";
  /** Checks out `commit`, or the branch head when null. */
  checkout(commit: string | null): Promise<Checkout>;
  /** The commit the branch head points at now, without checking it out (for polling). */
  head(): Promise<string>;
  /**
   * The branch head, when the branch has moved past `commit` (it is a strict ancestor of the
   * head: a newer push exists); null when the head is `commit` or elsewhere.
   */
  movedPast?(commit: string): Promise<string | null>;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

const run = promisify(execFile);

/**
 * Local, quiet git commands (checkout, clean, cat-file, rev-parse) run through execFile:
 * simple-git waits a fixed 50 ms after any command that printed nothing, which made a
 * reconcile's checkout take ~190 ms instead of ~40 ms. Talking to the remote (clone, fetch,
 * ls-remote) stays with simple-git.
 */
async function gitLocal(dir: string, args: string[]): Promise<string> {
  return (await run("git", ["-C", dir, ...args], { maxBuffer: 1 << 20 })).stdout;
}

export class GitSource implements ProjectSource {
  readonly kind = "git";

  constructor(
    readonly repoUrl: string,
    readonly branch: string,
    /** This project's own working tree under the data directory. */
    readonly workDir: string,
  ) {}

  async checkout(commit: string | null): Promise<Checkout> {
    if (commit !== null && !SHA.test(commit)) {
      throw edgeError("EDGE_ERR_GIT_FETCH", `"${commit}" is not a commit sha`);
    }
    try {
      if (!existsSync(path.join(this.workDir, ".git"))) {
        await mkdir(path.dirname(this.workDir), { recursive: true });
        await simpleGit().clone(this.repoUrl, this.workDir, ["--no-checkout", "--quiet"]);
      }
      // A commit already fetched (a retry, a manual reconcile) needs no round trip to the remote.
      const known =
        commit !== null &&
        (await gitLocal(this.workDir, ["cat-file", "-t", commit]).catch(() => "")).trim() === "commit";
      if (!known) {
        // Only the production branch: it is all a reconcile can be asked for.
        await simpleGit(this.workDir).fetch([
          "--no-tags",
          "--force",
          "origin",
          `+refs/heads/${this.branch}:refs/remotes/origin/${this.branch}`,
        ]);
      }
      const sha =
        commit ??
        (await gitLocal(this.workDir, ["rev-parse", `refs/remotes/origin/${this.branch}^{commit}`])).trim();
      await gitLocal(this.workDir, ["checkout", "--quiet", "--force", "--detach", sha]);
      await gitLocal(this.workDir, ["clean", "-ffdxq"]);
      return { dir: path.resolve(this.workDir), commit: sha };
    } catch (err) {
      throw this.fetchError(commit, err);
    }
  }

  async head(): Promise<string> {
    try {
      const out = await simpleGit().listRemote([this.repoUrl, `refs/heads/${this.branch}`]);
      const sha = out.split(/\s+/)[0] ?? "";
      if (!SHA.test(sha)) throw new Error(`branch ${this.branch} not found`);
      return sha;
    } catch (err) {
      throw this.fetchError(null, err);
    }
  }

  async movedPast(commit: string): Promise<string | null> {
    // Before the first clone there is nothing to compare with; a fetch that fails here fails the
    // checkout that follows, with its proper error.
    if (!SHA.test(commit) || !existsSync(path.join(this.workDir, ".git"))) return null;
    const fetched = await simpleGit(this.workDir)
      .fetch([
        "--no-tags",
        "--force",
        "origin",
        `+refs/heads/${this.branch}:refs/remotes/origin/${this.branch}`,
      ])
      .then(
        () => true,
        () => false,
      );
    if (!fetched) return null;
    const head = (
      await gitLocal(this.workDir, ["rev-parse", `refs/remotes/origin/${this.branch}^{commit}`])
    ).trim();
    if (head === commit) return null;
    const ancestor = await run("git", ["-C", this.workDir, "merge-base", "--is-ancestor", commit, head]).then(
      () => true,
      () => false,
    );
    return ancestor ? head : null;
  }

  private fetchError(commit: string | null, err: unknown): Error {
    if ((err as { code?: string }).code === "EDGE_ERR_GIT_FETCH") return err as Error;
    const why =
      String((err as Error).message)
        .split("\n")
        .filter(Boolean)
        .slice(-1)[0] ?? "unknown error";
    return edgeError(
      "EDGE_ERR_GIT_FETCH",
      `could not fetch ${commit ?? this.branch} from the project's repository: ${why}`,
      undefined,
      err,
    );
  }
}

export class DirectorySource implements ProjectSource {
  readonly kind = "directory";
  constructor(readonly dir: string) {}

  async checkout(): Promise<Checkout> {
    return { dir: path.resolve(this.dir), commit: await this.head() };
  }

  async head(): Promise<string> {
    return `dir-${(await hashSourceTree(path.resolve(this.dir))).slice(0, 12)}`;
  }
}
