import { type Logger, pino } from "pino";

export type { Logger };

/** The process logger: pino JSON lines on stderr; EDGE_LOG_LEVEL picks the level (default info). */
export function createLogger(name: string, level = process.env.EDGE_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level }, pino.destination(2));
}
