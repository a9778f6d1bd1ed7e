// The webgpu backend: storage is a pooled GPU buffer, every op is a WGSL compute kernel. Dispatches
// are recorded into one command encoder and submitted in batches; a read-back or an upload flushes
// them first, so queue writes and reused buffers never overtake earlier work.
import type { AttentionSpec, Backend, BinaryOp, ConvShapes, MatmulSpec, NormAct, NormLayout, Storage, UnaryOp } from '../backend.js';
import { type DType, type TypedArray, allocArray } from '../dtype.js';
import { type Shape, broadcastStrides, numel, sameShape, stridesOf } from '../shape.js';
import { BufferPool, GpuSplit, GpuStorage, byteSize, findGc, sizeText } from './buffers.js';
import { type GpuContext, gpuContext } from './device.js';
import { attentionDeltaKernel, attentionForwardKernel, attentionGradKVKernel, attentionGradQKernel, ATTN_WG } from './kernels/attention.js';
import { RANK, WG } from './kernels/common.js';
import * as EW from './kernels/elementwise.js';
import {
  ABSMAX_PER_THREAD, type HalfTemplate, type SubgroupMatrixConfig, TILE, absMaxKernel, convGradInputKernel, convGradWeightKernelOf, convKernel, halfGemmSupport,
  matmulKernel, matrixTemplate, pickMatrixGemm, setHalfKernel,
} from './kernels/gemm.js';
import * as LK from './kernels/layout.js';
import { normAffineGradKernel, normGradKernel, normKernel, softmaxGradKernel, softmaxKernel } from './kernels/norm.js';

const MAX_GROUPS = 65535;
const FLUSH_EVERY = 256;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** A float parameter as the u32 bits the kernels bit-cast back. */
const fbits = (v: number) => { f32[0] = v; return u32[0]; };
const pad6 = (a: readonly number[], fill = 1) => [...a, ...new Array(RANK - a.length).fill(fill)];
const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

