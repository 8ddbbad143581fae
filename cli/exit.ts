// Exit codes of edgectl and the one error type commands throw to choose one. Scripts rely on
// these numbers (docs/cli.md lists them); they never change meaning.

import type { ErrorDetail } from "../lib/errors.ts";

export const EXIT = {
  /** The command did what it was asked. */
  ok: 0,
  /** The operation failed: invalid manifests, a failed build or reconcile, a 4xx/5xx the API gave. */
  failure: 1,
  /** The command line is wrong: unknown command or option, missing argument. */
  usage: 2,
  /** The API refused the token: 401 (none or not valid) or 403 (not allowed for this project). */
  auth: 3,
  /** The API has no such object (404). */
  notFound: 4,
  /** The control plane could not be reached (connection refused, DNS, timeout). */
  unreachable: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that ends the command with `exitCode`, printed as `edgectl: <code>: <message>`. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    readonly code?: string,
    readonly details?: ErrorDetail[],
    /** A line of advice printed after the error (what to do about it). */
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A wrong command line: exit 2, with the command's usage line. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(EXIT.usage, message);
  }
}

/** The exit code an API error status maps to. */
export function exitForStatus(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  return EXIT.failure;
}
