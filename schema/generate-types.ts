// Generates schema/types.generated.ts from edge.schema.json, so the schema stays the single
// source of truth for the manifest's TypeScript types. Run `npm run gen:types` after editing
// the schema; test/unit/schema-types.test.ts fails while the generated file is out of date.

import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const SCHEMA = fileURLToPath(new URL("./edge.schema.json", import.meta.url));
export const GENERATED = fileURLToPath(new URL("./types.generated.ts", import.meta.url));

export async function generateTypes(): Promise<string> {
  const schema = JSON.parse(await readFile(SCHEMA, "utf8"));
  // The schema's top level dispatches on `kind` with if/then (clearer errors from ajv); for
  // types the same choice is a union of the two documents.
  const { allOf: _allOf, properties: _properties, required: _required, ...rest } = schema;
  const union = {
    ...rest,
    title: "Manifest",
    type: "object",
    oneOf: [{ $ref: "#/$defs/Project" }, { $ref: "#/$defs/Function" }],
  };
  const body = await compile(union, "Manifest", {
    bannerComment: "",
    additionalProperties: false,
    format: false,
    unreachableDefinitions: false,
  });
  return `// Generated from schema/edge.schema.json by schema/generate-types.ts (npm run gen:types). Do not edit.\n// These are the documents as written; schema/types.ts adds the defaults the loader applies.\n\n${body}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(GENERATED, await generateTypes());
  process.stdout.write(`wrote ${GENERATED}\n`);
}
