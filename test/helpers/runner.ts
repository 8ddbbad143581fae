// A runner for integration tests: on an ephemeral port, with its own cache directory and an
// artifact server beside it, torn down with the test. Options override the defaults.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { createRunner, type Runner, type RunnerOptions } from "../../edge-runner/index.ts";
import { createLogger } from "../../lib/log.ts";
import { type ArtifactServer, serveArtifacts } from "./wasm.ts";

/** Silent unless EDGE_TEST_LOG_LEVEL says otherwise (deliberate 5xx responses log at error). */
export const quietLogger = createLogger("runner-test", process.env.EDGE_TEST_LOG_LEVEL ?? "silent");

export interface TestRunner {
  runner: Runner;
  port: number;
  artifacts: ArtifactServer;
  cacheDir: string;
}

export async function startTestRunner(
  t: ExecutionContext,
  options: Partial<RunnerOptions> = {},
): Promise<TestRunner> {
  const cacheDir = await mkdtemp(join(tmpdir(), "edge-runner-"));
  const artifacts = await serveArtifacts();
  const runner = createRunner({
    nodeId: "node-1",
    pop: "test-1",
    httpHost: "127.0.0.1",
    httpPort: 0,
    cacheDir,
    logger: quietLogger,
    downloadAttempts: 1,
    ...options,
  });
  const { httpPort } = await runner.start();
  t.teardown(async () => {
    await runner.stop();
    await artifacts.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  return { runner, port: httpPort, artifacts, cacheDir };
}
