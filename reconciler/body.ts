// Reading a request body with a hard cap, so an oversize upload is refused with 413 before it
// is buffered whole (Content-Length is checked first; a chunked body is cut off at the cap).

import type { IncomingMessage } from "node:http";
import { type ErrorCode, edgeError } from "../lib/errors.ts";

export async function readBody(req: IncomingMessage, limit: number, code: ErrorCode): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (declared > limit)
    throw edgeError(code, `body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw edgeError(code, `body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
