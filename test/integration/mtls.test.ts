// Mutual TLS on the control protocol with real certificates (`edgectl certs` code): a runner
// must present a certificate from the control plane's CA, and its node id is the certificate's
// common name — it cannot claim another node's id.

import path from "node:path";
import test from "ava";
import { createCa, issueRunnerCert, issueServerCert, writeCert } from "../../lib/certs.ts";
import { type ControlMessage, EdgeControlClient, grpc, type RunnerMessage } from "../../proto/index.ts";
import { type ControlPlane, createControlPlane } from "../../reconciler/index.ts";
import { DATABASE_URL, freshSchema } from "../helpers/db.ts";
import { tempDir } from "../helpers/tmp.ts";

let cp: ControlPlane;
let dir: string;
const ca = createCa();
const runnerCert = issueRunnerCert(ca, "tokyo-1a");
let cleanup: () => Promise<void>;

test.before(async () => {
  const tmp = await tempDir();
  const { schema, drop } = await freshSchema();
  dir = tmp.dir;
  await writeCert(dir, "ca", ca);
  await writeCert(dir, "control-plane", issueServerCert(ca, ["localhost", "127.0.0.1"]));
  cp = await createControlPlane({
    dataDir: path.join(dir, "cp"),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    httpPort: 0,
    grpcPort: 0,
    pollInterval: "0",
    tls: {
      ca: path.join(dir, "ca.crt"),
      cert: path.join(dir, "control-plane.crt"),
      key: path.join(dir, "control-plane.key"),
    },
  });
  await cp.start();
  cleanup = async () => {
    await cp.stop();
    await drop();
    await tmp.remove();
  };
});
test.after.always(() => cleanup?.());

/** Connects with these credentials, says hello as nodeId, and reports the first message or error. */
function connect(
  credentials: grpc.ChannelCredentials,
  nodeId: string,
): Promise<{ message?: ControlMessage; error?: grpc.ServiceError }> {
  const client = new EdgeControlClient(`localhost:${cp.grpcPort}`, credentials);
  const call = client.Connect() as grpc.ClientDuplexStream<RunnerMessage, ControlMessage>;
  return new Promise((resolve) => {
    const done = (r: { message?: ControlMessage; error?: grpc.ServiceError }) => {
      call.cancel();
      client.close();
      resolve(r);
    };
    call.on("data", (message: ControlMessage) => done({ message }));
    call.on("error", (error: grpc.ServiceError) => done({ error }));
    call.write({
      hello: {
        node_id: nodeId,
        pop: "tokyo-1",
        labels: {},
        generation: "0",
        inventory: [],
        http_address: "",
      },
    });
  });
}

const mtls = (c = runnerCert, caPem = ca.cert) =>
  grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(c.key), Buffer.from(c.cert));

test.serial(
  "mtls: a runner with a certificate from the CA, saying hello as itself, gets its desired state",
  async (t) => {
    const r = await connect(mtls(), "tokyo-1a");
    t.is(r.error, undefined);
    t.is(r.message?.desired?.generation, "0");
    const [node] = await cp.db.query<{ id: string }>("SELECT id FROM nodes WHERE id = 'tokyo-1a'");
    t.truthy(node);
  },
);

test.serial("mtls: a runner cannot claim another node's id", async (t) => {
  const r = await connect(mtls(), "osaka-1a");
  t.is(r.error?.code, grpc.status.PERMISSION_DENIED);
  t.regex(r.error!.details, /does not match the certificate's "tokyo-1a"/);
  t.deepEqual(await cp.db.query("SELECT id FROM nodes WHERE id = 'osaka-1a'"), []);
});

test.serial("mtls: a client without a certificate, or with one from another CA, is refused", async (t) => {
  const noCert = await connect(grpc.credentials.createSsl(Buffer.from(ca.cert)), "tokyo-1a");
  t.is(noCert.error?.code, grpc.status.UNAVAILABLE);
  const otherCa = createCa("someone else");
  const forged = await connect(mtls(issueRunnerCert(otherCa, "tokyo-1a")), "tokyo-1a");
  t.is(forged.error?.code, grpc.status.UNAVAILABLE);
  const plaintext = await connect(grpc.credentials.createInsecure(), "tokyo-1a");
  t.is(plaintext.error?.code, grpc.status.UNAVAILABLE);
});

test.serial("config: plaintext gRPC beyond loopback needs tls or an explicit insecure", async (t) => {
  const { compileControlPlaneOptions } = await import("../../reconciler/index.ts");
  t.throws(() => compileControlPlaneOptions({ grpcHost: "0.0.0.0" }), {
    message: /give tls .* or set insecure/,
  });
  t.notThrows(() => compileControlPlaneOptions({ grpcHost: "0.0.0.0", insecure: true }));
  t.notThrows(() =>
    compileControlPlaneOptions({ grpcHost: "0.0.0.0", tls: { ca: "a", cert: "b", key: "c" } }),
  );
});

test.serial(
  "mtls: a real runner with its own certificate connects, is registered under its id, and serves",
  async (t) => {
    const { createRunner } = await import("../../edge-runner/index.ts");
    const { request } = await import("../helpers/http.ts");
    const { projectReconciler, fn } = await import("../helpers/state.ts");
    void projectReconciler;
    void fn;
    await writeCert(dir, "runner-osaka-1a", issueRunnerCert(ca, "osaka-1a"));
    const runner = createRunner({
      nodeId: "osaka-1a",
      pop: "osaka-1",
      httpHost: "127.0.0.1",
      httpPort: 0,
      cacheDir: path.join(dir, "cache-osaka"),
      heartbeatInterval: "100ms",
      control: {
        address: `localhost:${cp.grpcPort}`,
        tls: {
          ca: path.join(dir, "ca.crt"),
          cert: path.join(dir, "runner-osaka-1a.crt"),
          key: path.join(dir, "runner-osaka-1a.key"),
        },
      },
    });
    const { httpPort } = await runner.start();
    t.teardown(() => runner.stop());
    while (!cp.control.connected().some((n) => n.nodeId === "osaka-1a"))
      await new Promise((r) => setTimeout(r, 20));
    // Nothing is deployed in this control plane: the runner answers, with a 404.
    t.is((await request(httpPort, "nothing.test", "/")).status, 404);
    const [node] = await cp.db.query<{ status: string; pop_id: string }>(
      "SELECT status, pop_id FROM nodes WHERE id = 'osaka-1a'",
    );
    t.like(node, { status: "online", pop_id: "osaka-1" });
  },
);

test.serial("config: a runner needs tls or an explicit insecure to reach a control plane", async (t) => {
  const { createRunner } = await import("../../edge-runner/index.ts");
  t.throws(() => createRunner({ nodeId: "n", pop: "p", control: { address: "localhost:1" } }), {
    message: /give tls .* or set insecure/,
  });
});
