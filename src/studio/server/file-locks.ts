// Per-path serialization: read-compare-write sequences on one file (caption edits, bulk tag
// operations) run one after another, so two concurrent requests cannot both pass a version check.
const tails = new Map<string, Promise<unknown>>();

export async function withFileLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = tails.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  tails.set(key, tail);
  try { return await run; } finally { if (tails.get(key) === tail) tails.delete(key); }
}
