// The WebAssembly SIMD kernels and the worker threads that run them. All instances share one
// WebAssembly.Memory backed by a SharedArrayBuffer, so a kernel call is: the host copies
// operands into that memory, every thread takes chunks of the work until none is left, the host
// copies the result out.
// Threads and the kernels' binary come from ./kernel-threads.ts (worker_threads and wabt in Node;
// the browser build swaps in Web Workers and precompiled bytes).
import { type KernelThread, availableThreads, kernelModule, startKernelThread } from './kernel-threads.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB address space, reserved lazily by the engine
// Control block layout (Int32 indices): [0] job sequence, [1] finished count, [2] next chunk's
// first index, [3] end index, [4] chunk length, [5] position of (lo, hi) in the argument list,
// then per worker 16 slots: the argument count, the kernel id, the arguments.
const HEADER = 6;
const ARGS_PER_WORKER = 16;
/**
 * Chunks per thread: threads take chunks from a shared counter instead of one fixed slice each, so
 * a thread that starts late or is descheduled (a busy machine) leaves its work to the others.
 */
const CHUNKS_PER_THREAD = 4;
/** Kernel ids of the job protocol, in the order of the worker loop's table. */
const GEMM = 0, PACK = 1, SOFTMAX = 2, MAP = 3, COL2IM = 4, NORM = 5, NORM_GRAD = 6, ATTN_FWD = 7, ATTN_BWD = 8, IM2COL = 9;
type KernelFn = (...a: number[]) => void;

// The body every kernel thread runs, as source: each platform starts it in its own kind of thread.
const workerLoop = `function kernelLoop({ module, memory, ctrl, index }) {
const instance = new WebAssembly.Instance(module, { env: { memory } });
const c = new Int32Array(ctrl);
let seq = 0;
for (;;) {
  Atomics.wait(c, 0, seq);
  seq = Atomics.load(c, 0);
  if (seq < 0) break;
  const base = ${HEADER} + index * ${ARGS_PER_WORKER};
  const n = c[base];
  const args = [];
  for (let i = 1; i < n; i++) args.push(c[base + 1 + i]);
  const e = instance.exports;
  const fn = [e.gemm, e.pack, e.softmax, e.map, e.col2im, e.norm, e.normGrad, e.attnFwd, e.attnBwd, e.im2col][c[base + 1]];
  const end = c[3], chunk = c[4], at = c[5];
  for (;;) {
    const lo = Atomics.add(c, 2, chunk);
    if (lo >= end) break;
    args[at] = lo;
    args[at + 1] = Math.min(end, lo + chunk);
    fn(...args);
  }
  Atomics.add(c, 1, 1);
  Atomics.notify(c, 1);
}
}`;

export class WasmPool {
  readonly threads: number;
  private memory: WebAssembly.Memory;
  private fns: KernelFn[];
  private ctrl: Int32Array;
  private workers: KernelThread[] = [];
  private seq = 0;

