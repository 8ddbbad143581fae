// edgectl tokens: create, list and revoke API bearer tokens (admin only). `create` can also
// write straight into a PostgreSQL control plane's database, to bootstrap one that has no token.

import { apiOptions, type Command, type CommandGroup, jsonOption } from "./args.ts";
import { ApiClient, seg } from "./client.ts";
import { CliError, EXIT, UsageError } from "./exit.ts";
import { ago, printJson, table } from "./table.ts";

interface Created {
  id: string;
  token: string;
  project: string | null;
  admin: boolean;
  name: string;
}

interface TokenRow {
  id: string;
  name: string;
  project: string | null;
  admin: boolean;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const create: Command = {
  name: "tokens create",
  summary: "create a bearer token scoped to one project, or an admin token",
  usage: "(--project P | --admin) [--name N] [--database-url URL [--database-schema S]] [--json]",
  description: `The token is printed once; only its SHA-256 is stored. A project token reads and steers
that project only; an admin token sees every project and manages tokens.
Through the API this needs an admin token. With --database-url the token is written directly
into that PostgreSQL database (migrating it first), which is how the first token of a control
plane on PostgreSQL is made.`,
  options: {
    project: { type: "string", arg: "P", help: "scope the token to this project" },
    admin: { type: "boolean", help: "an admin token (every project, token management)" },
    name: { type: "string", arg: "N", help: "a name to recognise it by (audit rows show token:<name>)" },
    "database-url": {
      type: "string",
      arg: "URL",
      help: "write the token into this PostgreSQL database instead of calling the API",
    },
    "database-schema": {
      type: "string",
      arg: "S",
      help: "schema inside that database (default: search_path)",
    },
    ...jsonOption,
    ...apiOptions,
  },
  examples: [
    "edgectl tokens create --project acme --name ci-deployer",
    "edgectl tokens create --admin --name ops --database-url postgres://postgres@127.0.0.1:5432/edgeplane",
  ],
  async run(args) {
    const project = args.string("project");
    const admin = args.flag("admin");
    const name = args.string("name");
    if (admin === Boolean(project)) throw new UsageError("give exactly one of --project P or --admin");
    const databaseUrl = args.string("database-url");
    let created: Created;
    if (databaseUrl) {
      const { PostgresDb, createToken, migrate } = await import("../reconciler/index.ts");
      const db = new PostgresDb(databaseUrl, args.string("database-schema"));
      try {
        await migrate(db);
        created = await createToken(db, {
          ...(project ? { project } : {}),
          admin,
          ...(name ? { name } : {}),
          createdBy: "edgectl",
        });
      } catch (err) {
        const e = err as Error & { code?: string; status?: number };
        if (e.status === 404) throw new CliError(EXIT.notFound, e.message, e.code);
        if (typeof e.code === "string" && !e.code.startsWith("EDGE_ERR")) {
          throw new CliError(EXIT.unreachable, `cannot use the database: ${e.message}`, e.code);
        }
        throw err;
      } finally {
        await db.close();
      }
    } else {
      const client = await ApiClient.from(args);
      created = await client.post<Created>("/api/v1/tokens", {
        ...(project ? { project } : {}),
        admin,
        ...(name ? { name } : {}),
      });
    }
    if (args.flag("json")) {
      printJson({
        id: created.id,
        token: created.token,
        project: created.project,
        admin: created.admin,
        name: created.name,
      });
      return EXIT.ok;
    }
    process.stdout.write(
      `${created.token}\n\ntoken ${created.id}${created.name ? ` (${created.name})` : ""}: ${created.admin ? "admin" : `project ${created.project}`}\n` +
        "shown once: store it now (e.g. export EDGE_TOKEN=…); revoke with `edgectl tokens revoke <id>`\n",
    );
    return EXIT.ok;
  },
};

const list: Command = {
  name: "tokens list",
  summary: "list tokens (never the tokens themselves: id, name, scope, prefix, use)",
  usage: "[--all] [--json]",
  options: {
    all: { type: "boolean", help: "include revoked tokens" },
    ...jsonOption,
    ...apiOptions,
  },
  examples: ["edgectl tokens list", "edgectl tokens list --all --json"],
  async run(args) {
    const client = await ApiClient.from(args);
    let { tokens } = await client.get<{ tokens: TokenRow[] }>("/api/v1/tokens");
    if (!args.flag("all")) tokens = tokens.filter((t) => !t.revoked_at);
    if (args.flag("json")) {
      printJson({ tokens });
      return EXIT.ok;
    }
    if (tokens.length === 0) {
      process.stdout.write("no tokens\n");
      return EXIT.ok;
    }
    process.stdout.write(
      table(tokens, [
        { header: "id", value: (t) => t.id },
        { header: "name", value: (t) => t.name },
        { header: "scope", value: (t) => (t.admin ? "admin" : `project ${t.project}`) },
        { header: "prefix", value: (t) => `${t.prefix}…` },
        { header: "created", value: (t) => ago(t.created_at) },
        { header: "last used", value: (t) => ago(t.last_used_at) },
        { header: "revoked", value: (t) => (t.revoked_at ? ago(t.revoked_at) : "") },
      ]),
    );
    return EXIT.ok;
  },
};

const revoke: Command = {
  name: "tokens revoke",
  summary: "revoke a token by id; it stops working at once",
  usage: "<id>",
  maxPositionals: 1,
  options: { ...jsonOption, ...apiOptions },
  examples: ["edgectl tokens revoke 3b0c2f7e-…"],
  async run(args) {
    const id = args.required(0, "<id>");
    const client = await ApiClient.from(args);
    await client.delete(`/api/v1/tokens/${seg(id)}`);
    if (args.flag("json")) printJson({ revoked: id });
    else process.stdout.write(`revoked token ${id}\n`);
    return EXIT.ok;
  },
};

export const tokens: CommandGroup = {
  name: "tokens",
  summary: "create, list and revoke API bearer tokens",
  subcommands: [create, list, revoke],
};
