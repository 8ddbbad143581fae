// Least-recently-used bookkeeping with two limits, an entry count and a total weight (bytes).
// Both the hot instances (weight: linear memory) and the local artifact cache (weight: file
// size) are bounded this way (seed Property 15, Requirements 4.2, 4.3, 5.2: the least recently
// used item goes first, and eviction continues until the set is within its limits).
//
// Entries that are in use right now can be protected with `pinned`: eviction skips them and
// takes the next least recently used. If only pinned entries remain, the set stays over its
// limit until they are released (the caller decides whether to say so).

export interface LruLimits {
  maxCount: number;
  maxWeight: number;
}

export class Lru<K, V> {
  readonly limits: LruLimits;
  // A Map iterates in insertion order; re-inserting on use keeps the least recent first.
  readonly #entries = new Map<K, { value: V; weight: number }>();
  #weight = 0;
  /** The most recently used key, or undefined when unknown. */
  #last: K | undefined = undefined;

  constructor(limits: LruLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.#entries.size;
  }

  get weight(): number {
    return this.#weight;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  get(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /** Adds or replaces an entry as the most recently used. */
  set(key: K, value: V, weight: number): void {
    // Already the most recent (the common case for a busy hot instance): only the weight moves.
    if (key === this.#last) {
      const entry = this.#entries.get(key)!;
      this.#weight += weight - entry.weight;
      entry.value = value;
      entry.weight = weight;
      return;
    }
    this.delete(key);
    this.#last = key;
    this.#entries.set(key, { value, weight });
    this.#weight += weight;
  }

  /** Marks an entry as the most recently used; false when absent. */
  touch(key: K): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    this.#last = key;
    return true;
  }

  /** Changes an entry's weight without changing its recency (e.g. memory grew during a call). */
  reweigh(key: K, weight: number): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#weight += weight - entry.weight;
    entry.weight = weight;
  }

  delete(key: K): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    if (key === this.#last) this.#last = undefined;
    this.#entries.delete(key);
    this.#weight -= entry.weight;
    return true;
  }

  overLimit(): boolean {
    return this.#entries.size > this.limits.maxCount || this.#weight > this.limits.maxWeight;
  }

  /**
   * Removes least recently used entries, skipping pinned ones, until both limits hold or only
   * pinned entries are left. Returns what was removed, least recent first, with the limit that
   * made each one go.
   */
  evict(
    pinned: (key: K, value: V) => boolean = () => false,
  ): Array<{ key: K; value: V; reason: "count" | "weight" }> {
    const out: Array<{ key: K; value: V; reason: "count" | "weight" }> = [];
    if (!this.overLimit()) return out;
    for (const [key, entry] of this.#entries) {
      if (!this.overLimit()) break;
      if (pinned(key, entry.value)) continue;
      const reason = this.#entries.size > this.limits.maxCount ? "count" : "weight";
      if (key === this.#last) this.#last = undefined;
      this.#entries.delete(key);
      this.#weight -= entry.weight;
      out.push({ key, value: entry.value, reason });
    }
    return out;
  }

  /** Keys from least to most recently used. */
  keys(): K[] {
    return [...this.#entries.keys()];
  }
}
