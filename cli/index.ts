// edgectl's commands: the public surface of cli/ that bin/edgectl.ts dispatches to. Each command
// module imports its heavy dependencies (control plane, builder, runner) only when it runs, so
// `edgectl --help` and the API commands start fast.

import type { Command, CommandGroup } from "./args.ts";
import { audit } from "./audit.ts";
import { build } from "./build.ts";
import { certs } from "./certs.ts";
import { controlPlane } from "./control-plane.ts";
import { functions } from "./functions.ts";
import { nodes } from "./nodes.ts";
import { plan } from "./plan.ts";
import { previews } from "./previews.ts";
import { reconcile } from "./reconcile.ts";
import { rollback } from "./rollback.ts";
import { runner } from "./runner.ts";
import { serve } from "./serve.ts";
import { status } from "./status.ts";
import { tokens } from "./tokens.ts";
import { validate } from "./validate.ts";

export {
  type Command,
  type CommandGroup,
  groupHelpText,
  helpText,
  isGroup,
  parse,
  wantsHelp,
} from "./args.ts";
export { CliError, EXIT, UsageError } from "./exit.ts";

/** Sections of `edgectl --help`, in the order a newcomer meets them. */
export const sections: { title: string; commands: (Command | CommandGroup)[] }[] = [
  { title: "run", commands: [serve, controlPlane, runner] },
  { title: "develop (local repository)", commands: [validate, plan, build] },
  {
    title: "operate (through the API)",
    commands: [status, reconcile, functions, nodes, audit, previews, rollback],
  },
  { title: "administer", commands: [tokens, certs] },
];

export const commands: (Command | CommandGroup)[] = sections.flatMap((s) => s.commands);

export function usageText(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = ["usage: edgectl <command> [options]"];
  for (const s of sections) {
    lines.push("", `${s.title}:`);
    for (const c of s.commands) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  }
  lines.push(
    "",
    'Run "edgectl <command> --help" for a command\'s options. API commands take --api URL',
    "(default $EDGE_API, else http://127.0.0.1:8081) and --token (default $EDGE_TOKEN, else",
    ".edgeplane/admin-token, which edgectl serve writes), and --json for scripts.",
    "exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not authorized (401/403),",
    "4 not found, 5 control plane unreachable. See docs/cli.md.",
  );
  return `${lines.join("\n")}\n`;
}
