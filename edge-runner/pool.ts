// The executor pool: worker threads that run guests, seen from the main thread. The design and
// the measurements behind it are in docs/runtime.md; in short:
//
// - `workers` executor threads serve every function version; each holds the compiled modules and
//   hot instances of the versions it has run, and runs one request at a time.
// - Dispatch packs: a request goes to an idle thread with a hot instance of its version, else is
//   pipelined behind the requests already sent to such a thread — as long as that thread's
//   current request has only just started and nothing slow is queued there — else to an idle
//   thread (a cold start there), else it waits in its version's queue (at most `queueDepth`,
//   then 429). Packing matters: every hand-over to a sleeping thread costs a wake-up, which is
//   worth more CPU than a hello function. A version is at most on `maxInstances` threads.
// - Slow versions (average run ≥ 1 ms) only go to idle threads and nothing is queued behind
//   them. Hostile ones (a timeout in the last 10 s) also run one request at a time and never on
//   the last serving thread free of hostile work (a spare is lent instead): a function that hits
//   its deadline again and again costs one thread at a time, and the others keep serving.
// - Deadlines: each thread writes the start of the request it runs into a SharedArrayBuffer; one
//   timer, armed for the earliest deadline, checks them. Past `maxExecutionMs` the request is
//   answered 504 at once and its thread terminated (seed Property 9); requests queued behind it
//   never started and go back to the front of their queues.
// - Spares: `spareWorkers` threads are started in advance. One takes a killed thread's place at
//   once, and one is lent when requests wait while every serving thread is stuck on something
//   that has run for a while (it goes back to being a spare when idle). New spares are started
//   in the background; there are never more than workers + 2 × spareWorkers threads.
// - Hot instances are bounded by count and by total linear memory, evicting the least recently
//   used idle instance first (seed Property 15).

