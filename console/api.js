// The control plane's API from the browser: the bearer token (sessionStorage, or localStorage
// when the operator ticks "remember"), JSON requests, and the live event stream.

const KEY = "edgeplane.token";

export function getToken() {
  return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
}

export function setToken(token, remember) {
  clearToken();
  (remember ? localStorage : sessionStorage).setItem(KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** A 401: the token is missing, unknown or revoked. The app returns to the login page. */
export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET (or other method) /api/v1/<path> → parsed JSON; throws AuthError or ApiError. */
export async function api(path, { method = "GET", token = getToken(), body, signal } = {}) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    signal,
    headers: {
      accept: "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => null);
  if (res.status === 401) throw new AuthError(data?.error?.message ?? "not signed in");
  if (!res.ok) {
    throw new ApiError(
      res.status,
      data?.error?.code ?? `HTTP_${res.status}`,
      data?.error?.message ?? res.statusText,
    );
  }
  return data;
}

/** Like api(), but a missing endpoint (404/405/501) or a forbidden one gives `fallback`. */
export async function optional(path, fallback, opts) {
  try {
    return await api(path, opts);
  } catch (err) {
    if (err instanceof ApiError && [403, 404, 405, 501].includes(err.status)) return fallback;
    throw err;
  }
}

/**
 * Subscribes to GET /api/v1/events. EventSource cannot send headers, so the token goes in the
 * query string (the only endpoint that accepts it there). onState gets "connecting", "live" or
 * "offline"; the browser reconnects by itself after a dropped stream, and we reconnect after a
 * refused one (e.g. a replica restarting) with a growing delay.
 */
export function connectEvents(onEvent, onState) {
  let source = null;
  let closed = false;
  let delay = 1000;
  let timer = null;
  const open = () => {
    const token = getToken();
    if (!token || closed) return;
    onState("connecting");
    source = new EventSource(`/api/v1/events?access_token=${encodeURIComponent(token)}`);
    source.onmessage = (m) => {
      let event;
      try {
        event = JSON.parse(m.data);
      } catch {
        return;
      }
      if (event.type === "ready") {
        delay = 1000;
        onState("live");
      }
      onEvent(event);
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        onState("offline");
        timer = setTimeout(open, delay);
        delay = Math.min(delay * 2, 30_000);
      } else onState("connecting");
    };
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    source?.close();
  };
}
