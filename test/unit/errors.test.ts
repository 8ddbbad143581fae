import { readFile } from "node:fs/promises";
import test from "ava";
import { catalogue, EdgeError, edgeError, toHttpError } from "../../lib/errors.ts";

test("errors: every catalogued code is documented in docs/errors.md with its status", async (t) => {
  const doc = await readFile("docs/errors.md", "utf8");
  const rows = new Map(
    doc
      .split("\n")
      .filter((line) => line.startsWith("|"))
      .map((line) => line.split("|").map((cell) => cell.trim()))
      .map((cells) => [cells[1]!.replace(/`/g, ""), cells[2]]),
  );
  for (const [code, entry] of Object.entries(catalogue)) {
    t.is(
      rows.get(code),
      String(entry.status),
      `${code} is missing from docs/errors.md or has another status`,
    );
  }
});

test("errors: every code follows EDGE_ERR_<AREA>_<WHAT>", (t) => {
  for (const code of Object.keys(catalogue)) t.regex(code, /^EDGE_ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
});

test("errors: a 4xx error shows its message and details to the client", (t) => {
  const err = edgeError("EDGE_ERR_MANIFEST_SCHEMA", "bad manifest", [
    { where: "edge.yaml:3:1", message: "x" },
  ]);
  t.true(err instanceof EdgeError);
  t.is(err.name, "ManifestError");
  t.deepEqual(toHttpError(err, "id1"), {
    status: 400,
    body: {
      error: {
        code: "EDGE_ERR_MANIFEST_SCHEMA",
        message: "bad manifest",
        details: [{ where: "edge.yaml:3:1", message: "x" }],
      },
    },
  });
});

test("errors: a 5xx error or a foreign exception shows only its code and error id", (t) => {
  const secret = "password=hunter2";
  t.deepEqual(toHttpError(edgeError("EDGE_ERR_ARTIFACT_STORE", secret), "id2"), {
    status: 500,
    body: { error: { code: "EDGE_ERR_ARTIFACT_STORE", message: "internal error (id id2)", id: "id2" } },
  });
  const r = toHttpError(new TypeError(secret), "id3");
  t.is(r.status, 500);
  t.is(r.body.error.code, "EDGE_ERR_INTERNAL");
  t.false(JSON.stringify(r.body).includes("hunter2"));
});
