import { readFile } from "node:fs/promises";
import test from "ava";
import { GENERATED, generateTypes } from "../../schema/generate-types.ts";

test("schema: the generated manifest types are up to date with edge.schema.json (run npm run gen:types)", async (t) => {
  t.is(await readFile(GENERATED, "utf8"), await generateTypes());
});
