// The control plane's public surface.
export { createToken } from "./auth.ts";
export type { ControlPlaneOptions, ProjectRegistration } from "./config.ts";
export { compileControlPlaneOptions } from "./config.ts";
export { type ControlPlane, createControlPlane } from "./control-plane.ts";
export { type Db, migrate, PgliteDb, PostgresDb, type Queryable } from "./db.ts";
export { type Change, type DesiredFunction, type Plan, plan, type StoredFunction } from "./plan.ts";
export { describe as describeFunction } from "./reconcile.ts";
export { matchesSelector, parseSelector } from "./selector.ts";
