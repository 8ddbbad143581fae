// Databases for tests: the real PostgreSQL on 127.0.0.1:5432 (a fresh schema per test, dropped
// afterwards) and PGlite in memory. Data-layer tests run the same body against both.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { type Db, migrate, PgliteDb, PostgresDb } from "../../reconciler/index.ts";

export const DATABASE_URL = process.env.EDGE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export interface TestDb {
  db: Db;
  /** The schema holding this test's tables (PostgreSQL only). */
  schema: string | null;
  drop(): Promise<void>;
}

/** A fresh, empty schema in the real PostgreSQL; pass it as databaseSchema to a control plane. */
export async function freshSchema(): Promise<{ schema: string; drop: () => Promise<void> }> {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  return {
    schema,
    drop: async () => {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

export async function postgresDb(): Promise<TestDb> {
  const { schema, drop } = await freshSchema();
  const db = new PostgresDb(DATABASE_URL, schema);
  await migrate(db);
  return {
    db,
    schema,
    drop: async () => {
      await db.close();
      await drop();
    },
  };
}

export async function pgliteDb(): Promise<TestDb> {
  const db = new PgliteDb();
  await migrate(db);
  return { db, schema: null, drop: () => db.close() };
}

/** Both real backends, for `for (const backend of backends) test(...)`. */
export const backends: { name: string; open: () => Promise<TestDb> }[] = [
  { name: "postgres", open: postgresDb },
  { name: "pglite", open: pgliteDb },
];
