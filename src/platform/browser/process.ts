// A `process` global for the page: environment variables come from the page (settable before the
// engine starts), signals never arrive, output goes to the console.
import { Buffer } from 'buffer';

const env: Record<string, string | undefined> = {};
const noop = () => proc;
const proc = {
  env,
  pid: 1,
  platform: 'browser',
  argv: [] as string[],
  versions: {} as Record<string, string>,
  cwd: () => '/',
  on: noop, once: noop, off: noop, removeListener: noop, emit: () => false,
  exitCode: undefined as number | undefined,
  memoryUsage: () => {
    const m = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory;
    return { rss: m?.usedJSHeapSize ?? 0, heapUsed: m?.usedJSHeapSize ?? 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  },
  hrtime: Object.assign((p?: [number, number]) => {
    const t = performance.now() * 1e6;
    const s = Math.floor(t / 1e9), n = Math.floor(t % 1e9);
    return p ? [s - p[0], n - p[1]] : [s, n];
  }, { bigint: () => BigInt(Math.floor(performance.now() * 1e6)) }),
  nextTick: (f: (...a: unknown[]) => void, ...a: unknown[]) => queueMicrotask(() => f(...a)),
  stdout: { write: (s: string) => { console.log(String(s).replace(/\n$/, '')); return true; }, isTTY: false, columns: 80 },
  stderr: { write: (s: string) => { console.warn(String(s).replace(/\n$/, '')); return true; }, isTTY: false },
  exit: (code?: number) => { throw new Error(`process.exit(${code ?? 0}) in the page`); },
};
(globalThis as Record<string, unknown>).process ??= proc;
(globalThis as Record<string, unknown>).Buffer ??= Buffer;
// Node's setImmediate (the engine yields to the event loop with it between backward passes).
(globalThis as Record<string, unknown>).setImmediate ??= (f: (...a: unknown[]) => void, ...a: unknown[]) => setTimeout(f, 0, ...a);