import { setFlagsFromString } from "node:v8";
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { type EdgeError, edgeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import {
  CLOCK_BYTES,
  clockSeq,
  executorSource,
  expandResult,
  type FromExecutor,
  type Lane,
  type RunMessage,
  type RunResult,
  type ToExecutor,
  type VersionLoad,
} from "./executor.ts";
import { Lru } from "./lru.ts";
import type { MemoryPlan } from "./module.ts";

export type EvictionReason = "lru_count" | "lru_memory" | "trap" | "timeout" | "killed" | "undeployed";

/** Hooks for metrics; called on the main thread. */
export interface PoolEvents {
  /** An instance was created (edge-v1: a cold start; wagi: every request). */
  instantiated(version: PooledVersion): void;
  evicted(version: PooledVersion, reason: EvictionReason): void;
}

export interface PoolOptions {
  /** Executor threads serving requests. */
  workers: number;
  /** Threads started in advance, to replace killed ones and to stand in for stuck ones. */
  spareWorkers: number;
  maxHotInstances: number;
  maxHotMemoryBytes: number;
  /** Requests per version that may wait for a thread; beyond it → EDGE_ERR_RUNTIME_QUEUE_FULL. */
  queueDepth: number;
  logger: Logger;
  /**
   * Threads collect garbage soon after a version is unloaded or an instance evicted (default
   * true; executor.ts). false only for the baseline of bench/runner-deploy-memory.ts.
   */
  collectFreed?: boolean;
  events?: Partial<PoolEvents>;
  /** Seam for tests: how a thread is started from the executor source. */
  startThread?: (source: string, options: { workerData: unknown; transferList: MessagePort[] }) => Worker;
}

export interface VersionConfig {
  label: string;
  module: WebAssembly.Module;
  lane: Lane;
  memory: MemoryPlan | null;
  responseMaxBytes: number;
  env: string[];
  clock: boolean;
  random: boolean;
  wasiImports: string[];
  maxExecutionMs: number;
  /** Threads that may run this version at once (edge-v1: hold a hot instance of it). */
  maxInstances: number;
}

export interface PooledVersionStats {
  /** Instances created (cold starts, including the warm-up at load). */
  instancesCreated: number;
  /** Instances thrown away after a trap, a timeout or proc_exit. */
  instancesDiscarded: number;
  /** Hot instances held by threads now. */
  hotInstances: number;
  /** Hot instances not running a request now. */
  idleInstances: number;
  invocations: number;
  timeouts: number;
  /** Requests refused with 429 because the queue was full. */
  rejected: number;
  /** Requests sent to threads and not answered yet, and requests waiting for a thread. */
  inFlight: number;
  queued: number;
  /** Moving average of the time a request runs on its thread, in microseconds. */
  averageRunMicros: number;
}

/** At most this many requests wait on one thread behind the running one. */
const PIPELINE_DEPTH = 64;
/** Do not queue a request behind one that has already run this long (it may be a slow one). */
const PIPELINE_HEAD_AGE_MS = 1;
/** Take back requests queued behind one that has run this long. */
const STEAL_AFTER_MS = 2;
/** A version whose requests run this long on average is "slow": no pipelining with it. */
const SLOW_MICROS = 1000;
/** A version that timed out this recently is "hostile". */
const HOSTILE_MS = 10_000;
/** Requests of a hostile version on threads at once. */
const HOSTILE_IN_FLIGHT = 1;
/** Weight of the newest run in the moving average. */
const EWMA_ALPHA = 0.2;
const LOG_MAX_LINES = 64;
const LOG_MAX_BYTES = 4096;

const epochNow = (): number => performance.timeOrigin + performance.now();

type JobMessage = RunMessage | Extract<ToExecutor, { t: "warm" }>;

interface Job {
  /**
   * Given each time the job is sent to a thread (#send), so the seqs a thread receives always
   * grow in the order they are posted. A thread told to skip every seq up to L (#steal) must
   * never receive a job numbered at or below L that it is meant to run: a job numbered when it
   * was submitted, then kept waiting in its queue while later ones were sent and taken back,
   * would have been skipped and never answered.
   */
  seq: number;
  version: PooledVersion;
  msg: JobMessage;
  timeoutMs: number;
  /** The version was slow when the job was sent: nothing may be queued behind it. */
  slow: boolean;
  /** When it became the first job of its thread (epoch ms): the deadline's fallback start. */
  headSince: number;
  resolve(result: RunResult): void;
  reject(err: EdgeError): void;
}

interface Executor {
  id: number;
  worker: Worker;
  /** The pool's end of the thread's channel. */
  port: MessagePort;
  /** Shared with the thread; see CLOCK_BYTES. */
  running: Int32Array;
  claim: Int32Array;
  startedAt: Float64Array;
  state: "starting" | "spare" | "active" | "dead";
  /** Sent and not answered yet; the first is running or about to. */
  jobs: Job[];
  /** How many of `jobs` are slow. */
  slowJobs: number;
  /** Versions whose module this thread has been sent. */
  loaded: Set<PooledVersion>;
  /** Versions with a hot instance on this thread. */
  hot: Set<PooledVersion>;
  /** Requests to post at the end of this turn of the event loop. */
  outbox: JobMessage[];
}

export class PooledVersion {
  readonly config: VersionConfig;
  readonly #pool: ExecutorPool;
  /** Number of this version in messages to threads. */
  readonly vid: number;
  readonly load: VersionLoad;
  inFlight = 0;
  readonly queue: Job[] = [];
  /** Threads holding a hot instance (edge-v1) of this version. */
  readonly hotOn = new Set<Executor>();
  closed = false;
  averageRunMicros = 0;
  readonly counts = { created: 0, discarded: 0, invocations: 0, timeouts: 0, rejected: 0 };

  constructor(pool: ExecutorPool, config: VersionConfig, vid: number) {
    this.#pool = pool;
    this.config = config;
    this.vid = vid;
    this.load = {
      t: "load",
      vid,
      label: config.label,
      module: config.module,
      lane: config.lane,
      memory: config.memory,
      responseMaxBytes: config.responseMaxBytes,
      env: config.env,
      clock: config.clock,
      random: config.random,
      wasiImports: config.wasiImports,
    };
  }

  /** When a request of this version last ran into its deadline (epoch ms), or 0. */
  timedOutAt = 0;

  get hostile(): boolean {
    return this.timedOutAt > 0 && epochNow() - this.timedOutAt < HOSTILE_MS;
  }

  get slow(): boolean {
    return this.averageRunMicros >= SLOW_MICROS;
  }

  /** Runs one request. Rejects with EDGE_ERR_RUNTIME_TIMEOUT or _QUEUE_FULL; guest failures resolve (ok false). */
  run(input: Uint8Array, env: string[] | null): Promise<RunResult> {
    this.counts.invocations++;
    return this.#pool.submit(this, [0, this.vid, input, env], this.config.maxExecutionMs);
  }

  /** Instantiates once (edge-v1 keeps it hot) within `timeoutMs`. */
  warm(timeoutMs: number): Promise<RunResult> {
    return this.#pool.submit(this, { t: "warm", seq: 0, vid: this.vid }, timeoutMs);
  }

  /** Stops taking requests; hot instances go once the accepted ones are answered. */
  close(): void {
    this.closed = true;
    this.#pool.release(this);
  }

  stats(): PooledVersionStats {
    let idle = 0;
    for (const ex of this.hotOn) if (!ex.jobs.some((j) => j.version === this)) idle++;
    return {
      instancesCreated: this.counts.created,
      instancesDiscarded: this.counts.discarded,
      hotInstances: this.hotOn.size,
      idleInstances: idle,
      invocations: this.counts.invocations,
      timeouts: this.counts.timeouts,
      rejected: this.counts.rejected,
      inFlight: this.inFlight,
      queued: this.queue.length,
      averageRunMicros: Math.round(this.averageRunMicros),
    };
  }
}

export class ExecutorPool {
  readonly #options: PoolOptions;
  readonly #logger: Logger;
  readonly #source = executorSource();
  readonly #active: Executor[] = [];
  readonly #spares: Executor[] = [];
  readonly #starting = new Set<Executor>();
  readonly #all = new Set<Executor>();
  /** Versions with requests waiting for a thread, in the order they started waiting. */
  readonly #waiting = new Set<PooledVersion>();
  readonly #hot: Lru<string, { ex: Executor; version: PooledVersion }>;
  #seq = 0;
  #nextId = 1;
  #nextVid = 1;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;
  #readyWaiters: Array<() => void> = [];
  /** Threads killed or died since start. */
  #replaced = 0;

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#hot = new Lru({ maxCount: options.maxHotInstances, maxWeight: options.maxHotMemoryBytes });
    // Threads started from here on get a global `gc`: an executor collects soon after a version
    // is unloaded or an instance evicted, instead of whenever V8 gets round to it (executor.ts).
    // V8 flags are process-wide and read when a context is created; Worker's execArgv cannot
    // carry V8 flags.
    setFlagsFromString("--expose-gc");
    for (let i = 0; i < options.workers + options.spareWorkers; i++) this.#spawn();
  }

  /** Resolves once every thread started so far can take requests. */
  ready(): Promise<void> {
    if (this.#starting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  register(config: VersionConfig): PooledVersion {
    return new PooledVersion(this, config, this.#nextVid++);
  }

  /** Threads: serving, spare, starting, and how many were killed or died since start. */
  threads(): { active: number; spare: number; starting: number; replaced: number } {
    return {
      active: this.#active.length,
      spare: this.#spares.length,
      starting: this.#starting.size,
      replaced: this.#replaced,
    };
  }

  /** Hot instances and their total linear memory. */
  hotUsage(): { count: number; bytes: number } {
    return { count: this.#hot.size, bytes: this.#hot.weight };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    const stopping = edgeError("EDGE_ERR_INTERNAL", "the runner is stopping");
    const all = [...this.#all];
    for (const ex of all) {
      ex.state = "dead";
      for (const job of ex.jobs) job.reject(stopping);
      ex.jobs = [];
      ex.port.close();
    }
    for (const v of this.#waiting) for (const job of v.queue.splice(0)) job.reject(stopping);
    this.#waiting.clear();
    this.#all.clear();
    this.#active.length = 0;
    this.#spares.length = 0;
    this.#starting.clear();
    await Promise.all(all.map((ex) => ex.worker.terminate().catch(() => {})));
  }

  // ---- requests ------------------------------------------------------------------------------

  submit(version: PooledVersion, msg: JobMessage, timeoutMs: number): Promise<RunResult> {
    if (this.#closed) return Promise.reject(edgeError("EDGE_ERR_INTERNAL", "the runner is stopping"));
    return new Promise<RunResult>((resolve, reject) => {
      // Numbered when sent (#send), not here: see Job.seq.
      const job: Job = { seq: 0, version, msg, timeoutMs, slow: false, headSince: 0, resolve, reject };
      // The fast path: nothing of this version waiting, and a thread to take it now.
      if (version.queue.length === 0) {
        const ex = this.#place(version);
        if (ex !== null) {
          this.#send(ex, job);
          return;
        }
      }
      if (version.queue.length >= this.#options.queueDepth) {
        version.counts.rejected++;
        reject(
          edgeError(
            "EDGE_ERR_RUNTIME_QUEUE_FULL",
            `${version.config.label} has ${version.queue.length} requests waiting; try again later`,
          ),
        );
        return;
      }
      version.queue.push(job);
      this.#waiting.add(version);
    });
  }

  /** Called when a version closes: unload it everywhere once nothing of it is pending. */
  release(version: PooledVersion): void {
    if (!version.closed || version.inFlight > 0 || version.queue.length > 0) return;
    for (const ex of this.#all) {
      if (!ex.loaded.has(version)) continue;
      ex.loaded.delete(version);
      if (ex.hot.delete(version)) {
        this.#hot.delete(hotKey(ex, version));
        this.#options.events?.evicted?.(version, "undeployed");
      }
      ex.port.postMessage({ t: "unload", vid: version.vid } satisfies ToExecutor);
    }
    version.hotOn.clear();
  }

  /** Where a request of `version` runs now, or null when it must wait in its queue. */
  #place(version: PooledVersion): Executor | null {
    // A hostile version runs one request at a time: each one may cost a thread.
    const hostile = version.hostile;
    if (hostile && version.inFlight >= HOSTILE_IN_FLIGHT) return null;
    const ex = this.#pick(version, true) ?? this.#lendSpare(version);
    if (ex !== null || !hostile || this.#spares.length > 0 || this.#starting.size > 0) return ex;
    // No spare now and none coming: the hostile version may have the last free thread after all,
    // or it would never run.
    return this.#pick(version, false);
  }

  /** The best serving thread for a request of `version` now, or null when none fits. */
  #pick(version: PooledVersion, keepOneFree: boolean): Executor | null {
    const wagi = version.config.lane === "wagi";
    const canAdd = wagi || version.hotOn.size < version.config.maxInstances;
    const slow = version.slow;
    let best: Executor | null = null;
    let bestScore = Number.POSITIVE_INFINITY;
    let now = 0;
    // A hostile version never takes the last serving thread free of hostile work.
    if (
      keepOneFree &&
      version.hostile &&
      this.#active.filter((ex) => !ex.jobs.some((j) => j.version.hostile)).length < 2
    )
      return null;
    for (const ex of this.#active) {
      const hot = wagi ? ex.loaded.has(version) : ex.hot.has(version);
      if (!hot && !canAdd) continue;
      const queued = ex.jobs.length;
      let score: number;
      if (queued === 0) score = hot ? 0 : PIPELINE_DEPTH + 1;
      else {
        if (slow || ex.slowJobs > 0 || queued > PIPELINE_DEPTH) continue;
        // Never queue behind a request that is taking a while: it may be about to time out.
        now ||= epochNow();
        if (runningFor(ex, now) > PIPELINE_HEAD_AGE_MS) continue;
        score = hot ? queued : PIPELINE_DEPTH + 1 + queued;
      }
      if (score < bestScore) {
        best = ex;
        bestScore = score;
        if (score === 0) break;
      }
    }
    if (bestScore > PIPELINE_DEPTH && !wagi) {
      // Rather than a second instance: the hot one may be on a spare (a lent thread that stood
      // down). It trades places with an idle serving thread; the thread count stays the same.
      const spare = this.#spares.find((sp) => sp.hot.has(version));
      const idle = spare && this.#active.find((ex) => ex.jobs.length === 0);
      if (spare && idle) {
        removeFrom(this.#active, idle);
        idle.state = "spare";
        this.#spares.push(idle);
        removeFrom(this.#spares, spare);
        spare.state = "active";
        this.#active.push(spare);
        return spare;
      }
    }
    return best;
  }

  /**
   * No serving thread can take a request now: lend it a ready spare, unless the serving threads
   * are merely busy with requests that are young (then it is better to wait a moment).
   */
  #lendSpare(version: PooledVersion): Executor | null {
    // One with the version hot, else one with nothing to lose (a hostile request may take its
    // thread down with it), else any.
    const spare =
      this.#spares.find((sp) => sp.hot.has(version)) ??
      this.#spares.find((sp) => sp.hot.size === 0) ??
      this.#spares[0];
    if (spare === undefined) return null;
    // A version at its instance limit could not run there either.
    if (
      version.config.lane === "edge-v1" &&
      version.hotOn.size >= version.config.maxInstances &&
      !spare.hot.has(version)
    )
      return null;
    if (!version.hostile) {
      const now = epochNow();
      const stuck = this.#active.every((ex) => runningFor(ex, now) > PIPELINE_HEAD_AGE_MS);
      if (!stuck) return null;
    }
    removeFrom(this.#spares, spare);
    spare.state = "active";
    this.#active.push(spare);
    this.#replenish();
    return spare;
  }

  #send(ex: Executor, job: Job): void {
    const version = job.version;
    job.seq = ++this.#seq;
    if (Array.isArray(job.msg)) job.msg[0] = job.seq;
    else job.msg.seq = job.seq;
    if (!ex.loaded.has(version)) {
      ex.port.postMessage(version.load);
      ex.loaded.add(version);
    }
    version.inFlight++;
    job.slow = version.slow;
    if (job.slow) ex.slowJobs++;
    ex.jobs.push(job);
    if (ex.jobs.length === 1) {
      // A thread with work keeps the process alive until it answers; an idle one does not.
      ex.port.ref();
      this.#becameHead(job);
    } else if (this.#stealTimer === null) this.#armStealCheck();
    // Sent at the end of this turn of the event loop, together with the other requests that
    // arrive in it: a thread woken once for a batch costs far less than once per request.
    if (ex.outbox.length === 0) this.#flushing.push(ex);
    ex.outbox.push(job.msg);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  #flushScheduled = false;
  readonly #flushing: Executor[] = [];
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    for (const ex of this.#flushing) {
      for (const msg of ex.outbox) ex.port.postMessage(msg);
      ex.outbox.length = 0;
    }
    this.#flushing.length = 0;
  };

  #stealTimer: NodeJS.Timeout | null = null;

  #armStealCheck(): void {
    this.#stealTimer = setTimeout(() => this.#stealCheck(), STEAL_AFTER_MS);
    this.#stealTimer.unref();
  }

  /**
   * Requests queued on a thread behind one that has run for STEAL_AFTER_MS are taken back and
   * dispatched again (a spare is lent if no other thread is free): a request that turns out to
   * be slow, or hostile, never holds up the ones that happened to be sent after it.
   */
  #stealCheck(): void {
    this.#stealTimer = null;
    const now = epochNow();
    let pipelined = false;
    for (const ex of this.#active) {
      if (ex.jobs.length < 2) continue;
      if (runningFor(ex, now) > STEAL_AFTER_MS) this.#steal(ex);
      if (ex.jobs.length > 1) pipelined = true;
    }
    if (this.#waiting.size > 0) this.#pump();
    if (pipelined && this.#stealTimer === null) this.#armStealCheck();
  }

  #steal(ex: Executor): void {
    const head = ex.jobs[0]!;
    const last = ex.jobs[ex.jobs.length - 1]!;
    // Succeeds only while the thread has claimed nothing after its first job; from then on it
    // skips every job up to `last` (see CLOCK_BYTES in executor.ts).
    const mine = clockSeq(head.seq);
    if (Atomics.compareExchange(ex.claim, 0, mine, -clockSeq(last.seq)) !== mine) return;
    const stolen = ex.jobs.splice(1);
    const taken = new Set<JobMessage>(stolen.map((j) => j.msg));
    ex.outbox = ex.outbox.filter((m) => !taken.has(m));
    for (let i = stolen.length - 1; i >= 0; i--) {
      const job = stolen[i]!;
      if (job.slow) ex.slowJobs--;
      job.version.inFlight--;
      // Renumbered when sent again (#send): this thread skips every seq up to `last`.
      job.version.queue.unshift(job);
      this.#waiting.add(job.version);
    }
    this.#logger.debug(
      { executor: ex.id, requests: stolen.length },
      "took back requests queued behind a slow one",
    );
  }

  #becameHead(job: Job): void {
    job.headSince = epochNow();
    const deadline = job.headSince + job.timeoutMs;
    if (deadline < this.#timerAt) this.#arm(deadline);
  }

  #arm(at: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#checkDeadlines(), Math.max(0, at - epochNow()));
    this.#timer.unref();
  }

  #checkDeadlines(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = epochNow();
    let next = Number.POSITIVE_INFINITY;
    for (const ex of [...this.#active]) {
      const head = ex.jobs[0];
      if (head === undefined) continue;
      let deadline: number;
      if (Atomics.load(ex.running, 0) === clockSeq(head.seq)) {
        deadline = ex.startedAt[0]! + head.timeoutMs;
        if (now >= deadline) {
          this.#kill(ex, head);
          continue;
        }
      } else {
        // Not started yet, or finished with its answer on the way: look again shortly.
        deadline = Math.max(head.headSince + head.timeoutMs, now + 1);
      }
      if (deadline < next) next = deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }

  #onDone(ex: Executor, result: RunResult): void {
    if (ex.state === "dead") return;
    const job = ex.jobs[0];
    if (job === undefined || job.seq !== result.seq) {
      this.#logger.error(
        { seq: result.seq, expected: job?.seq },
        "executor answered out of order; replacing it",
      );
      this.#retire(ex, edgeError("EDGE_ERR_INTERNAL", "executor protocol error"), null);
      return;
    }
    ex.jobs.shift();
    if (job.slow) ex.slowJobs--;
    const version = job.version;
    version.inFlight--;
    // Only warm runs count: instantiation is a one-off cost, not the function's speed.
    if (!result.cold && Array.isArray(job.msg))
      version.averageRunMicros += EWMA_ALPHA * (result.micros - version.averageRunMicros);
    if (result.cold) {
      version.counts.created++;
      this.#options.events?.instantiated?.(version);
    }
    if (result.hot) {
      if (!ex.hot.has(version)) {
        ex.hot.add(version);
        version.hotOn.add(ex);
      }
      this.#hot.set(hotKey(ex, version), { ex, version }, result.memoryBytes);
    } else if (ex.hot.delete(version)) {
      // The thread dropped it after a trap or a proc_exit.
      version.hotOn.delete(ex);
      this.#hot.delete(hotKey(ex, version));
      version.counts.discarded++;
      this.#options.events?.evicted?.(version, "trap");
    } else if (version.config.lane === "edge-v1" && result.cold && !result.ok) {
      // A fresh instance that failed its first request never became hot.
      version.counts.discarded++;
    }
    const next = ex.jobs[0];
    if (next !== undefined) this.#becameHead(next);
    else {
      ex.port.unref();
      if (this.#active.length > this.#options.workers) this.#standDown(ex);
    }
    job.resolve(result);
    if (this.#hot.overLimit()) this.#evict();
    if (version.closed) this.release(version);
    if (this.#waiting.size > 0) this.#pump();
  }

  /** A lent thread with nothing to do goes back to being a spare (keeping its hot instances). */
  #standDown(ex: Executor): void {
    removeFrom(this.#active, ex);
    ex.state = "spare";
    this.#spares.push(ex);
    // More spares than wanted (one was started while this one was lent): stop an extra one that
    // holds no hot instances. Ones that do stay (a warm spare); #replenish starts none meanwhile.
    if (this.#spares.length > this.#options.spareWorkers) {
      const empty = this.#spares.find((sp) => sp.hot.size === 0);
      if (empty) this.#retire(empty, null, null);
    }
  }

  /** Dispatches waiting requests, one per version per round, while threads can take them. */
  #pump(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const version of this.#waiting) {
        if (version.queue.length === 0) {
          this.#waiting.delete(version);
          continue;
        }
        const ex = this.#place(version);
        if (ex === null) continue;
        this.#send(ex, version.queue.shift()!);
        progress = true;
      }
    }
  }

  #evict(): void {
    const busy = (_key: string, v: { ex: Executor; version: PooledVersion }) =>
      v.ex.jobs.some((j) => j.version === v.version);
    for (const { value, reason } of this.#hot.evict(busy)) {
      const { ex, version } = value;
      ex.hot.delete(version);
      version.hotOn.delete(ex);
      ex.port.postMessage({ t: "drop", vid: version.vid } satisfies ToExecutor);
      this.#options.events?.evicted?.(version, reason === "count" ? "lru_count" : "lru_memory");
    }
  }

  // ---- threads -------------------------------------------------------------------------------

  /**
   * Starts threads until every serving slot is filled and `spareWorkers` spares are ready or on
   * their way, never exceeding workers + 2 × spareWorkers threads in all.
   */
  #replenish(): void {
    const { workers, spareWorkers } = this.#options;
    const wanted = Math.max(0, workers - this.#active.length) + spareWorkers;
    while (
      !this.#closed &&
      this.#spares.length + this.#starting.size < wanted &&
      this.#all.size < workers + 2 * spareWorkers
    ) {
      this.#spawn();
    }
  }

  #spawn(): void {
    const clock = new SharedArrayBuffer(CLOCK_BYTES);
    const { port1, port2 } = new MessageChannel();
    const workerData = {
      clock,
      port: port2,
      logMaxLines: LOG_MAX_LINES,
      logMaxBytes: LOG_MAX_BYTES,
      collectFreed: this.#options.collectFreed ?? true,
    };
    const worker =
      this.#options.startThread?.(this.#source, { workerData, transferList: [port2] }) ??
      new Worker(this.#source, {
        eval: true,
        workerData,
        transferList: [port2],
        // Guests' linear memory is outside the JS heap (and capped per module); the heap only
        // holds request and response copies.
        resourceLimits: { maxOldGenerationSizeMb: 256 },
      });
    const running = new Int32Array(clock, 0, 1);
    running[0] = -1;
    const ex: Executor = {
      id: this.#nextId++,
      worker,
      port: port1,
      running,
      claim: new Int32Array(clock, 4, 1),
      startedAt: new Float64Array(clock, 8, 1),
      state: "starting",
      jobs: [],
      slowJobs: 0,
      loaded: new Set(),
      hot: new Set(),
      outbox: [],
    };
    this.#all.add(ex);
    this.#starting.add(ex);
    const receive = (msg: FromExecutor) => {
      if (Array.isArray(msg)) this.#onDone(ex, expandResult(msg));
      else if (msg.t === "done") this.#onDone(ex, msg);
      else this.#onReady(ex);
    };
    // One event per wake-up; answers already queued behind it are taken synchronously.
    port1.on("message", (first: FromExecutor) => {
      receive(first);
      for (
        let m = receiveMessageOnPort(port1);
        m !== undefined && ex.state !== "dead";
        m = receiveMessageOnPort(port1)
      ) {
        receive(m.message as FromExecutor);
      }
    });
    port1.unref();
    worker.on("error", (err) => this.#onExit(ex, err));
    worker.on("exit", (code) => this.#onExit(ex, new Error(`executor thread exited with code ${code}`)));
  }

  #onReady(ex: Executor): void {
    if (ex.state !== "starting") return;
    // Starting threads keep the process alive (someone may await ready()); running ones only
    // while they have work (see #send).
    ex.worker.unref();
    this.#starting.delete(ex);
    if (this.#active.length < this.#options.workers) {
      ex.state = "active";
      this.#active.push(ex);
    } else {
      ex.state = "spare";
      this.#spares.push(ex);
    }
    if (this.#starting.size === 0) for (const resolve of this.#readyWaiters.splice(0)) resolve();
    if (this.#waiting.size > 0) this.#pump();
  }

  #onExit(ex: Executor, err: Error): void {
    if (ex.state === "dead" || this.#closed) return;
    this.#logger.error({ err, executor: ex.id }, "executor thread died; replacing it");
    const head = ex.jobs[0];
    this.#retire(
      ex,
      edgeError(
        "EDGE_ERR_RUNTIME_TRAP",
        `${head?.version.config.label ?? "executor"}: thread died: ${err.message}`,
      ),
      null,
    );
  }

  /** Past its deadline: answer 504 now, stop the thread, replace it. */
  #kill(ex: Executor, job: Job): void {
    job.version.counts.timeouts++;
    // Hostile for a while, and slow until it proves otherwise: nothing is queued behind it.
    job.version.timedOutAt = epochNow();
    job.version.averageRunMicros = Math.max(job.version.averageRunMicros, job.timeoutMs * 1000);
    this.#retire(
      ex,
      edgeError(
        "EDGE_ERR_RUNTIME_TIMEOUT",
        `${job.version.config.label} ran longer than its ${job.timeoutMs} ms limit; its thread was stopped`,
      ),
      job.version,
    );
  }

  /**
   * Takes a thread out of service: its first job fails with `err` (if given), the ones behind it
   * (never started) go back to the front of their queues, its hot instances are gone, a spare
   * takes its place and a new thread is started.
   */
  #retire(ex: Executor, err: EdgeError | null, timedOut: PooledVersion | null): void {
    ex.state = "dead";
    this.#all.delete(ex);
    this.#starting.delete(ex);
    removeFrom(this.#active, ex);
    removeFrom(this.#spares, ex);
    if (err !== null) this.#replaced++;
    ex.outbox.length = 0;
    ex.port.close();
    void ex.worker.terminate().catch(() => {});

    const [head, ...rest] = ex.jobs;
    ex.jobs = [];
    for (const version of ex.hot) {
      version.hotOn.delete(ex);
      this.#hot.delete(hotKey(ex, version));
      if (version === timedOut) version.counts.discarded++;
      this.#options.events?.evicted?.(version, version === timedOut ? "timeout" : "killed");
    }
    ex.hot.clear();
    if (head) {
      head.version.inFlight--;
      head.reject(err ?? edgeError("EDGE_ERR_INTERNAL", "executor thread retired"));
    }
    for (let i = rest.length - 1; i >= 0; i--) {
      const job = rest[i]!;
      job.version.inFlight--;
      job.version.queue.unshift(job);
      this.#waiting.add(job.version);
    }
    while (this.#active.length < this.#options.workers && this.#spares.length > 0) {
      const spare = this.#spares.shift()!;
      spare.state = "active";
      this.#active.push(spare);
    }
    this.#replenish();
    if (head?.version.closed) this.release(head.version);
    this.#pump();
  }
}

/** How long the thread's first job has been running (ms), or -1 when it is not running. */
function runningFor(ex: Executor, now: number): number {
  const head = ex.jobs[0];
  if (head === undefined || Atomics.load(ex.running, 0) !== clockSeq(head.seq)) return -1;
  return now - ex.startedAt[0]!;
}

function hotKey(ex: Executor, version: PooledVersion): string {
  return `${ex.id}:${version.vid}`;
}

function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
