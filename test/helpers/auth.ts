// API tokens for tests: real tokens, created in the control plane's own database.

import { createToken } from "../../reconciler/auth.ts";
import type { Queryable } from "../../reconciler/index.ts";

/** A new admin token of the control plane whose database is `db`. */
export async function adminToken(cp: { db: Queryable }): Promise<string> {
  return (await createToken(cp.db, { admin: true, name: "test-admin" })).token;
}

/** A new token scoped to `project`. */
export async function projectToken(cp: { db: Queryable }, project: string): Promise<string> {
  return (await createToken(cp.db, { project, name: `test-${project}` })).token;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
