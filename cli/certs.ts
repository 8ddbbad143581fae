// edgectl certs: the CA and certificates for mutual TLS on the control protocol.

import path from "node:path";
import type { Command, CommandGroup } from "./args.ts";

const dirOption = {
  dir: { type: "string", arg: "DIR", default: "certs", help: "where the certificates are written" },
} as const;

const init: Command = {
  name: "certs init",
  summary: "make a CA, the control plane's certificate and runner certificates",
  usage: "[--dir certs] [--hosts h1,h2] [--runners id1,id2]",
  options: {
    ...dirOption,
    hosts: {
      type: "string",
      arg: "LIST",
      default: "localhost,127.0.0.1",
      help: "names and addresses of the control plane (comma-separated)",
    },
    runners: {
      type: "string",
      arg: "LIST",
      default: "",
      help: "runner node ids to certify (comma-separated)",
    },
  },
  examples: ["edgectl certs init --dir certs --hosts cp.internal,10.0.0.5 --runners tokyo-1a,osaka-1a"],
  async run(args) {
    const { createCa, issueRunnerCert, issueServerCert, writeCert } = await import("../lib/certs.ts");
    const dir = path.resolve(args.string("dir")!);
    const ca = createCa();
    await writeCert(dir, "ca", ca);
    await writeCert(
      dir,
      "control-plane",
      issueServerCert(ca, args.string("hosts")!.split(",").filter(Boolean)),
    );
    const runners = args.string("runners")!.split(",").filter(Boolean);
    for (const id of runners) await writeCert(dir, `runner-${id}`, issueRunnerCert(ca, id));
    process.stdout.write(
      `wrote ${dir}/ca.{crt,key}, control-plane.{crt,key}${runners.map((r) => `, runner-${r}.{crt,key}`).join("")}\n` +
        "keep ca.key offline; give each runner ca.crt and its own runner-<id>.{crt,key}\n",
    );
    return 0;
  },
};

const runner: Command = {
  name: "certs runner",
  summary: "one more runner certificate, signed by the CA in --dir",
  usage: "<node-id> [--dir certs]",
  maxPositionals: 1,
  options: { ...dirOption },
  examples: ["edgectl certs runner tokyo-1b --dir certs"],
  async run(args) {
    const nodeId = args.required(0, "<node-id>");
    const { issueRunnerCert, readCert, writeCert } = await import("../lib/certs.ts");
    const dir = path.resolve(args.string("dir")!);
    const ca = await readCert(dir, "ca");
    await writeCert(dir, `runner-${nodeId}`, issueRunnerCert(ca, nodeId));
    process.stdout.write(`wrote ${dir}/runner-${nodeId}.{crt,key}\n`);
    return 0;
  },
};

export const certs: CommandGroup = {
  name: "certs",
  summary: "make the CA and certificates for mutual TLS between control plane and runners",
  subcommands: [init, runner],
};
