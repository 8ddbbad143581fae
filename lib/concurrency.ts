/**
 * Maps items with at most `limit` calls in flight, keeping the input order in the result.
 * For I/O-bound work over many files, where one-at-a-time awaits cost a round trip each.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Wraps `fn` so that concurrent callers share calls, yet every caller gets the result of a call
 * that started after it asked (a caller arriving while a call runs waits for the next one, which
 * it shares with everyone else who arrived meanwhile). For questions like "where is the branch
 * now?" asked by a burst of requests: at most two calls in flight, and no answer older than the
 * question.
 */
export function freshSingleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  let next: Promise<T> | null = null;
  const start = (): Promise<T> => {
    const p = fn().finally(() => {
      if (running === p) running = null;
    });
    running = p;
    return p;
  };
  return () => {
    if (!running) return start();
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = null;
        return start();
      });
    return next;
  };
}
