// W3C Trace Context (https://www.w3.org/TR/trace-context/) on the data plane, through
// @opentelemetry/api: an incoming `traceparent` is honoured (its trace id goes into the log lines
// of the request and becomes the parent of the runner's span), and propagated (the function sees
// the runner's span as its parent: edge-v1 in the request head, wagi as HTTP_TRACEPARENT).
//
// The API alone records nothing; spans are recorded when the process registers an OpenTelemetry
// SDK before the runner starts. Without one and without a `traceparent`, requests skip tracing
// entirely, so the hot path pays nothing for it.

import {
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/s;

/** The span context a `traceparent` header carries, or null when it is absent or invalid. */
export function parseTraceparent(header: string | undefined, tracestate?: string): SpanContext | null {
  if (header === undefined) return null;
  const m = TRACEPARENT.exec(header.trim());
  if (m === null) return null;
  const [, version, traceId, spanId, flags, rest] = m;
  // Version ff is forbidden; version 00 has exactly four fields (later versions may add more).
  if (version === "ff" || (version === "00" && rest !== undefined)) return null;
  const context: SpanContext = {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: Number.parseInt(flags!, 16),
    isRemote: true,
  };
  if (tracestate) {
    try {
      context.traceState = createTraceState(tracestate);
    } catch {
      // An unparsable tracestate is dropped, the traceparent still counts (spec §3.3.1).
    }
  }
  return isSpanContextValid(context) ? context : null;
}

export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

export interface RequestTrace {
  /** Trace id for log lines. */
  traceId: string;
  /** The traceparent the function should see, or null to pass the client's through unchanged. */
  traceparent: string | null;
  end(status: number): void;
}

export class Tracing {
  readonly #tracer: Tracer;
  /** An SDK is registered: trace every request, not only those that arrive with a traceparent. */
  readonly always: boolean;

  constructor() {
    this.#tracer = trace.getTracer("edgeplane-edge-runner");
    const probe = this.#tracer.startSpan("probe");
    this.always = isSpanContextValid(probe.spanContext());
    probe.end();
  }

  /** Starts the server span of a request, or returns null when there is nothing to trace. */
  start(
    traceparent: string | undefined,
    tracestate: string | undefined,
    attributes: Record<string, string>,
  ): RequestTrace | null {
    const parent = parseTraceparent(traceparent, tracestate);
    if (parent === null && !this.always) return null;
    const ctx = parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parent);
    const span: Span = this.#tracer.startSpan("edge.invoke", { kind: SpanKind.SERVER, attributes }, ctx);
    const own = span.spanContext();
    const recording = isSpanContextValid(own) && own.spanId !== parent?.spanId;
    return {
      traceId: recording ? own.traceId : parent!.traceId,
      traceparent: recording ? formatTraceparent(own) : null,
      end(status) {
        span.setAttribute("http.response.status_code", status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    };
  }
}
