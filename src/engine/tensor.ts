// Tensor: a shape, a dtype and backend-owned storage, plus the autograd fields. Tensors are
// immutable values: every op returns a new tensor (reshape and detach may share storage).
import type { Backend, Storage } from './backend.js';
import { type DType, type TypedArray, allocArray, castArray, dtypeOfArray } from './dtype.js';
import { type Shape, numel } from './shape.js';
import { type GradNode, runBackward, runBackwardAsync } from './autograd.js';
import { cpuBackend } from './cpu/cpu-backend.js';

let defaultBackend: Backend = cpuBackend;
/** Where tensor(), zeros(), randn()... put new tensors unless told otherwise. */
export const getDefaultBackend = (): Backend => defaultBackend;
export function setDefaultBackend(b: Backend): void { defaultBackend = b; }

/** Runs fn with new tensors going to `b`, restoring the previous default afterwards. */
export async function withBackend<T>(b: Backend, fn: () => Promise<T>): Promise<T> {
  const prev = defaultBackend;
  defaultBackend = b;
  try { return await fn(); } finally { defaultBackend = prev; }
}

// Small tensors made from host values on a device backend keep those values (tensors never
// change, so the copy stays true): token ids and timesteps stay readable without a device sync.
const HOST_MIRROR_MAX = 1 << 16;

export class Tensor {
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a recorded graph. */
  node: GradNode | null = null;
  /** Host copy of the values, when the tensor was built from host data on a device backend. */
  host: TypedArray | null = null;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly backend: Backend = cpuBackend,
  ) {}

  get size(): number { return numel(this.shape); }
  get rank(): number { return this.shape.length; }

  /** Reads the values back (async: a GPU backend must wait for the device). */
  data(): Promise<TypedArray> { return this.backend.read(this.storage); }

  /** Synchronous read; only backends that keep data in host memory (cpu) support it. */
  dataSync(): TypedArray {
    if (this.host) return this.host;
    if (!this.backend.readSync) throw new Error(`dataSync() is not available on the ${this.backend.name} backend; use await tensor.data()`);
    return this.backend.readSync(this.storage);
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a tensor with one element, got shape [${this.shape}]`);
    return this.dataSync()[0];
  }

  /** item() for any backend. */
  async value(): Promise<number> {
    if (this.size !== 1) throw new Error(`value() needs a tensor with one element, got shape [${this.shape}]`);
    return (await this.data())[0];
  }

  /** Marks a leaf tensor as trainable (gradients accumulate into .grad). */
  requireGrad(flag = true): this {
    if (this.node) throw new Error('requireGrad() is for leaf tensors; use detach() first');
    this.requiresGrad = flag;
    return this;
  }

  /** Same values, cut from the graph. */
  detach(): Tensor {
    const t = new Tensor(this.storage, this.shape, this.dtype, this.backend);
    t.host = this.host;
    return t;
  }

  /**
   * Overwrites the values of a leaf in place (optimizer steps). The only mutation tensors allow;
   * graphs recorded before it see the new values.
   */
  assign(data: TypedArray): void {
    if (this.node) throw new Error('assign() is for leaf tensors');
    if (data.length !== this.size) throw new Error(`assign(): ${data.length} values for shape [${this.shape}]`);
    this.backend.assign(this.storage, data);
    if (this.host && this.host !== data) this.host.set(data);
  }

  /** The same values on another backend (a copy; a tensor already there is returned as is). */
  toBackend(b: Backend): Tensor {
    if (b === this.backend) return this;
    const src = this.host ?? (this.backend.readSync ? this.backend.readSync(this.storage) : null);
    if (!src) throw new Error(`toBackend(): ${this.backend.name} tensors are read asynchronously; use await toBackendAsync()`);
    return fromHost(src, this.shape, this.dtype, b);
  }

  async toBackendAsync(b: Backend): Promise<Tensor> {
    if (b === this.backend) return this;
    return fromHost(await this.data(), this.shape, this.dtype, b);
  }

  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this;
    const t = new Tensor(this.backend.cast(this.storage, dtype), this.shape, dtype, this.backend);
    if (this.host) t.host = castArray(this.host, dtype);
    return t;
  }

  backward(grad?: Tensor): void { runBackward(this, grad); }

  /** backward() that frees the graph as it goes and yields to the event loop (for GPU memory). */
  backwardAsync(grad?: Tensor): Promise<void> { return runBackwardAsync(this, grad); }

  toString(): string { return `Tensor(${this.dtype}, [${this.shape}])`; }
}

export function tensor(data: ArrayLike<number> | TypedArray, shape: Shape, dtype?: DType, backend: Backend = defaultBackend): Tensor {
  const n = numel(shape);
  if (data.length !== n) throw new Error(`tensor: ${data.length} values do not fill shape [${shape}] (${n})`);
  let arr: TypedArray;
  const isTyped = ArrayBuffer.isView(data);
  const dt = dtype ?? (isTyped ? dtypeOfArray(data as TypedArray) : 'f32');
  if (isTyped && dtypeOfArray(data as TypedArray) === dt) arr = data as TypedArray;
  else { arr = allocArray(dt, n); for (let i = 0; i < n; i++) arr[i] = (data as ArrayLike<number>)[i]; }
  return fromHost(arr, shape, dt, backend);
}

function fromHost(arr: TypedArray, shape: Shape, dtype: DType, backend: Backend): Tensor {
  const t = new Tensor(backend.fromArray(arr, shape), [...shape], dtype, backend);
  if (!backend.readSync && arr.length <= HOST_MIRROR_MAX) t.host = arr;
  return t;
}

export function zeros(shape: Shape, dtype: DType = 'f32', backend: Backend = defaultBackend): Tensor {
  return new Tensor(backend.zeros(dtype, numel(shape)), [...shape], dtype, backend);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32', backend: Backend = defaultBackend): Tensor {
  const a = allocArray(dtype, numel(shape));
  a.fill(value);
  return tensor(a, shape, dtype, backend);
}

export const ones = (shape: Shape, dtype: DType = 'f32', backend: Backend = defaultBackend): Tensor => full(shape, 1, dtype, backend);
