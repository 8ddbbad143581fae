// Parsing of the human units that options are written in ("30s", "1MiB"), so that config files
// read like prose and compiled config holds plain numbers (ms, bytes).

import { edgeError } from "./errors.ts";

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_BYTES: Record<string, number> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1e6,
  mib: 1024 ** 2,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** "250ms", "30s", "2m", "1h", "7d" or a number of milliseconds → milliseconds. */
export function parseDuration(value: string | number, option: string): number {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value;
  if (/^\s*0\s*$/.test(String(value))) return 0; // "0" needs no unit (it means "off")
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(String(value));
  if (!m)
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `${option}: expected a duration like "30s" or "250ms", got ${JSON.stringify(value)}`,
    );
  return Math.round(Number(m[1]) * DURATION_MS[m[2]!.toLowerCase()]!);
}

/** "1MiB", "512KB", "100b" or a number of bytes → bytes. */
export function parseSize(value: string | number, option: string): number {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)\s*$/i.exec(String(value));
  if (!m)
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `${option}: expected a size like "1MiB" or "512KB", got ${JSON.stringify(value)}`,
    );
  return Math.round(Number(m[1]) * SIZE_BYTES[m[2]!.toLowerCase()]!);
}
