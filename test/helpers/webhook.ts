// Signed GitHub-style webhooks, as a Git host sends them: the HMAC-SHA256 of the raw body with
// the project's secret in X-Hub-Signature-256 (computed here with node:crypto, independently of
// the @octokit/webhooks verification the control plane uses).

import { createHmac, randomUUID } from "node:crypto";

export interface WebhookOptions {
  secret: string;
  event?: string;
  delivery?: string;
  /** Extra or overriding headers ("" removes nothing: it sends an empty value). */
  headers?: Record<string, string>;
}

export function sendWebhook(controlPlaneUrl: string, body: string, opts: WebhookOptions): Promise<Response> {
  return fetch(`${controlPlaneUrl}/webhooks/github`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": opts.event ?? "push",
      "x-github-delivery": opts.delivery ?? randomUUID(),
      "x-hub-signature-256": `sha256=${createHmac("sha256", opts.secret).update(body).digest("hex")}`,
      ...opts.headers,
    },
    body,
  });
}

/** A push of `sha` to main of `fullName`, by "dev". */
export function pushBody(sha: string, fullName: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    ref: "refs/heads/main",
    after: sha,
    repository: { full_name: fullName },
    sender: { login: "dev" },
    ...extra,
  });
}

/** Sends a signed push and returns the queued reconciliation's id. */
export async function pushCommit(
  controlPlaneUrl: string,
  sha: string,
  fullName: string,
  secret: string,
): Promise<string> {
  const res = await sendWebhook(controlPlaneUrl, pushBody(sha, fullName), { secret });
  return ((await res.json()) as { reconciliation: string }).reconciliation;
}
