// A deny-by-default WASI (wasi_snapshot_preview1) for the `wagi` lane. Not `node:wasi`: its own
// docs say it is no sandbox, and with it a guest's fd_close(1) closes the host's stdout.
//
// What a guest gets (DESIGN.md "Sandbox rules", seed Property 8, Requirement 7.2):
// - args: the function's name only; environ: the CGI variables and the manifest's `env`, nothing
//   from the runner's own environment;
// - stdin (fd 0) is the request body; stdout (fd 1) is captured as the CGI response and capped;
//   stderr (fd 2) is captured, capped and sent to the runner's log. These three exist only inside
//   this object: closing them ends nothing but the guest's own view of them;
// - clocks and random bytes only when the manifest grants `clock` / `random`, else ENOTCAPABLE;
// - proc_exit ends the instance (the executor discards it);
// - no preopened directories (fd_prestat_get answers EBADF, so libc finds no filesystem), every
//   path_* and sock_* call answers ENOTCAPABLE, other descriptors EBADF, every other call ENOSYS.
// Every call that is refused is counted by name, so the runner can log what a guest tried.
//
// This function runs inside executor threads, whose source is built from it with
// Function.prototype.toString (see executor.ts): it must not refer to anything outside its body.

export interface WasiOptions {
  args: readonly string[];
  /** `NAME=value` strings. */
  env: readonly string[];
  stdin: Uint8Array;
  stdoutMaxBytes: number;
  stderrMaxBytes: number;
  clock: boolean;
  random: boolean;
  /** The wasi_snapshot_preview1 names the module imports; each gets a function. */
  imports: readonly string[];
}

export interface WasiHost {
  /** Pass as `{ wasi_snapshot_preview1: host.imports }`. */
  imports: Record<string, (...args: never[]) => number | undefined>;
  /** Must be called with the instance's memory before `_start` runs. */
  setMemory(memory: WebAssembly.Memory): void;
  stdout(): Uint8Array;
  stderr(): Uint8Array;
  /** True once the guest tried to write more than stdoutMaxBytes to stdout. */
  readonly stdoutOverflow: boolean;
  /** The proc_exit code, or null while the guest has not called it. */
  readonly exitCode: number | null;
  /** Refused calls by name, with counts. */
  readonly denied: Record<string, number>;
  /** Thrown by proc_exit to unwind the guest; recognise it with `isExit`. */
  isExit(err: unknown): boolean;
}

