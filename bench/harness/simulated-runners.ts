// A load harness: many simulated runners in one process, each speaking the real control
// protocol (EdgeControl.Connect over gRPC): hello, an immediate ack of every desired state with
// OK for each function (no downloads — the point is the control plane's side), and heartbeats.
//
//   node --import tsx bench/harness/simulated-runners.ts <host:port> <count> [heartbeatMs] [pops]
// Prints "ready" once every runner has received its first desired state, and one line
// "acked <generation> <ms-since-first-send-seen>" per generation when all runners acked it.

import { type ControlMessage, EdgeControlClient, grpc, type RunnerMessage } from "../../proto/index.ts";

const [address, countArg, heartbeatArg, popsArg] = process.argv.slice(2) as [
  string,
  string,
  string?,
  string?,
];
const count = Number(countArg);
const heartbeatMs = Number(heartbeatArg ?? 30_000);
const pops = Number(popsArg ?? 4);
const STREAMS_PER_CHANNEL = 100;

const channels: InstanceType<typeof EdgeControlClient>[] = [];
const ackedBy = new Map<string, { n: number; firstSeen: number }>();
let ready = 0;

function runner(i: number): void {
  if (i % STREAMS_PER_CHANNEL === 0)
    channels.push(new EdgeControlClient(address, grpc.credentials.createInsecure()));
  const client = channels[channels.length - 1]!;
  const call = client.Connect() as grpc.ClientDuplexStream<RunnerMessage, ControlMessage>;
  const pop = `pop-${i % pops}`;
  let inventory: { function_id: string; version: string; sha256: string }[] = [];
  let first = true;
  call.on("data", (msg: ControlMessage) => {
    const d = msg.desired;
    if (!d) return;
    const seen = ackedBy.get(d.generation) ?? { n: 0, firstSeen: performance.now() };
    ackedBy.set(d.generation, seen);
    inventory = d.functions.map((f) => ({
      function_id: f.function_id,
      version: f.version,
      sha256: f.sha256,
    }));
    call.write({
      ack: {
        generation: d.generation,
        results: d.functions.map((f) => ({
          function_id: f.function_id,
          version: f.version,
          status: "OK",
          message: "",
        })),
      },
    });
    seen.n++;
    if (first) {
      first = false;
      if (++ready === count) process.stdout.write("ready\n");
    } else if (seen.n === count) {
      process.stdout.write(`acked ${d.generation} ${(performance.now() - seen.firstSeen).toFixed(1)}\n`);
    }
  });
  call.on("error", () => {});
  call.write({
    hello: {
      node_id: `sim-${i}`,
      pop,
      labels: { tier: "edge" },
      generation: "0",
      inventory: [],
      http_address: "",
    },
  });
  const hb = setInterval(() => call.write({ heartbeat: { inventory, in_flight: 0 } }), heartbeatMs);
  hb.unref();
}

for (let i = 0; i < count; i++) runner(i);
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1 << 30);
