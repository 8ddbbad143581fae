// edgectl: the one command of edgeplane. This file only dispatches: it finds the command (or
// noun + subcommand) in cli/, answers --help, parses the command line, runs the command, and
// turns what it throws into a message on stderr and an exit code (docs/cli.md lists them).

import {
  CliError,
  type Command,
  commands,
  EXIT,
  groupHelpText,
  helpText,
  isGroup,
  parse,
  UsageError,
  usageText,
  wantsHelp,
} from "../cli/index.ts";
import { EdgeError, type ErrorDetail } from "../lib/errors.ts";

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usageText());
    return EXIT.usage;
  }
  if (name === "help" || name === "--help" || name === "-h") {
    if (rest.length === 0) {
      process.stdout.write(usageText());
      return EXIT.ok;
    }
    return main([...rest, "--help"]);
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`edgectl: unknown command "${name}"\n\n${usageText()}`);
    return EXIT.usage;
  }
  let command: Command;
  let args = rest;
  if (isGroup(entry)) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      (sub ? process.stdout : process.stderr).write(groupHelpText(entry));
      return sub ? EXIT.ok : EXIT.usage;
    }
    const found = entry.subcommands.find((c) => c.name === `${entry.name} ${sub}`);
    if (!found) {
      process.stderr.write(`edgectl: unknown subcommand "${entry.name} ${sub}"\n\n${groupHelpText(entry)}`);
      return EXIT.usage;
    }
    command = found;
    args = subArgs;
  } else {
    command = entry;
  }
  if (wantsHelp(args)) {
    process.stdout.write(helpText(command));
    return EXIT.ok;
  }
  try {
    return await command.run(parse(command, args));
  } catch (err) {
    return report(err, command);
  }
}

function printDetails(details: ErrorDetail[] | undefined): void {
  for (const d of details ?? []) process.stderr.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
}

function report(err: unknown, command: Command): number {
  if (err instanceof UsageError) {
    process.stderr.write(
      `edgectl ${command.name}: ${err.message}\nusage: edgectl ${command.name} ${command.usage}\n` +
        `Run "edgectl ${command.name} --help" for its options.\n`,
    );
    return err.exitCode;
  }
  if (err instanceof CliError) {
    process.stderr.write(`edgectl: ${err.code ? `${err.code}: ` : ""}${err.message}\n`);
    printDetails(err.details);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    return err.exitCode;
  }
  if (err instanceof EdgeError) {
    // Raised locally (manifest loader, builder, configuration).
    process.stderr.write(`edgectl: ${err.code}: ${err.message}\n`);
    printDetails(err.details);
    return EXIT.failure;
  }
  process.stderr.write(`edgectl: ${(err as Error)?.message ?? String(err)}\n`);
  return EXIT.failure;
}