export function createWasi(options: WasiOptions): WasiHost {
  // errno values of wasi_snapshot_preview1.
  const SUCCESS = 0;
  const EBADF = 8;
  const EFAULT = 21;
  const EFBIG = 22;
  const EINVAL = 28;
  const ENOSYS = 52;
  const ESPIPE = 70;
  const ENOTCAPABLE = 76;

  const enc = new TextEncoder();
  const args = options.args.map((a) => enc.encode(`${a}\0`));
  const env = options.env.map((e) => enc.encode(`${e}\0`));
  let memory: WebAssembly.Memory | null = null;
  const open = [true, true, true]; // stdin, stdout, stderr as this guest sees them
  let stdinAt = 0;
  const out: Uint8Array[] = [];
  let outBytes = 0;
  let outOverflow = false;
  const err: Uint8Array[] = [];
  let errBytes = 0;
  let exitCode: number | null = null;
  const denied: Record<string, number> = {};
  const exitSignal = { wasiExit: true };

  // Guest pointers are checked against the memory's current size (it may have grown since the
  // last call); a bad pointer answers EFAULT instead of throwing in the host.
  const inBounds = (ptr: number, len: number): boolean =>
    memory !== null && ptr >>> 0 === ptr && len >= 0 && ptr + len <= memory.buffer.byteLength;
  const view = () => new DataView(memory!.buffer);
  const bytesAt = (ptr: number, len: number) => new Uint8Array(memory!.buffer, ptr, len);
  const deny = (name: string, errno: number): number => {
    denied[name] = (denied[name] ?? 0) + 1;
    return errno;
  };

  /** args_get / environ_get: pointers into one buffer of NUL-terminated strings. */
  const writeStrings = (list: Uint8Array[], ptrs: number, buf: number): number => {
    const total = list.reduce((n, s) => n + s.length, 0);
    if (!inBounds(ptrs, list.length * 4) || !inBounds(buf, total)) return EFAULT;
    const v = view();
    let at = buf;
    list.forEach((s, i) => {
      v.setUint32(ptrs + i * 4, at, true);
      bytesAt(at, s.length).set(s);
      at += s.length;
    });
    return SUCCESS;
  };
  const writeSizes = (list: Uint8Array[], countPtr: number, sizePtr: number): number => {
    if (!inBounds(countPtr, 4) || !inBounds(sizePtr, 4)) return EFAULT;
    const v = view();
    v.setUint32(countPtr, list.length, true);
    v.setUint32(
      sizePtr,
      list.reduce((n, s) => n + s.length, 0),
      true,
    );
    return SUCCESS;
  };

  /** The iovec array as (ptr, len) pairs, or null when any of it lies outside memory. */
  const iovecs = (iovs: number, count: number): Array<[number, number]> | null => {
    if (count < 0 || !inBounds(iovs, count * 8)) return null;
    const v = view();
    const list: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) {
      const ptr = v.getUint32(iovs + i * 8, true);
      const len = v.getUint32(iovs + i * 8 + 4, true);
      if (!inBounds(ptr, len)) return null;
      list.push([ptr, len]);
    }
    return list;
  };

  const implemented: Record<string, (...a: never[]) => number | undefined> = {
    args_sizes_get: (countPtr: number, sizePtr: number) => writeSizes(args, countPtr, sizePtr),
    args_get: (ptrs: number, buf: number) => writeStrings(args, ptrs, buf),
    environ_sizes_get: (countPtr: number, sizePtr: number) => writeSizes(env, countPtr, sizePtr),
    environ_get: (ptrs: number, buf: number) => writeStrings(env, ptrs, buf),

    clock_res_get: (id: number, resPtr: number) => {
      if (!options.clock) return deny("clock_res_get", ENOTCAPABLE);
      if (id < 0 || id > 3) return EINVAL;
      if (!inBounds(resPtr, 8)) return EFAULT;
      view().setBigUint64(resPtr, 1000n, true);
      return SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, timePtr: number) => {
      if (!options.clock) return deny("clock_time_get", ENOTCAPABLE);
      if (id < 0 || id > 3) return EINVAL;
      if (!inBounds(timePtr, 8)) return EFAULT;
      // 0 = realtime; 1 monotonic, 2 process and 3 thread CPU time are all served monotonic.
      const ns = id === 0 ? BigInt(Date.now()) * 1_000_000n : process.hrtime.bigint();
      view().setBigUint64(timePtr, ns, true);
      return SUCCESS;
    },
    random_get: (buf: number, len: number) => {
      if (!options.random) return deny("random_get", ENOTCAPABLE);
      if (!inBounds(buf, len)) return EFAULT;
      // getRandomValues fills at most 64 KiB per call.
      for (let at = 0; at < len; at += 65536) {
        crypto.getRandomValues(bytesAt(buf + at, Math.min(65536, len - at)));
      }
      return SUCCESS;
    },

    fd_write: (fd: number, iovs: number, count: number, nwrittenPtr: number) => {
      if ((fd !== 1 && fd !== 2) || !open[fd]) return deny("fd_write", EBADF);
      const list = iovecs(iovs, count);
      if (list === null || !inBounds(nwrittenPtr, 4)) return EFAULT;
      let n = 0;
      for (const [ptr, len] of list) {
        if (fd === 1) {
          if (outBytes + len > options.stdoutMaxBytes) {
            outOverflow = true;
            return EFBIG;
          }
          out.push(bytesAt(ptr, len).slice());
          outBytes += len;
        } else {
          // stderr is a log: keep the first stderrMaxBytes, quietly drop the rest.
          const keep = Math.max(0, Math.min(len, options.stderrMaxBytes - errBytes));
          if (keep > 0) err.push(bytesAt(ptr, keep).slice());
          errBytes += keep;
        }
        n += len;
      }
      view().setUint32(nwrittenPtr, n, true);
      return SUCCESS;
    },
    fd_read: (fd: number, iovs: number, count: number, nreadPtr: number) => {
      if (fd !== 0 || !open[0]) return deny("fd_read", EBADF);
      const list = iovecs(iovs, count);
      if (list === null || !inBounds(nreadPtr, 4)) return EFAULT;
      let n = 0;
      for (const [ptr, len] of list) {
        const take = Math.min(len, options.stdin.length - stdinAt);
        bytesAt(ptr, take).set(options.stdin.subarray(stdinAt, stdinAt + take));
        stdinAt += take;
        n += take;
        if (take < len) break;
      }
      view().setUint32(nreadPtr, n, true);
      return SUCCESS;
    },
    fd_close: (fd: number) => {
      if (fd < 0 || fd > 2 || !open[fd]) return deny("fd_close", EBADF);
      open[fd] = false;
      return SUCCESS;
    },
    fd_fdstat_get: (fd: number, statPtr: number) => {
      if (fd < 0 || fd > 2 || !open[fd]) return deny("fd_fdstat_get", EBADF);
      if (!inBounds(statPtr, 24)) return EFAULT;
      const v = view();
      // filetype unknown (not a tty), no flags; rights: fd_read (bit 1) for stdin, fd_write
      // (bit 6) for stdout/stderr; nothing inheritable.
      v.setUint8(statPtr, 0);
      v.setUint16(statPtr + 2, 0, true);
      v.setBigUint64(statPtr + 8, fd === 0 ? 2n : 64n, true);
      v.setBigUint64(statPtr + 16, 0n, true);
      return SUCCESS;
    },
    fd_fdstat_set_flags: (fd: number) =>
      deny("fd_fdstat_set_flags", fd >= 0 && fd <= 2 ? ENOTCAPABLE : EBADF),
    // No preopened directories: libc stops looking at the first EBADF.
    fd_prestat_get: () => deny("fd_prestat_get", EBADF),
    fd_prestat_dir_name: () => deny("fd_prestat_dir_name", EBADF),
    fd_seek: (fd: number) => deny("fd_seek", fd >= 0 && fd <= 2 && open[fd] ? ESPIPE : EBADF),
    fd_tell: (fd: number) => deny("fd_tell", fd >= 0 && fd <= 2 && open[fd] ? ESPIPE : EBADF),
    proc_exit: (code: number) => {
      exitCode = code >>> 0;
      throw exitSignal;
    },
    sched_yield: () => SUCCESS,
  };

  const imports: Record<string, (...a: never[]) => number | undefined> = {};
  for (const name of options.imports) {
    const fn = implemented[name];
    if (fn !== undefined) imports[name] = fn;
    else if (name.startsWith("path_") || name.startsWith("sock_"))
      imports[name] = () => deny(name, ENOTCAPABLE);
    else if (name.startsWith("fd_")) imports[name] = () => deny(name, EBADF);
    else imports[name] = () => deny(name, ENOSYS);
  }

  return {
    imports,
    setMemory(m) {
      memory = m;
    },
    stdout: () => concat(out, outBytes),
    stderr: () => concat(err, errBytes),
    get stdoutOverflow() {
      return outOverflow;
    },
    get exitCode() {
      return exitCode;
    },
    denied,
    isExit: (e) => e === exitSignal,
  };

  function concat(chunks: Uint8Array[], total: number): Uint8Array {
    if (chunks.length === 1) return chunks[0]!;
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }
}