/** A 2-D grid of `groups` workgroups (one dimension holds at most 65535). */
function grid(groups: number): [number, number, number] {
  const x = Math.max(1, Math.min(groups, MAX_GROUPS));
  return [x, ceilDiv(groups, x), 1];
}

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu';
  readonly halfWeights = true;
  readonly pool: BufferPool;
  private device: GPUDevice;
  private pipelines = new Map<string, GPUComputePipeline>();
  private params = new Map<string, GPUBuffer>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pending = 0;
  private dummy: GPUBuffer;
  /** Dispatches issued (for tests and benchmarks). */
  dispatches = 0;
  /** Row reductions use subgroup operations (adapter feature + WGSL subgroup_id). */
  readonly subgroups: boolean;
  /** The GEMMs (matmul, conv2d's three passes) may run in f16 here: shader-f16, SDLORA_WEBGPU_F16 not 0. */
  get halfGemm(): boolean { return halfGemmSupport(this.ctx.features).ok; }
  private halfCompute = false;
  /** GEMM dispatches that ran the f16 kernel (tests, benchmarks). */
  halfGemmDispatches = 0;
  /** Attention dispatches (forward, dQ, dK/dV) that ran the f16 variant. */
  halfAttentionDispatches = 0;

  /**
   * The storage binding limit in use: the device's maxStorageBufferBindingSize, or a lower one asked
   * for (opts.maxBinding, SDLORA_WEBGPU_MAX_BINDING, the page's ?maxBinding) to exercise weight
   * splitting on an adapter with a large limit. Never above the device's.
   */
  readonly maxBinding: number;

  constructor(readonly ctx: GpuContext, gc: (() => void) | null = null, opts: { subgroups?: boolean; maxBinding?: number } = {}) {
    const penv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    const env = penv?.SDLORA_WEBGPU_SUBGROUPS;
    // On a software adapter (lavapipe) subgroups are emulated and measured slower (group norm
    // 2x320x64x64: 67 ms against 38 ms), so there they are opt-in.
    const wanted = opts.subgroups ?? (env === undefined ? !ctx.report.isFallback : env !== '0');
    this.subgroups = wanted && ctx.features.has('subgroups') && ctx.languageFeatures.has('subgroup_id');
    this.device = ctx.device;
    const deviceMax = ctx.device.limits.maxStorageBufferBindingSize;
    const asked = opts.maxBinding ?? (penv?.SDLORA_WEBGPU_MAX_BINDING ? Number(penv.SDLORA_WEBGPU_MAX_BINDING) : undefined);
    if (asked !== undefined && !(asked >= 4)) throw new Error(`webgpu: the binding limit asked for (SDLORA_WEBGPU_MAX_BINDING / maxBinding) must be a number of bytes >= 4, got ${asked}`);
    this.maxBinding = asked === undefined ? deviceMax : Math.min(deviceMax, Math.floor(asked / 4) * 4);
    this.pool = new BufferPool(ctx.device, gc, this.maxBinding);
    this.pool.deviceMaxBinding = deviceMax;
    this.pool.flush = () => this.flush();
    this.dummy = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  }

  // ---- plumbing ----

  private pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  // Parameter blocks are immutable and cached by value: a training loop repeats the same shapes.
  private paramBuffer(values: number[]): GPUBuffer {
    const key = values.join(',');
    let b = this.params.get(key);
    if (!b) {
      if (this.params.size > 50000) this.params.clear();
      b = this.device.createBuffer({ size: Math.max(16, 4 * values.length), usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
      new Uint32Array(b.getMappedRange()).set(values.map((v) => v >>> 0));
      b.unmap();
      this.params.set(key, b);
    }
    return b;
  }

  private enc(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) { this.pass.end(); this.pass = null; }
  }

  private run(code: string, params: number[], buffers: (GpuStorage | GpuSplit | GPUBuffer | null)[], groups: [number, number, number]): void {
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    const pipeline = this.pipeline(code);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.paramBuffer(params) } }];
    buffers.forEach((b, i) => {
      if (b instanceof GpuSplit) throw splitUnsupported(b, this.pool.limitText());
      if (b !== null && !(b instanceof GpuStorage) && !(b instanceof GPUBuffer)) throw new Error('webgpu: an input of this op lives on another backend (move it with tensor.toBackend())');
      if (b instanceof GpuStorage && b.released) throw new Error('webgpu: a tensor released by the end of its scope was used afterwards');
      const buffer = b === null ? this.dummy : b instanceof GpuStorage ? b.buffer : b;
      entries.push({ binding: i + 1, resource: { buffer } });
    });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.pass ??= this.enc().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(...groups);
    this.dispatches++;
    if (++this.pending >= FLUSH_EVERY) this.flush();
  }

  /**
   * Mixed precision fp16: while on (and halfGemm), matmul and conv2d run the f16 GEMM (f16 operand
   * tiles, f32 accumulation). Returns the previous setting; plain f32 runs leave it off.
   */
  setHalfCompute(on: boolean): boolean { const prev = this.halfCompute; this.halfCompute = on; return prev; }
  /** The arithmetic matmul and conv2d use now. */
  get gemmArithmetic(): 'f16' | 'f32' { return this.halfCompute && this.halfGemm ? 'f16' : 'f32'; }

  /** The subgroup-matrix (tensor core) f16 GEMM: in use, or why not (doctor, scripts/gpu-check.sh). */
  matrixGemm: { on: boolean; why: string } = { on: false, why: 'not checked' };

  /**
   * Runs a matmul (70 x 301 by 301 x 45) under mixed precision fp16 with the f16 GEMM template `t`
   * and compares it with the host's f64 product: a shader that does not compile (a validation
   * error) or results off by more than 1% of the largest value fail. Leaves the GEMM as it was.
   */
  async checkHalfKernel(t: HalfTemplate): Promise<{ ok: boolean; why: string }> {
    if (!this.halfGemm) return { ok: false, why: 'no f16 GEMM on this device' };
    const M = 70, N = 45, K = 301;
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed / 2 ** 32) * 2 - 1; };
    const a = Float32Array.from({ length: M * K }, rnd), b = Float32Array.from({ length: K * N }, rnd);
    const prevKernel = setHalfKernel(t), prevHalf = this.setHalfCompute(true);
    this.ctx.device.pushErrorScope('validation');
    let got: TypedArray;
    try {
      got = await this.read(this.matmul(this.fromArray(a), this.fromArray(b), { batch: 1, aBatch: 1, bBatch: 1, M, N, K, transA: false, transB: false }));
    } finally {
      setHalfKernel(prevKernel);
      this.setHalfCompute(prevHalf);
    }
    const err = await this.ctx.device.popErrorScope();
    if (err) return { ok: false, why: `did not compile or run: ${err.message.split('\n')[0]}` };
    let worst = 0, top = 0;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
      worst = Math.max(worst, Math.abs(got[i * N + j] - s)); top = Math.max(top, Math.abs(s));
    }
    const rel = worst / top;
    return rel <= 0.01 ? { ok: true, why: `max error ${rel.toExponential(1)} of the largest value` } : { ok: false, why: `wrong results: max error ${rel.toExponential(1)} of the largest value` };
  }

  /**
   * Uses the subgroup-matrix f16 GEMM where the adapter offers a fitting config and the kernel
   * passes checkHalfKernel on this device; otherwise the f16 GEMM stays as it is (matrixGemm says why).
   */
  async enableMatrixGemm(): Promise<void> {
    const info = this.ctx.adapter.info as unknown as { subgroupMatrixConfigs?: SubgroupMatrixConfig[]; subgroupMaxSize?: number };
    const maxSg = info.subgroupMaxSize ?? (this.ctx.adapter.limits as unknown as { maxSubgroupSize?: number }).maxSubgroupSize;
    const { cfg, why } = pickMatrixGemm(this.ctx.features, info.subgroupMatrixConfigs, maxSg);
    if (!cfg) { this.matrixGemm = { on: false, why }; return; }
    const t = matrixTemplate(cfg);
    const r = await this.checkHalfKernel(t);
    if (!r.ok) { this.matrixGemm = { on: false, why: `${cfg.label} refused: ${r.why}` }; return; }
    setHalfKernel(t);
    this.matrixGemm = { on: true, why: `${cfg.label}, checked against the host's product (${r.why})` };
  }

  /** One GEMM dispatch; in f16, after the f32 operands' largest magnitudes are found (for their scaling). */
  private gemm(kernel: (f16: boolean) => string, params: number[], buffers: (GpuStorage | null)[], a: [Storage, boolean], b: [Storage, boolean], groups: [number, number, number]): void {
    if (this.gemmArithmetic === 'f32') { this.run(kernel(false), params, buffers, groups); return; }
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    const sc = this.zeros('i32', 2) as GpuStorage;
    [a, b].forEach(([s, half], i) => {
      const n = (s as GpuStorage).n;
      if (!half) this.run(absMaxKernel, [n, i], [s as GpuStorage, sc], grid(ceilDiv(n, WG * ABSMAX_PER_THREAD)));
    });
    this.run(kernel(true), params, [...buffers, sc], groups);
    this.halfGemmDispatches++;
  }

  beginScope(): void { this.pool.beginScope(); }
  endScope(keep: Storage[]): void { this.pool.endScope(keep.flatMap((k) => (k instanceof GpuSplit ? k.blocks : [k]))); }
  /** Lets dead tensors' buffers return to the pool (a GC and one event-loop turn), if many were allocated. */
  collect(force = false): Promise<void> { return this.pool.collect(force); }

  /** Submits the recorded work. */
  flush(): void {
    this.endPass();
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.pending = 0;
    }
  }

  /** Waits until the device has finished everything submitted. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  private out(dtype: DType, n: number): GpuStorage { return this.pool.alloc(dtype, n); }

  /** Refuses a weight split across buffers where an op reads its input whole (before allocating the output). */
  private whole(...xs: (Storage | null)[]): void {
    for (const x of xs) if (x instanceof GpuSplit) throw splitUnsupported(x, this.pool.limitText());
  }

  private check(dtype: DType): void {
    if (dtype === 'f64') throw new Error('webgpu: f64 tensors are not supported on the GPU (they exist for gradient checks on the cpu backend)');
  }

  // ---- storage ----

  /**
   * Uploads host values. A tensor whose f32 form would exceed the binding limit (a weight: the
   * token embedding of SD's CLIP is 152 MB) is held in row blocks of its first axis, each under the
   * limit in f32 so that widening f16 storage block by block fits too.
   */
  fromArray(data: TypedArray, shape?: Shape): Storage {
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Uint16Array ? 'f16' : data instanceof Int32Array ? 'i32' : 'f64';
    this.check(dtype);
    if (shape && shape.length >= 2 && data.length && 4 * data.length > this.maxBinding) return this.split(data, shape, dtype);
    const s = this.out(dtype, data.length);
    this.upload(s, data);
    return s;
  }

  private split(data: TypedArray, shape: Shape, dtype: DType): GpuSplit {
    const rowLen = data.length / shape[0];
    const per = Math.floor(this.maxBinding / (4 * rowLen));
    if (per < 1) {
      throw new Error(`webgpu: a ${dtype} tensor of shape [${shape}] (${sizeText(byteSize(dtype, data.length))}) exceeds ${this.pool.limitText()}, and one row along its first axis (${sizeText(4 * rowLen)}) is already too large to split it across buffers`);
    }
    const blocks: GpuStorage[] = [], rows: number[] = [];
    for (let r = 0; r < shape[0]; r += per) {
      const n = Math.min(per, shape[0] - r);
      const b = this.out(dtype, n * rowLen);
      this.upload(b, data.subarray(r * rowLen, (r + n) * rowLen));
      blocks.push(b);
      rows.push(n);
    }
    return new GpuSplit(blocks, rows, rowLen, dtype);
  }

  /** How many GPU buffers hold a storage: 1, or the row blocks of a weight split across buffers. */
  bufferCount(s: Storage): number { return s instanceof GpuSplit ? s.blocks.length : 1; }

  private upload(s: GpuStorage, data: TypedArray): void {
    // Queue writes run before any not-yet-submitted dispatch, so submit those first.
    this.flush();
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 || !(bytes.buffer instanceof ArrayBuffer)) {
      const p = new Uint8Array(bytes.byteLength + ((4 - (bytes.byteLength % 4)) % 4));
      p.set(bytes);
      bytes = p;
    }
    if (bytes.byteLength) this.device.queue.writeBuffer(s.buffer, 0, bytes as Uint8Array<ArrayBuffer>);
  }

  /** Overwrites a storage's values in place (optimizer updates of trainable leaves). */
  assign(s: Storage, data: TypedArray): void {
    if (s instanceof GpuSplit) {
      if (data.length !== s.n) throw new Error(`webgpu assign: ${data.length} values for a storage of ${s.n}`);
      let o = 0;
      s.blocks.forEach((b) => { this.upload(b, data.subarray(o, o + b.n)); o += b.n; });
      return;
    }
    const g = s as GpuStorage;
    if (data.length !== g.n) throw new Error(`webgpu assign: ${data.length} values for a storage of ${g.n}`);
    this.upload(g, data);
  }

  zeros(dtype: DType, n: number): Storage {
    this.check(dtype);
    const s = this.out(dtype, n);
    this.endPass();
    this.enc().clearBuffer(s.buffer, 0, s.bytes); // byteSize() is a multiple of 4
    return s;
  }

  async read(st: Storage): Promise<TypedArray> {
    if (st instanceof GpuSplit) {
      const parts = await Promise.all(st.blocks.map((b) => this.read(b)));
      const all = allocArray(st.dtype, st.n);
      let o = 0;
      for (const p of parts) { all.set(p as never, o); o += p.length; }
      return all;
    }
    const s = st as GpuStorage;
    const size = s.bytes;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.enc().copyBufferToBuffer(s.buffer, 0, staging, 0, size);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const raw = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    switch (s.dtype) {
      case 'f16': return new Uint16Array(raw, 0, s.n);
      case 'i32': return new Int32Array(raw, 0, s.n);
      default: return new Float32Array(raw, 0, s.n);
    }
  }

  cast(st: Storage, to: DType): Storage {
    this.check(to);
    if (st instanceof GpuSplit) return st.dtype === to ? st : new GpuSplit(st.blocks.map((b) => this.cast(b, to) as GpuStorage), st.rows, st.rowLen, to);
    const s = st as GpuStorage;
    if (s.dtype === to) return s;
    const n = s.n;
    if (s.dtype === 'f16' && to === 'i32') return this.cast(this.cast(s, 'f32'), 'i32');
    if (s.dtype === 'i32' && to === 'f16') return this.cast(this.cast(s, 'f32'), 'f16');
    const y = this.out(to, n);
    const code = s.dtype === 'f16' ? EW.f16ToF32Kernel : to === 'f16' ? EW.f32ToF16Kernel : s.dtype === 'i32' ? EW.i32ToF32Kernel : EW.f32ToI32Kernel;
    const items = to === 'f16' ? ceilDiv(n, 2) : n;
    this.run(code, [n], [s, y], grid(ceilDiv(items, WG)));
    return y;
  }

  // ---- elementwise ----

  unary(op: UnaryOp, x: Storage, _dt: DType, n: number, p: number): Storage {
    this.whole(x);
    const y = this.out('f32', n);
    this.run(EW.unaryKernel(op), [n, fbits(p)], [x as GpuStorage, y], grid(ceilDiv(n, WG)));
    return y;
  }

  unaryGrad(op: UnaryOp, x: Storage, gy: Storage, _dt: DType, n: number, p: number): Storage {
    this.whole(x, gy);
    const y = this.out('f32', n);
    this.run(EW.unaryGradKernel(op), [n, fbits(p)], [x as GpuStorage, gy as GpuStorage, y], grid(ceilDiv(n, WG)));
    return y;
  }

  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, out: Shape): Storage {
    this.whole(a, b);
    const n = numel(out);
    const y = this.out('f32', n);
    if (sameShape(aShape, bShape)) {
      this.run(EW.binarySameKernel(op), [n], [a as GpuStorage, b as GpuStorage, y], grid(ceilDiv(n, WG)));
      return y;
    }
    const [shape, sa, sb] = collapse(out, [broadcastStrides(aShape, out), broadcastStrides(bShape, out)]);
    this.run(EW.binaryBroadcastKernel(op), [n, shape.length, ...pad6(shape), ...pad6(sa, 0), ...pad6(sb, 0)], [a as GpuStorage, b as GpuStorage, y], grid(ceilDiv(n, WG)));
    return y;
  }

  sumTo(x: Storage, shape: Shape, to: Shape): Storage {
    this.whole(x);
    const outputs = numel(to);
    const y = this.out('f32', outputs);
    if (shape.length > RANK) throw new Error(`webgpu sumTo: rank ${shape.length} > ${RANK}`);
    const reduced = shape.map((s, d) => (to[d] === 1 ? s : 1));
    const count = numel(reduced);
    this.run(EW.sumToKernel, [outputs, shape.length, ...pad6(to), ...pad6(stridesOf(shape), 0), ...pad6(reduced), count], [x as GpuStorage, y], grid(outputs));
    return y;
  }

  // ---- layout ----

  /** Runs a 32-bit word kernel on f16 data by widening it first. */
  private words<T extends Storage>(x: Storage, dtype: DType, fn: (x: GpuStorage, dt: DType) => T): Storage {
    if (dtype !== 'f16') return fn(x as GpuStorage, dtype);
    return this.cast(fn(this.cast(x, 'f32') as GpuStorage, 'f32'), 'f16');
  }

  private gather(x: GpuStorage, dt: DType, out: Shape, strides: number[], base: number): GpuStorage {
    const n = numel(out);
    const y = this.out(dt, n);
    const [shape, st] = collapse(out, [strides]);
    this.run(LK.gatherKernel, [n, shape.length, ...pad6(shape), ...pad6(st, 0), base], [x, y], grid(ceilDiv(n, WG)));
    return y;
  }

  permute(x: Storage, shape: Shape, perm: readonly number[], dtype: DType): Storage {
    this.whole(x);
    const st = stridesOf(shape);
    return this.words(x, dtype, (s, dt) => this.gather(s, dt, perm.map((p) => shape[p]), perm.map((p) => st[p]), 0));
  }

  slice(x: Storage, shape: Shape, starts: readonly number[], out: Shape, dtype: DType): Storage {
    this.whole(x);
    const st = stridesOf(shape);
    const base = starts.reduce((a, s, d) => a + s * st[d], 0);
    return this.words(x, dtype, (s, dt) => this.gather(s, dt, [...out], st, base));
  }

  sliceGrad(gy: Storage, shape: Shape, starts: readonly number[], gyShape: Shape): Storage {
    const n = numel(shape);
    const y = this.out('f32', n);
    if (shape.length > RANK) throw new Error(`webgpu sliceGrad: rank ${shape.length} > ${RANK}`);
    this.run(LK.padKernel, [n, shape.length, ...pad6(shape), ...pad6(starts, 0), ...pad6(gyShape), ...pad6(stridesOf(gyShape), 0)], [gy as GpuStorage, y], grid(ceilDiv(n, WG)));
    return y;
  }

  concat(xs: Storage[], shapes: Shape[], axis: number, dtype: DType): Storage {
    if (axis === 0 && xs.some((x) => x instanceof GpuSplit)) {
      // Rows appended to a split weight (textual-inversion vectors): the blocks are shared, each other part is one more block.
      const rowLen = numel(shapes[0].slice(1));
      const blocks: GpuStorage[] = [], rows: number[] = [];
      xs.forEach((x, k) => {
        if (x instanceof GpuSplit) { blocks.push(...x.blocks); rows.push(...x.rows); } else if (shapes[k][0]) { blocks.push(x as GpuStorage); rows.push(shapes[k][0]); }
      });
      return new GpuSplit(blocks, rows, rowLen, dtype);
    }
    this.whole(...xs);
    if (dtype === 'f16') return this.cast(this.concat(xs.map((x) => this.cast(x, 'f32')), shapes, axis, 'f32'), 'f16');
    const outShape = [...shapes[0]];
    outShape[axis] = shapes.reduce((a, s) => a + s[axis], 0);
    const y = this.out(dtype, numel(outShape));
    const ost = stridesOf(outShape);
    let offset = 0;
    xs.forEach((x, k) => {
      const n = numel(shapes[k]);
      const [shape, st] = collapse(shapes[k], [ost]);
      this.run(LK.scatterKernel, [n, shape.length, ...pad6(shape), ...pad6(st, 0), offset * ost[axis]], [x as GpuStorage, y], grid(ceilDiv(n, WG)));
      offset += shapes[k][axis];
    });
    return y;
  }

  // ---- products ----

  matmul(a: Storage, b: Storage, s: MatmulSpec): Storage {
    if (b instanceof GpuSplit && !(a instanceof GpuSplit)) return this.matmulSplit(a as GpuStorage, b, s);
    if (s.K === 0) return this.zeros('f32', s.batch * s.M * s.N);
    const y = this.out('f32', s.batch * s.M * s.N);
    this.gemm((h) => matmulKernel(s.transA, s.transB, !!s.bHalf, h), [s.M, s.N, s.K, +s.transA, +s.transB, s.aBatch === 1 ? 0 : s.M * s.K, s.bBatch === 1 ? 0 : s.K * s.N],
      [a as GpuStorage, b as GpuStorage, y], [a, false], [b, !!s.bHalf], [ceilDiv(s.N, TILE), ceilDiv(s.M, TILE), s.batch]);
    return y;
  }

  /**
   * b split in row blocks: linear's weight [out, in] (transB: blocks of output columns, concatenated
   * along the last axis) or [K, N] (its input gradient gy @ W: blocks of K, partial products summed).
   */
  private matmulSplit(a: GpuStorage, b: GpuSplit, s: MatmulSpec): Storage {
    const rowsTotal = b.rows.reduce((x, r) => x + r, 0);
    const ok = s.bBatch === 1 && (s.transB ? rowsTotal === s.N && b.rowLen === s.K : rowsTotal === s.K && b.rowLen === s.N);
    if (!ok) throw new Error(`webgpu: a matmul reads a weight split across ${b.blocks.length} buffers in a layout other than linear's ([out, in] rows); ${this.pool.limitText()} is too small for it in one`);
    const MB = s.batch * s.M;
    if (s.transB) {
      const ys = b.blocks.map((blk, k) => this.matmul(a, blk, { ...s, N: b.rows[k] }));
      return this.concat(ys, b.rows.map((r) => [MB, r]), 1, 'f32');
    }
    let y: Storage | null = null, k0 = 0;
    const aRows = s.aBatch * (s.transA ? s.K : s.M);
    b.blocks.forEach((blk, k) => {
      const kb = b.rows[k];
      // a's columns (or, transposed, rows) k0..k0+kb.
      const part = s.transA
        ? this.slice(a, [s.aBatch, s.K, s.M], [0, k0, 0], [s.aBatch, kb, s.M], 'f32')
        : this.slice(a, [aRows, s.K], [0, k0], [aRows, kb], 'f32');
      const yk = this.matmul(part, blk, { ...s, K: kb });
      y = y === null ? yk : this.binary('add', y, [MB, s.N], yk, [MB, s.N], [MB, s.N]);
      k0 += kb;
    });
    return y!;
  }

  private convParams(s: ConvShapes, M: number, N: number, K: number, hasBias: boolean): number[] {
    const [n, cin, h, w] = s.x, [cout, , kh, kw] = s.w, [, , oh, ow] = s.out;
    return [M, N, K, n, cin, h, w, cout, oh, ow, kh, kw, s.stride[0], s.stride[1], s.padding[0], s.padding[1], s.groups, +hasBias];
  }

  conv2d(x: Storage, w: Storage, bias: Storage | null, s: ConvShapes): Storage {
    this.whole(x, w, bias);
    const [n, cin] = s.x, [cout, , kh, kw] = s.w, [, , oh, ow] = s.out, g = s.groups;
    const M = cout / g, N = n * oh * ow, K = (cin / g) * kh * kw;
    const y = this.out('f32', numel(s.out));
    this.gemm((h) => convKernel(!!s.wHalf, h), this.convParams(s, M, N, K, bias !== null), [x as GpuStorage, w as GpuStorage, bias as GpuStorage | null, y], [w, !!s.wHalf], [x, false], [ceilDiv(N, TILE), ceilDiv(M, TILE), g]);
    return y;
  }

  conv2dGradInput(gy: Storage, w: Storage, s: ConvShapes): Storage {
    this.whole(w);
    const [n, cin, h, wd] = s.x, [cout, , kh, kw] = s.w, g = s.groups;
    const M = cin / g, N = n * h * wd, K = (cout / g) * kh * kw;
    const y = this.out('f32', numel(s.x));
    this.gemm((h) => convGradInputKernel(!!s.wHalf, h), this.convParams(s, M, N, K, false), [gy as GpuStorage, w as GpuStorage, y], [w, !!s.wHalf], [gy, false], [ceilDiv(N, TILE), ceilDiv(M, TILE), g]);
    return y;
  }

  conv2dGradWeight(gy: Storage, x: Storage, s: ConvShapes): Storage {
    const [n, cin] = s.x, [cout, , kh, kw] = s.w, [, , oh, ow] = s.out, g = s.groups;
    const M = cout / g, N = (cin / g) * kh * kw, K = n * oh * ow;
    const y = this.out('f32', numel(s.w));
    this.gemm(convGradWeightKernelOf, this.convParams(s, M, N, K, false), [gy as GpuStorage, x as GpuStorage, y], [gy, false], [x, false], [ceilDiv(N, TILE), ceilDiv(M, TILE), g]);
    return y;
  }

  // ---- normalization, softmax, attention ----

  norm(x: Storage, gamma: Storage | null, beta: Storage | null, L: NormLayout, eps: number, _dt?: DType, act: NormAct = 'none') {
    const y = this.out('f32', L.rows * L.size), mean = this.out('f32', L.rows), rstd = this.out('f32', L.rows);
    const b = gamma && !beta ? this.zeros('f32', L.channels) : beta;
    this.run(normKernel(this.subgroups), [L.rows, L.size, L.channels, L.inner, fbits(eps), gamma ? 1 : 0, +(act === 'silu')],
      [x as GpuStorage, gamma as GpuStorage | null, b as GpuStorage | null, y, mean, rstd], grid(L.rows));
    return { y, mean, rstd };
  }

  normGrad(gy: Storage, x: Storage, gamma: Storage | null, beta: Storage | null, mean: Storage, rstd: Storage, L: NormLayout, _dt?: DType, act: NormAct = 'none') {
    const dx = this.out('f32', L.rows * L.size);
    const b = (gamma && !beta ? this.zeros('f32', L.channels) : beta) as GpuStorage | null;
    const P = [L.rows, L.size, L.channels, L.inner, 0, gamma ? 1 : 0, +(act === 'silu')];
    const stats = [gy, x, gamma, b, mean, rstd] as (GpuStorage | null)[];
    this.run(normGradKernel(this.subgroups), P, [...stats, dx], grid(L.rows));
    if (!gamma) return { dx, dgamma: null, dbeta: null };
    const dgamma = this.out('f32', L.channels), dbeta = this.out('f32', L.channels);
    this.run(normAffineGradKernel(this.subgroups), [...P, (L.rows * L.size) / L.inner], [...stats, dgamma, dbeta], grid(L.channels));
    return { dx, dgamma, dbeta };
  }

  softmax(x: Storage, rows: number, cols: number): Storage {
    const y = this.out('f32', rows * cols);
    this.run(softmaxKernel(this.subgroups), [rows, cols], [x as GpuStorage, y], grid(rows));
    return y;
  }

  softmaxGrad(y: Storage, gy: Storage, rows: number, cols: number): Storage {
    const dx = this.out('f32', rows * cols);
    this.run(softmaxGradKernel(this.subgroups), [rows, cols], [y as GpuStorage, gy as GpuStorage, dx], grid(rows));
    return dx;
  }

  private attnParams(a: AttentionSpec): number[] { return [a.batch, a.lq, a.lk, fbits(a.scale), +a.causal]; }

  private attnForward(q: Storage, k: Storage, v: Storage, a: AttentionSpec) {
    const o = this.out('f32', a.batch * a.lq * a.dv), lse = this.out('f32', a.batch * a.lq);
    const h = this.gemmArithmetic === 'f16';
    if (h) this.halfAttentionDispatches++;
    this.run(attentionForwardKernel(a.d, a.dv, h), this.attnParams(a), [q as GpuStorage, k as GpuStorage, v as GpuStorage, o, lse], [ceilDiv(a.lq, ATTN_WG), a.batch, 1]);
    return { o, lse };
  }

  attention(q: Storage, k: Storage, v: Storage, a: AttentionSpec): Storage {
    return this.attnForward(q, k, v, a).o;
  }

  attentionGrad(q: Storage, k: Storage, v: Storage, gy: Storage, a: AttentionSpec) {
    const { o, lse } = this.attnForward(q, k, v, a);
    const rows = a.batch * a.lq;
    const delta = this.out('f32', rows);
    this.run(attentionDeltaKernel, [rows, a.dv], [gy as GpuStorage, o, delta], grid(ceilDiv(rows, WG)));
    const dq = this.out('f32', a.batch * a.lq * a.d), dk = this.out('f32', a.batch * a.lk * a.d), dv = this.out('f32', a.batch * a.lk * a.dv);
    const ins = [q, k, v, gy, lse, delta] as GpuStorage[];
    const h = this.gemmArithmetic === 'f16';
    if (h) this.halfAttentionDispatches += 2;
    this.run(attentionGradQKernel(a.d, a.dv, h), this.attnParams(a), [...ins, dq], [ceilDiv(a.lq, ATTN_WG), a.batch, 1]);
    this.run(attentionGradKVKernel(a.d, a.dv, h), this.attnParams(a), [...ins, dk, dv], [ceilDiv(a.lk, ATTN_WG), a.batch, 1]);
    return { dq, dk, dv };
  }

  // ---- resampling, embeddings ----

  upsampleNearest2x(x: Storage, shape: Shape): Storage {
    const [n, c, h, w] = shape;
    const total = n * c * h * w * 4;
    const y = this.out('f32', total);
    this.run(LK.upsampleKernel, [total, h, w], [x as GpuStorage, y], grid(ceilDiv(total, WG)));
    return y;
  }

  upsampleNearest2xGrad(gy: Storage, shape: Shape): Storage {
    const [n, c, h, w] = shape;
    const total = n * c * h * w;
    const y = this.out('f32', total);
    this.run(LK.upsampleGradKernel, [total, h, w], [gy as GpuStorage, y], grid(ceilDiv(total, WG)));
    return y;
  }

  embedding(ids: Storage, table: Storage, count: number, dim: number): Storage {
    if (table instanceof GpuSplit) {
      // Each block writes the rows of the ids in its range; the others are left as they are.
      const y = this.zeros('f32', count * dim) as GpuStorage;
      let r0 = 0;
      table.blocks.forEach((blk, k) => {
        this.run(LK.embeddingRangeKernel, [count * dim, dim, r0, table.rows[k]], [ids as GpuStorage, blk, y], grid(ceilDiv(count * dim, WG)));
        r0 += table.rows[k];
      });
      return y;
    }
    const y = this.out('f32', count * dim);
    this.run(LK.embeddingKernel, [count * dim, dim], [ids as GpuStorage, table as GpuStorage, y], grid(ceilDiv(count * dim, WG)));
    return y;
  }

  embeddingGrad(ids: Storage, gy: Storage, count: number, vocab: number, dim: number): Storage {
    if (4 * vocab * dim > this.maxBinding) {
      throw new Error(`webgpu: the gradient of a [${vocab}, ${dim}] embedding table (${sizeText(4 * vocab * dim)}) exceeds ${this.pool.limitText()}; a weight this large is split across buffers and can only be used frozen here`);
    }
    const y = this.zeros('f32', vocab * dim) as GpuStorage;
    this.run(LK.embeddingGradKernel, [dim, count], [ids as GpuStorage, gy as GpuStorage, y], grid(ceilDiv(dim, WG)));
    return y;
  }
}

