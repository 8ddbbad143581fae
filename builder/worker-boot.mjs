// Starts the build worker (worker.ts). The heavy toolchain packages are imported here first,
// as plain JavaScript: loaded through tsx's hooks, the AssemblyScript compiler takes seconds
// to import instead of a fraction of one. tsx is registered only afterwards, for the
// builder's own TypeScript modules. Arguments: the language, and "aot" for wasm-aot builds.

const PRELOAD = {
  assemblyscript: ["assemblyscript/asc"],
  wat: ["wabt"],
};

const [language, runtime] = process.argv.slice(2);
for (const specifier of [...(PRELOAD[language] ?? []), ...(runtime === "aot" ? ["binaryen"] : [])]) {
  await import(specifier);
}
const { register } = await import("tsx/esm/api");
register();
await import("./worker.ts");
