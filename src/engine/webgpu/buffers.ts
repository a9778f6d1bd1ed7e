// GPU memory: storage objects own pooled buffers. A buffer goes back to its size-class pool when the
// JS object that owns it is garbage collected (FinalizationRegistry), so tensors need no manual
// disposal. V8 cannot see GPU memory, so once freshly allocated bytes pass a budget the pool asks
// for a garbage collection; callers that run long synchronous graphs yield (see autograd's
// backwardAsync) so the finalizers get to run.
import type { DType } from '../dtype.js';

export class GpuStorage {
  constructor(readonly buffer: GPUBuffer, readonly n: number, readonly dtype: DType, readonly bytes: number) {}
}

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
  private registry = new FinalizationRegistry<{ buffer: GPUBuffer; cls: number }>((h) => this.release(h.buffer, h.cls));
  /** Bytes held in GPU buffers (in use or pooled). */
  allocated = 0;
  peak = 0;
  private sinceGc = 0;

  constructor(private device: GPUDevice, private gc: (() => void) | null, private gcEveryBytes = 512 * 2 ** 20) {}

  private release(buffer: GPUBuffer, cls: number): void {
    const list = this.free.get(cls) ?? [];
    list.push(buffer);
    this.free.set(cls, list);
  }

  /** A storage object whose buffer returns to the pool when the object is collected. */
  alloc(dtype: DType, n: number): GpuStorage {
    const bytes = byteSize(dtype, n);
    const cls = sizeClass(bytes);
    let buffer = this.free.get(cls)?.pop();
    if (!buffer) {
      if (this.sinceGc > this.gcEveryBytes) { this.sinceGc = 0; this.gc?.(); }
      buffer = this.device.createBuffer({ size: cls, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      this.allocated += cls;
      this.sinceGc += cls;
      this.peak = Math.max(this.peak, this.allocated);
    }
    const s = new GpuStorage(buffer, n, dtype, bytes);
    this.registry.register(s, { buffer, cls });
    return s;
  }

  /** Buffers waiting in the pool, and their bytes. */
  pooled(): { buffers: number; bytes: number } {
    let buffers = 0, bytes = 0;
    for (const [cls, list] of this.free) { buffers += list.length; bytes += cls * list.length; }
    return { buffers, bytes };
  }
}
