// The CLI's client of the control plane's HTTP API: base URL and bearer token resolved once,
// JSON in and out, and every failure turned into a CliError with the exit code it means.

import { readFile } from "node:fs/promises";
import path from "node:path";
import type { ErrorDetail } from "../lib/errors.ts";
import type { Args } from "./args.ts";
import { CliError, EXIT, exitForStatus } from "./exit.ts";

export const DEFAULT_API = "http://127.0.0.1:8081";
export const DEFAULT_DATA_DIR = ".edgeplane";

/** The data directory edgectl serve uses: --data-dir, $EDGE_DATA_DIR, else .edgeplane. */
export const dataDirOf = (args: Args): string =>
  args.string("data-dir") ?? process.env.EDGE_DATA_DIR ?? DEFAULT_DATA_DIR;

export class ApiClient {
  constructor(
    readonly base: string,
    private readonly token: string | null,
    /** Where the token came from, for the hint after a 401. */
    readonly tokenSource: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /**
   * --api, else $EDGE_API (or the older $EDGE_API_URL), else edgectl serve's API port;
   * --token, else $EDGE_TOKEN, else the admin token edgectl serve wrote into its data directory.
   */
  static async from(args: Args): Promise<ApiClient> {
    const base = (
      args.string("api") ??
      process.env.EDGE_API ??
      process.env.EDGE_API_URL ??
      DEFAULT_API
    ).replace(/\/+$/, "");
    if (!/^https?:\/\//.test(base))
      throw new CliError(EXIT.usage, `--api: expected an http(s) URL, got "${base}"`);
    const flag = args.string("token");
    if (flag) return new ApiClient(base, flag, "--token");
    if (process.env.EDGE_TOKEN) return new ApiClient(base, process.env.EDGE_TOKEN, "$EDGE_TOKEN");
    const file = path.join(dataDirOf(args), "admin-token");
    const fromFile = (await readFile(file, "utf8").catch(() => "")).trim();
    return fromFile ? new ApiClient(base, fromFile, file) : new ApiClient(base, null, "none");
  }

  get<T>(urlPath: string): Promise<T> {
    return this.request<T>("GET", urlPath);
  }

  post<T>(urlPath: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", urlPath, body);
  }

  delete<T>(urlPath: string): Promise<T> {
    return this.request<T>("DELETE", urlPath);
  }

  async request<T>(method: string, urlPath: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${this.base}${urlPath}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      const why =
        (err as Error).name === "TimeoutError"
          ? `no answer in ${this.timeoutMs / 1000}s`
          : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new CliError(
        EXIT.unreachable,
        `cannot reach the control plane at ${this.base}: ${why}`,
        undefined,
        undefined,
        "start one with `edgectl serve` or `edgectl control-plane`, or point --api / $EDGE_API at it",
      );
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: reported below by status alone.
    }
    if (res.ok) return json as T;
    const error = (json as { error?: { code?: string; message?: string; details?: ErrorDetail[] } } | null)
      ?.error;
    const exitCode = exitForStatus(res.status);
    throw new CliError(
      exitCode,
      error?.message ?? `${method} ${urlPath}: HTTP ${res.status} ${res.statusText}`,
      error?.code ?? `HTTP_${res.status}`,
      Array.isArray(error?.details) ? error.details : undefined,
      res.status === 401
        ? this.token
          ? `the token from ${this.tokenSource} was refused; make a new one with \`edgectl tokens create\``
          : "no token: pass --token, set $EDGE_TOKEN, or run where `edgectl serve` wrote <data-dir>/admin-token"
        : undefined,
    );
  }
}

/** A path segment, escaped. */
export const seg = (s: string): string => encodeURIComponent(s);
