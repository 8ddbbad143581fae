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
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    /** Called when a dropped listening connection is back (notifications in between are lost). */
    onReconnect?: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Backoff of a LISTEN connection being re-opened (PostgresDb.listen). */
const LISTEN_RETRY_MIN_MS = 100;
const LISTEN_RETRY_MAX_MS = 5_000;

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
    // An idle pooled connection that PostgreSQL drops (a restart, a failover, an idle timeout)
    // makes the pool emit 'error'; unhandled, that would kill the process. The pool has already
    // discarded the client, and the next query opens a fresh connection.
    this.pool.on("error", () => {});
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(sql, params)).rows as T[];
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A checked-out client has no pool listener: a connection dropped between two statements
    // must fail this transaction (its next query rejects), not crash the process.
    const onError = () => {};
    client.on("error", onError);
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
      client.removeListener("error", onError);
      client.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  /**
   * LISTEN needs a connection of its own that stays open (pool connections are shared). When
   * that connection drops (PostgreSQL restarted, a network cut), it is opened again and LISTEN
   * re-issued, with a backoff from 100 ms doubling to 5 s, until unsubscribed; onReconnect then
   * runs, since notifications sent while no connection listened are lost (callers re-read state).
   * The first connection must succeed: a misconfigured database fails the caller at once.
   */
  async listen(
    channel: string,
    onPayload: (payload: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>> {
    let client: pg.Client | null = null;
    let closed = false;
    let retry: NodeJS.Timeout | null = null;
    let delay = LISTEN_RETRY_MIN_MS;
    const open = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: this.connectionString });
      c.on("notification", (n) => n.channel === channel && onPayload(n.payload ?? ""));
      let lost = false;
      const drop = () => {
        if (lost) return;
        lost = true;
        if (client === c) client = null;
        void c.end().catch(() => {});
        schedule();
      };
      c.on("error", drop);
      c.on("end", drop);
      try {
        await c.connect();
        await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      } catch (err) {
        c.removeListener("end", drop);
        lost = true;
        await c.end().catch(() => {});
        throw err;
      }
      if (closed) {
        await c.end().catch(() => {});
        return;
      }
      client = c;
    };
    const schedule = () => {
      if (closed || retry) return;
      retry = setTimeout(() => {
        retry = null;
        open().then(
          () => {
            delay = LISTEN_RETRY_MIN_MS;
            if (!closed) onReconnect?.();
          },
          () => {
            delay = Math.min(delay * 2, LISTEN_RETRY_MAX_MS);
            schedule();
          },
        );
      }, delay);
      retry.unref();
    };
    try {
      await open();
    } catch (err) {
      closed = true; // no retry behind the caller's back once it has been told of the failure
      if (retry) clearTimeout(retry);
      throw err;
    }
    return async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => {});
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
