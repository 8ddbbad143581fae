// The public surface of the edge runner; other folders import only this file.

export type { CompiledRunnerOptions, RunnerOptions } from "./config.ts";
export { compileRunnerOptions, withDefaults } from "./config.ts";
export type { RunnerMetrics } from "./metrics.ts";
export type { RouteMatch, RouteTable } from "./router.ts";
export { compileRoutes, normalizeHost } from "./router.ts";
export type { FunctionVersionStats, Runner, RunnerStats } from "./runner.ts";
export { createRunner } from "./runner.ts";
