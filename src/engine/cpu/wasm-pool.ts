// The WebAssembly SIMD kernels and the worker threads that run them. All instances share one
// WebAssembly.Memory backed by a SharedArrayBuffer, so a kernel call is: the host copies (packs)
// operands into that memory, every thread runs its slice, the host copies the result out.
// Threads and the kernels' binary come from ./kernel-threads.ts (worker_threads and wabt in Node;
// the browser build swaps in Web Workers and precompiled bytes).
import { type KernelThread, availableThreads, kernelModule, startKernelThread } from './kernel-threads.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB address space, reserved lazily by the engine
// Control block layout (Int32 indices): [0] job sequence, [1] finished count, then per worker 16 args.
const ARGS_PER_WORKER = 16;

// The body every kernel thread runs, as source: each platform starts it in its own kind of thread.
const workerLoop = `function kernelLoop({ module, memory, ctrl, index }) {
const instance = new WebAssembly.Instance(module, { env: { memory } });
const c = new Int32Array(ctrl);
let seq = 0;
for (;;) {
  Atomics.wait(c, 0, seq);
  seq = Atomics.load(c, 0);
  if (seq < 0) break;
  const base = 2 + index * ${ARGS_PER_WORKER};
  const n = c[base];
  const args = [];
  for (let i = 1; i < n; i++) args.push(c[base + 1 + i]);
  const id = c[base + 1];
  (id === 2 ? instance.exports.softmax : instance.exports.gemm)(...args);
  Atomics.add(c, 1, 1);
  Atomics.notify(c, 1);
}
}`;

export class WasmPool {
  readonly threads: number;
  private memory: WebAssembly.Memory;
  private exports: { gemm: (...a: number[]) => void; softmax: (...a: number[]) => void };
  private ctrl: Int32Array;
  private workers: KernelThread[] = [];
  private seq = 0;

  private constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number) {
    this.memory = memory;
    this.threads = threads;
    const inst = new WebAssembly.Instance(module, { env: { memory } });
    this.exports = inst.exports as unknown as WasmPool['exports'];
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * (2 + threads * ARGS_PER_WORKER)));
    for (let i = 0; i < threads - 1; i++) {
      this.workers.push(startKernelThread(workerLoop, { module, memory, ctrl: this.ctrl.buffer as SharedArrayBuffer, index: i }));
    }
  }

  static async create(threads: number): Promise<WasmPool> {
    const module = await kernelModule();
    const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    const pool = new WasmPool(module, memory, threads);
    await Promise.all(pool.workers.map((w) => w.ready));
    return pool;
  }

  /** Makes sure the shared memory holds at least `bytes` and returns a fresh view of it. */
  reserve(bytes: number): ArrayBuffer {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      try {
        this.memory.grow(Math.ceil((bytes - have) / PAGE));
      } catch (e) {
        // Browsers cap a tab's memory well below a machine's; say so instead of a bare RangeError.
        throw new Error(`wasm cpu backend: cannot grow the kernels' shared memory from ${have >> 20} to ${Math.ceil(bytes / 2 ** 20)} MiB (${(e as Error).message}); `
          + 'WebAssembly memory is capped at 4 GiB, and a browser tab often gets less: use a smaller batch or resolution');
      }
    }
    return this.memory.buffer as unknown as ArrayBuffer;
  }

  /**
   * Runs gemm over panel rows [0, panels) split across the threads; `argsFor(lo, hi, t)` gives the
   * argument list of thread t. The calling thread takes the first slice and then waits for the rest.
   */
  runGemm(panels: number, argsFor: (lo: number, hi: number, t: number) => number[], maxThreads = this.threads): void {
    this.run(0, panels, argsFor, maxThreads);
  }

  /** In-place row softmax of x*scale over rows [0, rows) at byte offset ptr (causalFrom < 0: no mask). */
  runSoftmax(ptr: number, rows: number, cols: number, scale: number, causalFrom: number): void {
    const bits = new Int32Array(new Float32Array([scale]).buffer)[0];
    this.run(2, rows, (lo, hi) => [ptr, cols, bits, causalFrom, lo, hi], rows * cols >= 1 << 16 ? this.threads : 1);
  }

  /** Kernel `id` (0 gemm, 2 softmax) over [0, panels) split across the threads. */
  private run(id: number, panels: number, argsFor: (lo: number, hi: number, t: number) => number[], maxThreads: number): void {
    const t = Math.max(1, Math.min(this.threads, maxThreads, panels));
    const fn = id === 2 ? this.exports.softmax : this.exports.gemm;
    if (t === 1) {
      // Waking a sleeping worker costs more than a small product; run it here.
      fn(...argsFor(0, panels, 0));
      return;
    }
    const per = Math.ceil(panels / t);
    const c = this.ctrl;
    // Every worker wakes on a new sequence, so each gets arguments; an empty slice runs no loop.
    for (let w = 1; w < this.threads; w++) {
      const lo = Math.min(panels, w * per);
      const hi = w < t ? Math.min(panels, lo + per) : lo;
      const args = [id, ...argsFor(lo, hi, w)];
      const base = 2 + (w - 1) * ARGS_PER_WORKER;
      c[base] = args.length;
      for (let i = 0; i < args.length; i++) c[base + 1 + i] = args[i];
    }
    const expected = this.workers.length;
    Atomics.store(c, 1, 0);
    this.seq = (this.seq + 1) & 0x3fffffff;
    Atomics.store(c, 0, this.seq);
    Atomics.notify(c, 0);
    fn(...argsFor(0, Math.min(per, panels), 0));
    for (;;) {
      const done = Atomics.load(c, 1);
      if (done >= expected) break;
      Atomics.wait(c, 1, done);
    }
  }
}

export function defaultThreads(): number {
  return availableThreads();
}

let poolPromise: Promise<WasmPool> | undefined;
export function getPool(): Promise<WasmPool> {
  poolPromise ??= WasmPool.create(defaultThreads());
  return poolPromise;
}
