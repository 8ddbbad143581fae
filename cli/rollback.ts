// edgectl rollback: pin a function to an earlier version at once (the runners converge), and
// print the git revert that makes the repository agree; --unpin hands it back to Git.

import { apiOptions, type Command, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { EXIT, UsageError } from "./exit.ts";
import { printJson } from "./table.ts";

interface RollbackResult {
  function: string;
  project: string;
  pinned_version: number;
  from_version: number;
  revert: string | null;
  message: string;
}

export const rollback: Command = {
  name: "rollback",
  summary: "pin a function to an earlier version now; print the git revert to follow up with",
  usage: "<function> --project P [--to VERSION] [--unpin] [--json]",
  description: `Without --to, rolls back to the version before the active one. The pin holds until
the function is unpinned (--unpin) or a commit changes it; make Git agree with the printed
\`git revert\` so the next push does not undo the rollback.`,
  maxPositionals: 1,
  options: {
    project: { type: "string", arg: "P", help: "the function's project (required)" },
    to: { type: "string", arg: "VERSION", help: "the version to pin (default: the previous one)" },
    unpin: { type: "boolean", help: "remove the pin instead: Git decides the version again" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: [
    "edgectl rollback hello --project acme",
    "edgectl rollback hello --project acme --to 3",
    "edgectl rollback hello --project acme --unpin",
  ],
  async run(args) {
    const fn = args.required(0, "<function>");
    const project = args.string("project");
    if (!project) throw new UsageError("missing --project P");
    const to = args.int("to");
    if (args.flag("unpin") && to !== undefined) throw new UsageError("--to and --unpin exclude each other");
    const client = await ApiClient.from(args);
    const base = `/api/v1/projects/${seg(project)}/functions/${seg(fn)}`;
    if (args.flag("unpin")) {
      const body = await client.delete<{ message?: string; unpinned_version?: number } | null>(`${base}/pin`);
      if (args.flag("json")) printJson(body ?? { function: fn, project });
      else {
        process.stdout.write(
          `${project}/${fn} unpinned${body?.unpinned_version ? ` (was pinned to v${body.unpinned_version})` : ""}\n`,
        );
        if (body?.message) process.stdout.write(`${body.message}\n`);
      }
      return EXIT.ok;
    }
    const r = await client.post<RollbackResult>(`${base}/rollback`, to === undefined ? {} : { to });
    if (args.flag("json")) {
      printJson(r);
      return EXIT.ok;
    }
    process.stdout.write(
      `${r.project}/${r.function} pinned to v${r.pinned_version} (was v${r.from_version})\n`,
    );
    if (r.message) process.stdout.write(`${r.message}\n`);
    if (r.revert) {
      process.stdout.write(`\nto make Git agree (then push):\n  ${r.revert}\n`);
    }
    return EXIT.ok;
  },
};
