import test from "ava";
import { formatTraceparent, parseTraceparent } from "../../edge-runner/trace.ts";

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

test("trace: parses a W3C traceparent and formats it back", (t) => {
  const ctx = parseTraceparent(valid);
  t.like(ctx, {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
    isRemote: true,
  });
  t.is(formatTraceparent(ctx!), valid);
});

test("trace: refuses what the W3C Trace Context spec says to ignore", (t) => {
  for (const bad of [
    undefined,
    "",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 with more fields
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // short
  ]) {
    t.is(parseTraceparent(bad), null, String(bad));
  }
  // A later version may carry more fields.
  t.truthy(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"));
});
