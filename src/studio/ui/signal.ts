// A tiny observable value, for state shared across pages (language, toasts) without a store library.
export interface Signal<T> { get(): T; set(v: T): void; subscribe(fn: () => void): () => void }

export function signal<T>(initial: T): Signal<T> {
  let v = initial;
  const subs = new Set<() => void>();
  return {
    get: () => v,
    set: (n) => { v = n; subs.forEach((f) => f()); },
    subscribe: (f) => { subs.add(f); return () => subs.delete(f); },
  };
}
