import test from "ava";
import { Lru } from "../../edge-runner/lru.ts";

test("lru: evicts the least recently used first and says which limit made it go", (t) => {
  const lru = new Lru<string, number>({ maxCount: 2, maxWeight: 100 });
  lru.set("a", 1, 10);
  lru.set("b", 2, 10);
  lru.set("c", 3, 10);
  lru.touch("a");
  t.deepEqual(lru.keys(), ["b", "c", "a"]);
  t.deepEqual(lru.evict(), [{ key: "b", value: 2, reason: "count" }]);
  lru.reweigh("a", 95);
  t.deepEqual(lru.evict(), [{ key: "c", value: 3, reason: "weight" }]);
  t.is(lru.weight, 95);
});

test("lru: pinned entries are skipped; the set may stay over its limit with only pinned ones", (t) => {
  const lru = new Lru<string, number>({ maxCount: 1, maxWeight: 1000 });
  lru.set("busy", 1, 1);
  lru.set("idle", 2, 1);
  lru.set("busy2", 3, 1);
  t.deepEqual(
    lru.evict((k) => k.startsWith("busy")).map((e) => e.key),
    ["idle"],
  );
  t.true(lru.overLimit());
  t.deepEqual(lru.keys(), ["busy", "busy2"]);
});

test("lru: setting the most recent entry again only changes its weight", (t) => {
  const lru = new Lru<string, number>({ maxCount: 5, maxWeight: 1000 });
  lru.set("a", 1, 10);
  lru.set("b", 2, 10);
  lru.set("b", 3, 30);
  t.deepEqual(lru.keys(), ["a", "b"]);
  t.is(lru.get("b"), 3);
  t.is(lru.weight, 40);
  lru.delete("b");
  lru.set("a", 4, 5);
  t.is(lru.weight, 5);
});
