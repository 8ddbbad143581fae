// Label selectors over runner labels, as in placement.pops: "region=jp,tier!=canary".
// Every term must hold; an empty selector matches every node. A node's POP is also visible
// as the label "pop", so "pop=tokyo-1" pins a function to one POP.

export interface SelectorTerm {
  key: string;
  op: "=" | "!=";
  value: string;
}

export function parseSelector(selector: string): SelectorTerm[] {
  return selector
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => {
      const m = /^([^=!\s]+)\s*(!=|=)\s*(.*)$/.exec(t);
      if (!m) throw new Error(`invalid selector term "${t}"`);
      return { key: m[1]!, op: m[2] as "=" | "!=", value: m[3]!.trim() };
    });
}

export function matchesSelector(selector: string, labels: Record<string, string>): boolean {
  return parseSelector(selector).every((t) =>
    t.op === "=" ? labels[t.key] === t.value : labels[t.key] !== t.value,
  );
}
