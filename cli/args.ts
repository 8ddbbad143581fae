// Commands and their command lines: each command declares its options once, and the same
// declaration drives parsing (node:util parseArgs, strict) and its --help text.

import { parseArgs } from "node:util";
import { UsageError } from "./exit.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** Placeholder of the value in --help, e.g. "URL". */
  arg?: string;
  help: string;
}

export type Options = Record<string, OptionSpec>;

export interface Command {
  /** As typed: "audit", "tokens create". */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** What follows the name in the usage line, e.g. "<project> [--wait]". */
  usage: string;
  /** Paragraphs for --help. */
  description?: string;
  options: Options;
  /** Most positional arguments accepted (default 0). */
  maxPositionals?: number;
  examples?: string[];
  run(args: Args): Promise<number>;
}

/** A noun with subcommands: `edgectl tokens create|list|revoke`. */
export interface CommandGroup {
  name: string;
  summary: string;
  description?: string;
  subcommands: Command[];
}

export const isGroup = (c: Command | CommandGroup): c is CommandGroup => "subcommands" in c;

/** Parsed command line with typed accessors. */
export class Args {
  constructor(
    private readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>,
    readonly positionals: string[],
  ) {}

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  list(name: string): string[] {
    const v = this.values[name];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  }

  /** A non-negative integer option, or undefined when absent; anything else is a usage error. */
  int(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: expected a non-negative integer, got "${v}"`);
    return Number(v);
  }

  /** The positional at `index`; a usage error naming `what` when it is missing. */
  required(index: number, what: string): string {
    const v = this.positionals[index];
    if (v === undefined || v === "") throw new UsageError(`missing ${what}`);
    return v;
  }
}

export function parse(command: Command, argv: string[]): Args {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean; default?: string | boolean }
  > = {};
  for (const [name, o] of Object.entries(command.options)) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.default !== undefined ? { default: o.default } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    if (String((err as { code?: string }).code).startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
    }
    throw err;
  }
  const max = command.maxPositionals ?? 0;
  if (parsed.positionals.length > max) {
    throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`);
  }
  return new Args(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals);
}

/** True when the command line asks for help (before any `--`). */
export function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

export function helpText(command: Command): string {
  const lines = [
    `edgectl ${command.name}: ${command.summary}`,
    "",
    `usage: edgectl ${command.name} ${command.usage}`.trimEnd(),
  ];
  if (command.description) lines.push("", command.description.trim());
  const rows = Object.entries(command.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.type === "string" ? ` ${o.arg ?? "VALUE"}` : ""}`;
    const more = [
      o.multiple ? "repeatable" : "",
      o.default !== undefined && o.default !== false ? `default: ${o.default}` : "",
    ]
      .filter(Boolean)
      .join("; ");
    return [flag, `${o.help}${more ? ` (${more})` : ""}`] as const;
  });
  rows.push(["-h, --help", "show this help"]);
  const width = Math.max(...rows.map(([f]) => f.length));
  lines.push("", "options:");
  for (const [flag, help] of rows) lines.push(`  ${flag.padEnd(width)}  ${help}`);
  if (command.examples?.length) {
    lines.push("", "examples:");
    for (const e of command.examples) lines.push(`  ${e}`);
  }
  return `${lines.join("\n")}\n`;
}

export function groupHelpText(group: CommandGroup): string {
  const width = Math.max(...group.subcommands.map((c) => c.name.length));
  const lines = [
    `edgectl ${group.name}: ${group.summary}`,
    "",
    `usage: edgectl ${group.name} <subcommand> [options]`,
  ];
  if (group.description) lines.push("", group.description.trim());
  lines.push("", "subcommands:");
  for (const c of group.subcommands) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push("", `Run "edgectl ${group.name} <subcommand> --help" for its options.`);
  return `${lines.join("\n")}\n`;
}

/** --api, --token and --data-dir: where the control plane is and how to authenticate. */
export const apiOptions: Options = {
  api: {
    type: "string",
    arg: "URL",
    help: "control plane API base URL (default: $EDGE_API, else http://127.0.0.1:8081)",
  },
  token: {
    type: "string",
    arg: "TOKEN",
    help: "bearer token (default: $EDGE_TOKEN, else the file <data-dir>/admin-token)",
  },
  "data-dir": {
    type: "string",
    arg: "DIR",
    help: "edgectl serve's data directory, read for admin-token (default: $EDGE_DATA_DIR, else .edgeplane)",
  },
};

export const jsonOption: Options = {
  json: { type: "boolean", help: "print JSON for scripts instead of a table" },
};
