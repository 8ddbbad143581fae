import test from "ava";
import { freshSingleFlight } from "../../lib/concurrency.ts";

test("freshSingleFlight: callers during a call share the next one, and no answer predates its question", async (t) => {
  let calls = 0;
  const gates: (() => void)[] = [];
  const ask = freshSingleFlight(async () => {
    const n = ++calls;
    await new Promise<void>((resolve) => gates.push(resolve));
    return n;
  });
  const first = ask(); // starts call 1
  const second = ask(); // call 1 started before it asked: waits for call 2
  const third = ask(); // shares call 2
  t.is(calls, 1);
  gates[0]!();
  t.is(await first, 1);
  await new Promise((r) => setImmediate(r));
  t.is(calls, 2);
  gates[1]!();
  t.deepEqual(await Promise.all([second, third]), [2, 2]);
  t.is(calls, 2);
  // Idle again: the next caller starts a call of its own.
  const fourth = ask();
  t.is(calls, 3);
  gates[2]!();
  t.is(await fourth, 3);
});

test("freshSingleFlight: a failed call rejects its callers and does not block the next", async (t) => {
  let fail = true;
  const ask = freshSingleFlight(async () => {
    if (fail) throw new Error("remote down");
    return "head";
  });
  await t.throwsAsync(ask(), { message: "remote down" });
  fail = false;
  t.is(await ask(), "head");
});
