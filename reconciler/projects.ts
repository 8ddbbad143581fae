// Registered projects: the registration (config) is written to the projects table at start,
// so every other row can reference it and the API can list it.

import { randomUUID } from "node:crypto";
import type { CompiledProject } from "./config.ts";
import type { Queryable } from "./db.ts";

export interface ProjectRow {
  id: string;
  name: string;
  repo_url: string;
  full_name: string | null;
  branch: string;
  source: "git" | "directory" | "api";
  domains: string[];
  last_commit: string | null;
}

/** Inserts or updates the registration; returns the project's id (stable across restarts). */
export async function registerProject(q: Queryable, p: CompiledProject): Promise<string> {
  const [row] = await q.query<{ id: string }>(
    `INSERT INTO projects (id, name, repo_url, full_name, branch, source, domains) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (name) DO UPDATE SET repo_url = $3, full_name = $4, branch = $5, source = $6, domains = $7, updated_at = now()
     RETURNING id`,
    [randomUUID(), p.name, p.repo, p.fullName, p.branch, p.source, JSON.stringify(p.domains)],
  );
  return row!.id;
}

/** Registered projects, or only `only` when given (a project-scoped token). */
export async function listProjects(q: Queryable, only: string | null = null): Promise<ProjectRow[]> {
  return q.query<ProjectRow>(
    `SELECT id, name, repo_url, full_name, branch, source, domains, last_commit FROM projects
      WHERE $1::text IS NULL OR name = $1 ORDER BY name`,
    [only],
  );
}

export async function getProject(q: Queryable, name: string): Promise<ProjectRow | null> {
  const [row] = await q.query<ProjectRow>(
    "SELECT id, name, repo_url, full_name, branch, source, domains, last_commit FROM projects WHERE name = $1",
    [name],
  );
  return row ?? null;
}
