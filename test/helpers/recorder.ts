// A local HTTP server that records every request it gets and answers with the status a test
// chooses: the stand-in for GitHub's API and for notification receivers.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

export interface Recorder {
  url: string;
  calls: Recorded[];
  /** Decides the status of each request (default 201). */
  respond: (req: Recorded) => number;
  /** Milliseconds to wait before answering (default 0). */
  delay: (req: Recorded) => number;
  /** The response body (default "{}"), e.g. a created comment's `{"id": 1}`. */
  reply: (req: Recorded) => string;
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const rec: Recorder = {
    url: "",
    calls: [],
    respond: () => 201,
    delay: () => 0,
    reply: () => "{}",
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const call = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        at: Date.now(),
      };
      rec.calls.push(call);
      setTimeout(() => {
        res.statusCode = rec.respond(call);
        res.end(rec.reply(call));
      }, rec.delay(call));
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  rec.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return rec;
}
