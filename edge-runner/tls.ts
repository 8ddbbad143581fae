// TLS for the data plane: the certificate chain and key are read from PEM files, and re-read
// when they change, so a renewed certificate (certbot, cert-manager) is served without a restart
// and without dropping connections (`server.setSecureContext` affects new handshakes only).
//
// Changes are found by polling the files' size, mtime and inode every `reloadIntervalMs`, which
// also sees a file replaced by rename (how most tools write certificates), unlike fs.watch on
// the old inode. A pair that does not load (half-written, key not matching) is logged and the
// previous one keeps serving; the next change is tried again.

import { readFile, stat } from "node:fs/promises";
import type { Server as HttpsServer } from "node:https";
import { createSecureContext } from "node:tls";
import { edgeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Reads and checks the pair; throws EDGE_ERR_CONFIG_INVALID naming the file when it is unusable. */
export async function loadTls(files: TlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  } catch (err) {
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `tls: cannot read ${(err as { path?: string }).path ?? "files"}: ${(err as Error).message}`,
    );
  }
  try {
    // Fails when either is not PEM or the key does not belong to the certificate.
    createSecureContext({ cert, key });
  } catch (err) {
    throw edgeError(
      "EDGE_ERR_CONFIG_INVALID",
      `tls: ${files.certFile} and ${files.keyFile} do not form a usable pair: ${(err as Error).message}`,
    );
  }
  return { cert, key };
}

async function fingerprint(files: TlsFiles): Promise<string> {
  const parts = await Promise.all(
    [files.certFile, files.keyFile].map((f) =>
      stat(f).then(
        (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
        () => "missing",
      ),
    ),
  );
  return parts.join("|");
}

/** Polls the files and swaps the server's certificate when they change; returns the stopper. */
export async function watchTls(
  server: HttpsServer,
  files: TlsFiles,
  intervalMs: number,
  logger: Logger,
): Promise<() => void> {
  let last = await fingerprint(files);
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void (async () => {
      const now = await fingerprint(files);
      if (now === last) return;
      last = now;
      try {
        server.setSecureContext(await loadTls(files));
        logger.info({ cert: files.certFile }, "TLS certificate reloaded");
      } catch (err) {
        logger.error({ err }, "TLS files changed but do not load; still serving the previous certificate");
      }
    })().finally(() => {
      checking = false;
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
