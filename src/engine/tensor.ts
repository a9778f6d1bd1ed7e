// Tensor: a shape, a dtype and backend-owned storage, plus the autograd fields. Tensors are
// immutable values: every op returns a new tensor (reshape and detach may share storage).
import type { Backend, Storage } from './backend.js';
import { type DType, type TypedArray, allocArray, dtypeOfArray } from './dtype.js';
import { type Shape, numel } from './shape.js';
import { type GradNode, runBackward } from './autograd.js';
import { cpuBackend } from './cpu/cpu-backend.js';

export class Tensor {
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a recorded graph. */
  node: GradNode | null = null;

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
    if (!this.backend.readSync) throw new Error(`dataSync() is not available on the ${this.backend.name} backend; use await tensor.data()`);
    return this.backend.readSync(this.storage);
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a tensor with one element, got shape [${this.shape}]`);
    return this.dataSync()[0];
  }

  /** Marks a leaf tensor as trainable (gradients accumulate into .grad). */
  requireGrad(flag = true): this {
    if (this.node) throw new Error('requireGrad() is for leaf tensors; use detach() first');
    this.requiresGrad = flag;
    return this;
  }

  /** Same values, cut from the graph. */
  detach(): Tensor { return new Tensor(this.storage, this.shape, this.dtype, this.backend); }

  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this;
    return new Tensor(this.backend.cast(this.storage, dtype), this.shape, dtype, this.backend);
  }

  backward(grad?: Tensor): void { runBackward(this, grad); }

  toString(): string { return `Tensor(${this.dtype}, [${this.shape}])`; }
}

export function tensor(data: ArrayLike<number> | TypedArray, shape: Shape, dtype?: DType, backend: Backend = cpuBackend): Tensor {
  const n = numel(shape);
  if (data.length !== n) throw new Error(`tensor: ${data.length} values do not fill shape [${shape}] (${n})`);
  let arr: TypedArray;
  const isTyped = ArrayBuffer.isView(data);
  const dt = dtype ?? (isTyped ? dtypeOfArray(data as TypedArray) : 'f32');
  if (isTyped && dtypeOfArray(data as TypedArray) === dt) arr = data as TypedArray;
  else { arr = allocArray(dt, n); for (let i = 0; i < n; i++) arr[i] = (data as ArrayLike<number>)[i]; }
  return new Tensor(backend.fromArray(arr), [...shape], dt, backend);
}

export function zeros(shape: Shape, dtype: DType = 'f32', backend: Backend = cpuBackend): Tensor {
  return new Tensor(backend.zeros(dtype, numel(shape)), [...shape], dtype, backend);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32', backend: Backend = cpuBackend): Tensor {
  const a = allocArray(dtype, numel(shape));
  a.fill(value);
  return new Tensor(backend.fromArray(a), [...shape], dtype, backend);
}

export const ones = (shape: Shape, dtype: DType = 'f32', backend: Backend = cpuBackend): Tensor => full(shape, 1, dtype, backend);
