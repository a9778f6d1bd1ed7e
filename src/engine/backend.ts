// The contract between the autograd layer and a compute backend. Storage is owned by the backend
// (a typed array on cpu, a GPU buffer on webgpu); the autograd layer only passes handles and
// shapes. Kernels never modify their inputs, so tensors may share storage (reshape, detach).
import type { DType, FloatDType, TypedArray } from './dtype.js';
import type { Shape } from './shape.js';

export type Storage = unknown;

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'square' | 'abs' | 'sin' | 'cos' | 'tanh'
  | 'sigmoid' | 'relu' | 'silu' | 'gelu' | 'gelu_tanh' | 'quick_gelu'
  | 'scale' | 'shift' | 'pow' | 'minimum' | 'maximum';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

export interface Conv2dParams {
  stride: [number, number];
  padding: [number, number];
  groups: number;
}
export interface ConvShapes extends Conv2dParams {
  x: Shape; // [N, Cin, H, W]
  w: Shape; // [Cout, Cin/groups, KH, KW]
  out: Shape; // [N, Cout, OH, OW]
  /** w is f16 storage read in place (backends with halfWeights only). */
  wHalf?: boolean;
}

/** Matrix product of batched operands; a batch count of 1 on an operand broadcasts it. */
export interface MatmulSpec {
  batch: number;
  aBatch: number;
  bBatch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean; // a is stored [K, M]
  transB: boolean; // b is stored [N, K]
  /** b is f16 storage read in place (backends with halfWeights only). */
  bHalf?: boolean;
}

export type NormAct = 'none' | 'silu';

export interface NormStats {
  y: Storage;
  mean: Storage;
  rstd: Storage;
}

export interface Backend {
  readonly name: string;
  /** linear/conv2d read frozen f16 weights directly (no f32 copy per use). */
  readonly halfWeights?: boolean;
  /** attention/attentionGrad accept AttentionSpec.heads (the heads side by side in each token). */
  readonly attentionHeads?: boolean;
  /** `shape` lets a backend lay out a weight too large for one buffer (webgpu splits it in row blocks). */
  fromArray(data: TypedArray, shape?: Shape): Storage;
  /** Zero-filled storage. */
  zeros(dtype: DType, n: number): Storage;
  read(s: Storage): Promise<TypedArray>;
  /** Synchronous read where the backend can (cpu); undefined elsewhere. */
  readSync?(s: Storage): TypedArray;
  cast(s: Storage, to: DType): Storage;
  /** Overwrites the values in place (trainable leaves only; see Tensor.assign). */
  assign(s: Storage, data: TypedArray): void;
  /** dst += src over n elements, in place (a leaf's own accumulated gradient; optional). */
  addInPlace?(dst: Storage, src: Storage, n: number): void;
  /**
   * Allocation scopes (backends whose memory the garbage collector cannot see): storage allocated
   * between beginScope and endScope, except `keep`, is reclaimed at endScope.
   */
  beginScope?(): void;
  endScope?(keep: Storage[]): void;
  /** Gives the backend a chance to reclaim dead storage (awaited between steps). */
  collect?(force?: boolean): Promise<void>;

  unary(op: UnaryOp, x: Storage, dtype: FloatDType, n: number, param: number): Storage;
  /** Gradient of a unary op: gy * f'(x). */
  unaryGrad(op: UnaryOp, x: Storage, gy: Storage, dtype: FloatDType, n: number, param: number): Storage;
  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, out: Shape, dtype: FloatDType): Storage;
  /** Sums x (shape `shape`) down to `to` (same rank, 1 on reduced axes). */
  sumTo(x: Storage, shape: Shape, to: Shape, dtype: FloatDType): Storage;

  permute(x: Storage, shape: Shape, perm: readonly number[], dtype: DType): Storage;
  /** Copies the box [starts, starts + out) out of x. */
  slice(x: Storage, shape: Shape, starts: readonly number[], out: Shape, dtype: DType): Storage;
  /** Inverse of slice: a zero tensor of `shape` with gy written at `starts`. */
  sliceGrad(gy: Storage, shape: Shape, starts: readonly number[], gyShape: Shape, dtype: FloatDType): Storage;
  concat(xs: Storage[], shapes: Shape[], axis: number, dtype: DType): Storage;

  matmul(a: Storage, b: Storage, spec: MatmulSpec, dtype: FloatDType): Storage;
  /** a @ b + bias ([N], on every row) in one pass over the output (optional; linear uses matmul + add without it). */
  matmulBias?(a: Storage, b: Storage, bias: Storage, spec: MatmulSpec, dtype: FloatDType): Storage;
  conv2d(x: Storage, w: Storage, bias: Storage | null, s: ConvShapes, dtype: FloatDType): Storage;
  conv2dGradInput(gy: Storage, w: Storage, s: ConvShapes, dtype: FloatDType): Storage;
  conv2dGradWeight(gy: Storage, x: Storage, s: ConvShapes, dtype: FloatDType): Storage;

  /**
   * Normalizes `groups` contiguous runs of `size` values each; gamma/beta index = (i / inner) % channels.
   * `act` fuses an activation after the affine step (group norm + SiLU in every ResNet block).
   */
  norm(x: Storage, gamma: Storage | null, beta: Storage | null, n: NormLayout, eps: number, dtype: FloatDType, act?: NormAct): NormStats;
  /** Gradient of norm(); with an activation the pre-activation is recomputed from x, mean and rstd. */
  normGrad(gy: Storage, x: Storage, gamma: Storage | null, beta: Storage | null, mean: Storage, rstd: Storage, n: NormLayout, dtype: FloatDType, act?: NormAct): {
    dx: Storage; dgamma: Storage | null; dbeta: Storage | null;
  };

  softmax(x: Storage, rows: number, cols: number, dtype: FloatDType): Storage;
  softmaxGrad(y: Storage, gy: Storage, rows: number, cols: number, dtype: FloatDType): Storage;

  attention(q: Storage, k: Storage, v: Storage, a: AttentionSpec, dtype: FloatDType): Storage;
  attentionGrad(q: Storage, k: Storage, v: Storage, gy: Storage, a: AttentionSpec, dtype: FloatDType): {
    dq: Storage; dk: Storage; dv: Storage;
  };

  upsampleNearest2x(x: Storage, shape: Shape, dtype: FloatDType): Storage;
  upsampleNearest2xGrad(gy: Storage, shape: Shape, dtype: FloatDType): Storage;

  embedding(ids: Storage, table: Storage, count: number, dim: number, dtype: FloatDType): Storage;
  embeddingGrad(ids: Storage, gy: Storage, count: number, vocab: number, dim: number, dtype: FloatDType): Storage;
}

/**
 * Group/layer norm layout: x is [outer, groups-per-outer...] flattened into `rows` rows of `size`
 * values; the affine parameters have `channels` entries, element i of a row uses channel
 * floor(((row * size + i) / inner)) % channels.
 */
export interface NormLayout {
  rows: number;
  size: number;
  channels: number;
  inner: number;
}

/** Attention over [batch, Lq, D] queries, [batch, Lk, D] keys and [batch, Lk, Dv] values. */
export interface AttentionSpec {
  batch: number;
  lq: number;
  lk: number;
  d: number;
  dv: number;
  scale: number;
  causal: boolean;
  /**
   * With heads > 1 (backends with attentionHeads only), `batch` counts batch x heads slices and the
   * tensors keep the projections' layout, [batch / heads, L, heads, D]: no transposes around the op.
   */
  heads?: number;
}
