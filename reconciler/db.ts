// The database seam: one small interface, two real implementations — PostgreSQL through `pg`
// (production, N control-plane replicas) and PGlite (the embedded default, in a data
// directory). Both run the same plain-SQL migrations and the same queries.

import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** Runs fn inside one transaction; it commits when fn resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Calls onPayload for every NOTIFY on channel (from any connection); returns the unsubscribe. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// pg returns bigint and numeric as strings by default; counts and generations fit in a double.
pg.types.setTypeParser(20, (v) => Number(v));

export class PostgresDb implements Db {
  readonly kind = "postgres";
  private readonly pool: pg.Pool;

  /** `schema` confines every query to one schema (tests use a fresh one each). */
  constructor(
    private readonly connectionString: string,
    schema?: string,
  ) {
    this.pool = new pg.Pool({
      connectionString,
      max: 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(sql, params)).rows as T[];
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const tx: Queryable = {
        query: async <R>(sql: string, params: unknown[] = []) =>
          (await client.query(sql, params)).rows as R[],
      };
      const result = await fn(tx);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    // LISTEN needs a connection of its own that stays open (pool connections are shared).
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on("notification", (n) => n.channel === channel && onPayload(n.payload ?? ""));
    client.on("error", () => {}); // a dropped listener is covered by the caller's fallback poll
    await client.connect();
    await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    return async () => {
      await client.end().catch(() => {});
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export class PgliteDb implements Db {
  readonly kind = "pglite";
  private readonly pg: PGlite;

  /** dataDir undefined = in memory. */
  constructor(dataDir?: string) {
    this.pg = new PGlite(dataDir);
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pg.query<T>(sql, params)).rows;
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pg.transaction(async (t) =>
      fn({ query: async <R>(sql: string, params: unknown[] = []) => (await t.query<R>(sql, params)).rows }),
    );
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    const unlisten = await this.pg.listen(channel, onPayload);
    return async () => unlisten();
  }

  async close(): Promise<void> {
    await this.pg.close();
  }
}

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Applies every migrations/NNN_*.sql not yet applied, each in its own transaction, in order. */
export async function migrate(db: Db): Promise<string[]> {
  await db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
  );
  const done = new Set(
    (await db.query<{ name: string }>("SELECT name FROM schema_migrations")).map((r) => r.name),
  );
  const applied: string[] = [];
  for (const name of (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort()) {
    if (done.has(name)) continue;
    const sql = await readFile(MIGRATIONS_DIR + name, "utf8");
    await db.transaction(async (tx) => {
      // A multi-statement script through the transaction's connection.
      for (const statement of splitSql(sql)) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (name) VALUES ($1)", [name]);
    });
    applied.push(name);
  }
  return applied;
}

/**
 * Splits a migration script into statements: drops "--" comments, then splits on ";" outside
 * dollar-quoted bodies ($$ … $$, so trigger functions can be written in PL/pgSQL). Migrations
 * therefore keep "--" out of everything and ";" out of ordinary string literals.
 */
function splitSql(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, "")
    .split(/(\$\$[\s\S]*?\$\$)/)
    .flatMap((part, i) => (i % 2 === 1 ? [part] : part.split(/(;)/)))
    .reduce<string[]>(
      (statements, piece) => {
        if (piece === ";") statements.push("");
        else statements[statements.length - 1] += piece;
        return statements;
      },
      [""],
    )
    .map((s) => s.trim())
    .filter(Boolean);
}