function splitUnsupported(b: GpuSplit, limit: string): Error {
  return new Error(`webgpu: this op cannot read a ${b.dtype} weight held in ${b.blocks.length} buffers (it exceeds ${limit} in one); only embedding and linear/matmul read split weights, and only frozen`);
}

/**
 * Merges adjacent axes that are contiguous in the output and in every operand, so ranks above 6
 * (and long index loops) shrink to what the kernels handle.
 */
export function collapse(shape: Shape, strides: number[][]): [number[], ...number[][]] {
  const s: number[] = [], st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && strides.every((a, k) => st[k][last] === a[d] * shape[d])) {
      s[last] *= shape[d];
      strides.forEach((a, k) => { st[k][last] = a[d]; });
    } else {
      s.push(shape[d]);
      strides.forEach((a, k) => st[k].push(a[d]));
    }
  }
  if (!s.length) { s.push(1); st.forEach((a) => a.push(0)); }
  if (s.length > RANK) throw new Error(`webgpu: a rank-${s.length} strided access is more than the kernels' ${RANK} axes`);
  return [s, ...st];
}

let backendPromise: Promise<WebGPUBackend> | null = null;

/** The process-wide webgpu backend; rejects with a clear message when no adapter exists. */
export function getWebGPUBackend(): Promise<WebGPUBackend> {
  backendPromise ??= Promise.all([gpuContext(), findGc()]).then(async ([ctx, gc]) => {
    const be = new WebGPUBackend(ctx, gc);
    await be.enableMatrixGemm();
    return be;
  });
  backendPromise.catch(() => { backendPromise = null; });
  return backendPromise;
}
