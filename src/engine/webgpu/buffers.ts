// GPU memory: storage objects own pooled buffers. A buffer goes back to its size-class pool when the
// JS object that owns it is garbage collected (FinalizationRegistry), so tensors need no manual
// disposal. Finalizers only run between event-loop turns, so long synchronous graphs either yield
// (autograd's backwardAsync, collect()) or run inside a scope: everything a scope allocated, except
// what it returns, goes back to the pool when it ends (checkpointed blocks use one).
import type { DType } from '../dtype.js';

interface Holder { buffer: GPUBuffer; cls: number; released: boolean }

export class GpuStorage {
  constructor(readonly buffer: GPUBuffer, readonly n: number, readonly dtype: DType, readonly bytes: number, readonly holder: Holder) {}
  /** True once a scope gave the buffer back; using it then is a bug, reported by the backend. */
  get released(): boolean { return this.holder.released; }
}

/**
 * A weight too large for one storage binding (maxStorageBufferBindingSize), held as row blocks of
 * its first axis, each in its own buffer. Only the ops that read weights (embedding, matmul/linear)
 * take it; they run once per block. `rows[k]` rows of `rowLen` values each are in `blocks[k]`.
 */
export class GpuSplit {
  constructor(readonly blocks: GpuStorage[], readonly rows: number[], readonly rowLen: number, readonly dtype: DType) {}
  get n(): number { return this.rows.reduce((a, r) => a + r, 0) * this.rowLen; }
  get released(): boolean { return this.blocks.some((b) => b.released); }
}

/** A byte count for messages: MiB, or KiB below one MiB (a lowered test limit would read "0 MiB"). */
export const sizeText = (bytes: number): string =>
  bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

/** Bytes a tensor of n elements needs: f16 packs two values per 32-bit word. */
export const byteSize = (dtype: DType, n: number): number => {
  const b = dtype === 'f16' ? 4 * Math.ceil(n / 2) : dtype === 'f64' ? 8 * n : 4 * n;
  return Math.max(4, b);
};

// Size classes: 4 per power of two (at most 19% slack), so buffers of nearby sizes are shared.
function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

/** Node's garbage collector as a function (null in browsers, which collect on their own). */
export async function findGc(): Promise<(() => void) | null> {
  if (!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node) return null;
  try {
    const v8 = await import('node:v8'), vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private registry = new FinalizationRegistry<Holder>((h) => { if (!h.released) this.release(h.buffer, h.cls); });
  private scopes: Set<GpuStorage>[] = [];
  /** Bytes held in GPU buffers (in use or pooled). */
  allocated = 0;
  peak = 0;
  private sinceGc = 0;
  private pooledBytes = 0;
  /** Submits recorded work; set by the backend (a buffer must not be destroyed while unsubmitted work uses it). */
  flush: () => void = () => {};

  /** The adapter's limit, when the one in use (maxBinding) was lowered below it (tests of weight splitting). */
  deviceMaxBinding = Infinity;

  /** The binding limit in words, with its size (messages name both sizes). */
  limitText(): string {
    return this.maxBinding < this.deviceMaxBinding
      ? `the binding limit of ${sizeText(this.maxBinding)} set by SDLORA_WEBGPU_MAX_BINDING / maxBinding (this adapter's maxStorageBufferBindingSize is ${sizeText(this.deviceMaxBinding)})`
      : `this adapter's maxStorageBufferBindingSize (${sizeText(this.maxBinding)})`;
  }

  constructor(
    private device: GPUDevice, private gc: (() => void) | null, readonly maxBinding = Infinity,
    // A full collection costs tens of ms on a large heap: ask for one per this many new bytes.
    private gcEveryBytes = Number(globalThis.process?.env?.SDLORA_WEBGPU_GC_MB ?? 512) * 2 ** 20,
  ) {}

  private release(buffer: GPUBuffer, cls: number): void {
    const list = this.free.get(cls) ?? [];
    list.push(buffer);
    this.free.set(cls, list);
    this.pooledBytes += cls;
  }

  /**
   * Size classes fragment: freed buffers of shapes that never come back (each layer's f32 weight
   * copy) would pile up. When the pool holds more than half the live bytes, it is emptied.
   */
  private trim(): void {
    if (this.pooledBytes <= Math.max(256 * 2 ** 20, (this.allocated - this.pooledBytes) / 2)) return;
    this.flush();
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.allocated -= this.pooledBytes;
    this.pooledBytes = 0;
  }

  /** A storage object whose buffer returns to the pool when the object is collected. */
  alloc(dtype: DType, n: number): GpuStorage {
    const bytes = byteSize(dtype, n);
    if (bytes > this.maxBinding) {
      throw new Error(`webgpu: a ${dtype} tensor of ${n} values (${sizeText(bytes)}) exceeds ${this.limitText()}; use a smaller batch or resolution`);
    }
    const cls = Math.min(sizeClass(bytes), Math.max(bytes, this.maxBinding));
    let buffer = this.free.get(cls)?.pop();
    if (buffer) this.pooledBytes -= cls;
    else {
      this.trim();
      buffer = this.device.createBuffer({ size: cls, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      this.allocated += cls;
      this.sinceGc += cls;
      this.peak = Math.max(this.peak, this.allocated);
    }
    const holder: Holder = { buffer, cls, released: false };
    const s = new GpuStorage(buffer, n, dtype, bytes, holder);
    this.registry.register(s, holder, holder);
    this.scopes[this.scopes.length - 1]?.add(s);
    return s;
  }

  beginScope(): void { this.scopes.push(new Set()); }

  /** Gives back every buffer allocated since the matching beginScope except `keep` (which moves to the outer scope). */
  endScope(keep: readonly unknown[]): void {
    const mine = this.scopes.pop();
    if (!mine) throw new Error('webgpu: endScope without beginScope');
    const outer = this.scopes[this.scopes.length - 1];
    for (const s of mine) {
      if (keep.includes(s)) { outer?.add(s); continue; }
      s.holder.released = true;
      this.registry.unregister(s.holder);
      this.release(s.buffer, s.holder.cls);
    }
  }

  /** Runs a garbage collection and lets finalizers return dead buffers, when enough was allocated since the last one. */
  async collect(force = false): Promise<void> {
    if (!force && this.sinceGc < this.gcEveryBytes) return;
    this.sinceGc = 0;
    this.gc?.();
    await new Promise((r) => setImmediate(r));
  }

  /** Buffers waiting in the pool, and their bytes. */
  pooled(): { buffers: number; bytes: number } {
    let buffers = 0;
    for (const list of this.free.values()) buffers += list.length;
    return { buffers, bytes: this.pooledBytes };
  }
}