  private constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number) {
    this.memory = memory;
    this.threads = threads;
    const inst = new WebAssembly.Instance(module, { env: { memory } });
    const e = inst.exports as unknown as Record<'gemm' | 'pack' | 'softmax' | 'map' | 'col2im' | 'norm' | 'normGrad' | 'attnFwd' | 'attnBwd' | 'im2col', KernelFn>;
    this.fns = [e.gemm, e.pack, e.softmax, e.map, e.col2im, e.norm, e.normGrad, e.attnFwd, e.attnBwd, e.im2col];
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * (HEADER + threads * ARGS_PER_WORKER)));
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
   * argument list of thread t, with lo and hi at positions 8 and 9.
   */
  runGemm(panels: number, argsFor: (lo: number, hi: number, t: number) => number[], maxThreads = this.threads): void {
    this.run(GEMM, panels, argsFor, maxThreads, 8);
  }

  /**
   * Packs a matrix already copied into the memory (element (r, k) at byte src + 4*(r*sr + k*sk))
   * into the GEMM's [kb][panel][kc][W] layout at byte dst, panels split across the threads.
   */
  runPack(src: number, sr: number, sk: number, rows: number, K: number, W: number, nkb: number, kc: number, dst: number, maxThreads = this.threads): void {
    this.run(PACK, Math.ceil(rows / W), (lo, hi) => [src, sr, sk, rows, K, W, nkb, kc, dst, lo, hi], maxThreads, 9);
  }

  /** In-place row softmax of x*scale over rows [0, rows) at byte offset ptr (causalFrom < 0: no mask). */
  runSoftmax(ptr: number, rows: number, cols: number, scale: number, causalFrom: number): void {
    const bits = new Int32Array(new Float32Array([scale]).buffer)[0];
    this.run(SOFTMAX, rows, (lo, hi) => [ptr, cols, bits, causalFrom, lo, hi], rows * cols >= 1 << 16 ? this.threads : 1, 4);
  }

  /**
   * Activation `op` (map-wat.ts) of the n4 elements at byte x (and the gradient at byte g) into
   * byte y, in blocks of `block` elements taken by all threads.
   */
  runMap(op: number, x: number, g: number, y: number, n4: number, block: number): void {
    this.run(MAP, Math.ceil(n4 / block), (lo, hi) => [op, x, g, y, n4, lo, hi], this.threads, 5);
  }

  /**
   * Folds the column matrix at byte col (rows of ld) into `planes` image planes at byte dst
   * (col2im-wat.ts; each pair argument is (a << 16) | b), planes split across the threads.
   */
  runCol2im(col: number, ld: number, dst: number, cg: number, hw: number, k: number, o: number, s: number, pad: number, planes: number, maxThreads = this.threads): void {
    this.run(COL2IM, planes, (lo, hi) => [col, ld, dst, cg, hw, k, o, s, pad, lo, hi], maxThreads, 9);
  }

  /**
   * Expands nb images at byte x ([nb][cg][h][w]) into the column matrix at byte dst (rows of ld;
   * im2col-wat.ts; each pair argument is (a << 16) | b), its `rows` rows split across the threads.
   */
  runIm2col(x: number, nb: number, cg: number, hw: number, k: number, o: number, s: number, pad: number, dst: number, ld: number, rows: number, maxThreads = this.threads): void {
    this.run(IM2COL, rows, (lo, hi) => [x, nb, cg, hw, k, o, s, pad, dst, ld, lo, hi], maxThreads, 10);
  }

  /** Group/layer norm of `rows` rows (norm-wat.ts "norm"; byte addresses, gamma/beta 0 for none). */
  runNorm(x: number, y: number, mean: number, rstd: number, gamma: number, beta: number, rows: number, size: number, inner: number, channels: number, eps: number, maxThreads: number): void {
    const e = new Int32Array(new Float64Array([eps]).buffer);
    this.run(NORM, rows, (lo, hi) => [x, y, mean, rstd, gamma, beta, size, inner, channels, e[0], e[1], lo, hi], maxThreads, 11);
  }

  /**
   * Norm backward of `rows` rows (norm-wat.ts "normGrad"); with part != 0 thread t adds its
   * per-channel sums into the 2 * channels f64 at byte part + t * 16 * channels.
   */
  runNormGrad(x: number, gy: number, dx: number, mean: number, rstd: number, gamma: number, part: number, rows: number, size: number, inner: number, channels: number, maxThreads: number): void {
    this.run(NORM_GRAD, rows, (lo, hi, t) => [x, gy, dx, mean, rstd, gamma, part ? part + t * 16 * channels : 0, size, inner, channels, lo, hi], maxThreads, 10);
  }

  /**
   * Fused attention (attention-wat.ts) forward or backward over `slices` (batch x head) slices,
   * described by the fields at byte `desc`; each thread works in its own scratch.
   */
  runAttention(backward: boolean, desc: number, slices: number): void {
    this.run(backward ? ATTN_BWD : ATTN_FWD, slices, (lo, hi, t) => [desc, t, lo, hi], this.threads, 2);
  }

  /**
   * Kernel `id` (GEMM ... ATTN_BWD above) over [0, panels): on the calling thread alone when maxThreads
   * is 1, else on every thread in chunks (the (lo, hi) at positions `loAt`, `loAt + 1` of the
   * arguments); the calling thread works too and then waits for the rest.
   */
  private run(id: number, panels: number, argsFor: (lo: number, hi: number, t: number) => number[], maxThreads: number, loAt: number): void {
    const fn = this.fns[id];
    if (Math.min(this.threads, maxThreads, panels) <= 1) {
      // Waking a sleeping worker costs more than a small product; run it here.
      fn(...argsFor(0, panels, 0));
      return;
    }
    const chunk = Math.ceil(panels / (this.threads * CHUNKS_PER_THREAD));
    const c = this.ctrl;
    for (let w = 1; w < this.threads; w++) {
      const args = [id, ...argsFor(0, 0, w)];
      const base = HEADER + (w - 1) * ARGS_PER_WORKER;
      c[base] = args.length;
      for (let i = 0; i < args.length; i++) c[base + 1 + i] = args[i];
    }
    c[3] = panels; c[4] = chunk; c[5] = loAt;
    Atomics.store(c, 2, 0);
    const expected = this.workers.length;
    Atomics.store(c, 1, 0);
    this.seq = (this.seq + 1) & 0x3fffffff;
    Atomics.store(c, 0, this.seq);
    Atomics.notify(c, 0);
    const args = argsFor(0, 0, 0);
    for (;;) {
      const lo = Atomics.add(c, 2, chunk);
      if (lo >= panels) break;
      args[loAt] = lo;
      args[loAt + 1] = Math.min(panels, lo + chunk);
      fn(...args);
    }
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
