// One tiled GEMM template serves matmul and all three conv2d passes. A 16x16 workgroup computes a
// 64x64 tile of C, each invocation a 4x4 register block, with 16-deep slices of A and B staged in
// workgroup memory. The operands are never materialized as matrices: each variant supplies
// loadA(z, m, k), loadB(z, k, n) and store(z, m, n, v), so conv2d is an implicit GEMM (the im2col
// gather happens while filling the B tile). grid: x = N tiles, y = M tiles, z = batch or group.
import { PARAMS } from './common.js';

export const TILE = 64;

/**
 * Tile-load order: neighbouring invocations should read neighbouring addresses. By default A is
 * walked along k and B along n (row-major [M, K] and [K, N]); aMFast / bKFast switch to the
 * transposed layouts ([K, M] A, [N, K] B: the weights of a linear layer).
 */
interface LoadOrder { aMFast?: boolean; bKFast?: boolean; half?: boolean }

/** Builds an f16 GEMM kernel from the variant's bindings and loaders (halfTemplate or matrixTemplate). */
export type HalfTemplate = (decls: string, loaders: string, order: LoadOrder) => string;
/** The f16 GEMM every half dispatch uses: halfTemplate, or a subgroup-matrix one once it passed its check. */
let halfKernel: HalfTemplate | null = null;
/** Installs the f16 GEMM template (null: halfTemplate). Returns the previous one. */
export function setHalfKernel(t: HalfTemplate | null): HalfTemplate | null { const prev = halfKernel; halfKernel = t; return prev; }

const template = (decls: string, loaders: string, order: LoadOrder = {}) => order.half ? (halfKernel ?? halfTemplate)(decls, loaders, order) : `${PARAMS}${decls}
const TK = 16u;
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;
${loaders}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let M = P[0]; let N = P[1]; let K = P[2]; let z = w.z;
  let m0 = w.y * 64u; let n0 = w.x * 64u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var e = li; e < 1024u; e += 256u) {
      ${order.aMFast ? 'let kk = e / 64u; let mm = e % 64u;' : 'let kk = e % 16u; let mm = e / 16u;'}
      let m = m0 + mm; let k = k0 + kk;
      As[kk * 64u + mm] = select(0.0, loadA(z, m, k), m < M && k < K);
      ${order.bKFast ? 'let nn = e / 16u; let kb = e % 16u;' : 'let nn = e % 64u; let kb = e / 64u;'}
      let n = n0 + nn; let k2 = k0 + kb;
      Bs[kb * 64u + nn] = select(0.0, loadB(z, k2, n), n < N && k2 < K);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>; var b: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { a[r] = As[kk * 64u + lid.y + 16u * r]; b[r] = Bs[kk * 64u + lid.x + 16u * r]; }
      for (var r = 0u; r < 4u; r++) { for (var c = 0u; c < 4u; c++) { acc[r * 4u + c] = fma(a[r], b[c], acc[r * 4u + c]); } }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    for (var c = 0u; c < 4u; c++) {
      let m = m0 + lid.y + 16u * r; let n = n0 + lid.x + 16u * c;
      if (m < M && n < N) { store(z, m, n, acc[r * 4u + c]); }
    }
  }
}`;

// Pieces of the two f16 templates (halfTemplate, matrixTemplate).
// The power of two that brings a largest magnitude (f32 bits) into [2^14, 2^15); 0 for none.
const SCALE_EXP = `fn scaleExp(bits: u32) -> i32 {
  if (bits == 0u || bits >= 0x7f800000u) { return 0; }
  return clamp(14 - (i32(bits >> 23u) - 127), -60, 60);
}`;
/** The operands' scales from their largest magnitudes in SC, and the product's inverse. */
const SCALES = `let ea = scaleExp(SC[0]); let eb = scaleExp(SC[1]);
  let sa = ldexp(1.0, ea); let sb = ldexp(1.0, eb); let unscale = ldexp(1.0, -(ea + eb));`;
/** 256 invocations fill the 32-deep f16 slices of A ([kk][mm]) and B ([kb][nn]) from the scaled operands. */
const stageHalf = (order: LoadOrder) => `for (var e = li; e < 2048u; e += 256u) {
      ${order.aMFast ? 'let kk = e / 64u; let mm = e % 64u;' : 'let kk = e % 32u; let mm = e / 32u;'}
      let m = m0 + mm; let k = k0 + kk;
      As[kk * 64u + mm] = f16(select(0.0, loadA(z, m, k) * sa, m < M && k < K));
      ${order.bKFast ? 'let nn = e / 32u; let kb = e % 32u;' : 'let nn = e % 64u; let kb = e / 64u;'}
      let n = n0 + nn; let k2 = k0 + kb;
      Bs[kb * 64u + nn] = f16(select(0.0, loadB(z, k2, n) * sb, n < N && k2 < K));
    }`;

/**
 * The f16 variant (mixed precision fp16 on a device with shader-f16): the same 64x64 tile and 4x4
 * register block, but the A and B slices are held in workgroup memory as f16, which halves their
 * size, so the K slice is 32 deep (8 KiB of workgroup memory, as the f32 kernel's 16-deep one).
 * Products are formed from the f16 operands and accumulated in f32 (the tensor-core convention:
 * a product of two f16 values is exact in f32), and the result is written as f32.
 *
 * Range: every f32 operand is scaled by a power of two before it is rounded to f16, so that its
 * largest magnitude lands in [2^14, 2^15) (f16 holds up to 65504): gradients of 1e-6 would
 * otherwise be f16 subnormals or zero, and large activations would overflow. absMaxKernel writes
 * the operands' largest magnitudes (as f32 bits) to SC[0] (A) and SC[1] (B) beforehand; 0 there
 * (an f16 operand, already in range) means no scaling. The result is multiplied back by the exact
 * inverse power of two, so scaling changes nothing but which values survive the rounding.
 */
export const halfTemplate: HalfTemplate = (decls, loaders, order) => `enable f16;
${PARAMS}${decls}
const TK = 32u;
var<workgroup> As: array<f16, 2048>;
var<workgroup> Bs: array<f16, 2048>;
${loaders}
${SCALE_EXP}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let M = P[0]; let N = P[1]; let K = P[2]; let z = w.z;
  let m0 = w.y * 64u; let n0 = w.x * 64u;
  ${SCALES}
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    ${stageHalf(order)}
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>; var b: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { a[r] = f32(As[kk * 64u + lid.y + 16u * r]); b[r] = f32(Bs[kk * 64u + lid.x + 16u * r]); }
      for (var r = 0u; r < 4u; r++) { for (var c = 0u; c < 4u; c++) { acc[r * 4u + c] = fma(a[r], b[c], acc[r * 4u + c]); } }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    for (var c = 0u; c < 4u; c++) {
      let m = m0 + lid.y + 16u * r; let n = n0 + lid.x + 16u * c;
      if (m < M && n < N) { store(z, m, n, acc[r * 4u + c] * unscale); }
    }
  }
}`;

/**
 * A subgroup-matrix (tensor core) configuration the f16 GEMM can use: S x S x S products of f16
 * operands into f32 results, each subgroup holding `tiles` result matrices of the 64x64 tile.
 */
export interface MatrixGemm { S: number; tiles: number; label: string }
/** One entry of GPUAdapterInfo.subgroupMatrixConfigs. */
export interface SubgroupMatrixConfig { M: number; N: number; K: number; componentType: string; resultComponentType: string }

/**
 * The subgroup-matrix configuration for the f16 GEMM on an adapter, or why there is none: the
 * chromium-experimental-subgroup-matrix and shader-f16 features, a square 16 (preferred) or 8
 * config with f16 components and f32 results (f16 results would accumulate in f16), a largest
 * subgroup that divides the 256 invocations, and SDLORA_WEBGPU_SUBGROUP_MATRIX not 0.
 */
export function pickMatrixGemm(features: Iterable<string>, configs: SubgroupMatrixConfig[] | undefined, maxSubgroupSize: number | undefined): { cfg: MatrixGemm | null; why: string } {
  const f = [...features];
  if (!switchOn('SDLORA_WEBGPU_SUBGROUP_MATRIX')) return { cfg: null, why: 'SDLORA_WEBGPU_SUBGROUP_MATRIX=0' };
  if (!f.includes('chromium-experimental-subgroup-matrix')) return { cfg: null, why: 'no chromium-experimental-subgroup-matrix' };
  if (!f.includes('shader-f16')) return { cfg: null, why: 'no shader-f16' };
  const all = configs ?? [];
  const ok = all.filter((c) => c.M === c.N && c.N === c.K && (c.M === 8 || c.M === 16) && c.componentType === 'f16' && c.resultComponentType === 'f32');
  if (!ok.length) {
    const list = all.map((c) => `${c.M}x${c.N}x${c.K} ${c.componentType}->${c.resultComponentType}`).join(', ') || 'none';
    return { cfg: null, why: `no square 8 or 16 f16->f32 config (adapter lists ${list})` };
  }
  const sg = maxSubgroupSize ?? 0;
  if (!(sg > 0 && sg <= 256 && 256 % sg === 0)) return { cfg: null, why: `largest subgroup ${maxSubgroupSize ?? 'unknown'} does not divide a 256-invocation workgroup` };
  const S = Math.max(...ok.map((c) => c.M));
  // (64 / S)^2 result matrices over at least 256 / sg subgroups.
  const tiles = Math.ceil(((64 / S) ** 2 * sg) / 256);
  return { cfg: { S, tiles, label: `${S}x${S}x${S} f16->f32` }, why: 'chromium-experimental-subgroup-matrix' };
}

/**
 * The f16 GEMM on subgroup matrices: halfTemplate's 64x64 tile, 32-deep f16 slices of A and B in
 * workgroup memory and power-of-two operand scaling, with the products formed by subgroup matrix
 * multiply-accumulates (tensor cores) instead of each invocation's 4x4 block. The workgroup is 256
 * invocations in x (subgroup matrices need x to be a multiple of the largest subgroup); the f32
 * result leaves through workgroup memory, 32 rows at a time (8 KiB, keeping the total at 16 KiB).
 * The adapter this is meant for was not available to the project: the backend enables it only
 * after it compiled and matched the f16 GEMM on the device (WebGPUBackend.checkMatrixGemm).
 */
export const matrixTemplate = (cfg: MatrixGemm): HalfTemplate => (decls, loaders, order) => `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
requires subgroup_id;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
${PARAMS}${decls}
const TK = 32u;
const S = ${cfg.S}u;
const PER_ROW = ${64 / cfg.S}u;
const TILES = ${(64 / cfg.S) ** 2}u;
var<workgroup> As: array<f16, 2048>;
var<workgroup> Bs: array<f16, 2048>;
var<workgroup> Cs: array<f32, 2048>;
${loaders}
${SCALE_EXP}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32) {
  let M = P[0]; let N = P[1]; let K = P[2]; let z = w.z;
  let m0 = w.y * 64u; let n0 = w.x * 64u;
  ${SCALES}
  var acc: array<subgroup_matrix_result<f32, ${cfg.S}, ${cfg.S}>, ${cfg.tiles}>;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    ${stageHalf(order)}
    workgroupBarrier();
    for (var i = 0u; i < ${cfg.tiles}u; i++) {
      let t = sg + i * nsg;
      if (t < TILES) {
        let tm = (t / PER_ROW) * S; let tn = (t % PER_ROW) * S;
        for (var kk = 0u; kk < TK; kk += S) {
          // A's slice is k-major (element (m, k) at k * 64 + m: column-major), B's row-major.
          let a = subgroupMatrixLoad<subgroup_matrix_left<f16, ${cfg.S}, ${cfg.S}>>(&As, kk * 64u + tm, true, 64u);
          let b = subgroupMatrixLoad<subgroup_matrix_right<f16, ${cfg.S}, ${cfg.S}>>(&Bs, kk * 64u + tn, false, 64u);
          acc[i] = subgroupMatrixMultiplyAccumulate(a, b, acc[i]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var part = 0u; part < 2u; part++) {
    for (var i = 0u; i < ${cfg.tiles}u; i++) {
      let t = sg + i * nsg;
      let tm = (t / PER_ROW) * S; let tn = (t % PER_ROW) * S;
      if (t < TILES && tm / 32u == part) { subgroupMatrixStore(&Cs, (tm % 32u) * 64u + tn, acc[i], false, 64u); }
    }
    workgroupBarrier();
    for (var e = li; e < 2048u; e += 256u) {
      let m = m0 + part * 32u + e / 64u; let n = n0 + e % 64u;
      if (m < M && n < N) { store(z, m, n, Cs[e] * unscale); }
    }
    workgroupBarrier();
  }
}`;

/** Largest |x| of an f32 operand, as f32 bits, atomically maxed into S[P[1]] (P[0] = n). */
export const ABSMAX_PER_THREAD = 8;
export const absMaxKernel = `${PARAMS}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<atomic<u32>>;
var<workgroup> wm: atomic<u32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) l: u32) {
  let g = w.y * nw.x + w.x;
  var mx = 0u;
  for (var j = 0u; j < ${ABSMAX_PER_THREAD}u; j++) {
    let i = (g * ${ABSMAX_PER_THREAD}u + j) * 256u + l;
    if (i < P[0]) { mx = max(mx, bitcast<u32>(abs(X[i]))); }
  }
  atomicMax(&wm, mx);
  workgroupBarrier();
  if (l == 0u) { atomicMax(&S[P[1]], atomicLoad(&wm)); }
}`;

/**
 * An on/off environment switch that defaults to on: unset, empty or 1 is on, 0 is off; anything
 * else (off, false, no) is refused by name rather than read as on.
 */
function switchOn(name: string): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  if (v === undefined || v.trim() === '' || v.trim() === '1') return true;
  if (v.trim() === '0') return false;
  throw new Error(`${name}=${v}: expected 0 (off) or 1 (on)`);
}

/**
 * Whether the GEMMs may run the f16 variant on a device with these features: shader-f16 present
 * and SDLORA_WEBGPU_F16 not 0. (They then do so only while a run computes under mixed precision
 * fp16; see WebGPUBackend.setHalfCompute.)
 */
export function halfGemmSupport(features: Iterable<string>): { ok: boolean; why: string } {
  if (!switchOn('SDLORA_WEBGPU_F16')) return { ok: false, why: 'SDLORA_WEBGPU_F16=0' };
  if (![...features].includes('shader-f16')) return { ok: false, why: 'no shader-f16' };
  return { ok: true, why: 'shader-f16' };
}

/**
 * Bindings; an input named in `half` holds f16 pairs (frozen weights kept in half precision are read
 * in place: no f32 copy is made). Each input X gets an accessor at_X(i) clamped to the buffer.
 */
const IO = (ins: string[], out: string, half: string[] = [], scaled = false) =>
  ins.map((n, i) => {
    const h = half.includes(n);
    const decl = `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<${h ? 'u32' : 'f32'}>;\n`;
    const at = h
      ? `fn at_${n}(i: u32) -> f32 { let j = min(i, 2u * arrayLength(&${n}) - 1u); let v = unpack2x16float(${n}[j >> 1u]); return select(v.x, v.y, (j & 1u) == 1u); }\n`
      : `fn at_${n}(i: u32) -> f32 { return ${n}[min(i, arrayLength(&${n}) - 1u)]; }\n`;
    return decl + at;
  }).join('') +
  `@group(0) @binding(${ins.length + 1}) var<storage, read_write> ${out}: array<f32>;\n` +
  (scaled ? `@group(0) @binding(${ins.length + 2}) var<storage, read> SC: array<u32>;\n` : '');

/**
 * Batched matmul. Loaders index with clamped coordinates: the select() above discards the value
 * of out-of-range elements, but the read itself must stay inside the buffer.
 * P: [M, N, K, transA, transB, a batch stride, b batch stride].
 */
export const matmulKernel = (transA: boolean, transB: boolean, bHalf: boolean, f16 = false) => template(IO(['A', 'B'], 'C', bHalf ? ['B'] : [], f16), `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let mm = min(m, P[0] - 1u); let kk = min(k, P[2] - 1u);
  return at_A(z * P[5] + select(mm * P[2] + kk, kk * P[0] + mm, P[3] == 1u));
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let nn = min(n, P[1] - 1u); let kk = min(k, P[2] - 1u);
  return at_B(z * P[6] + select(kk * P[1] + nn, nn * P[2] + kk, P[4] == 1u));
}
fn store(z: u32, m: u32, n: u32, v: f32) { C[(z * P[0] + m) * P[1] + n] = v; }`, { aMFast: transA, bKFast: transB, half: f16 });

// Conv parameters shared by the three passes, after M, N, K:
// P[3..]: Nimg, Cin, H, W, Cout, OH, OW, KH, KW, strideH, strideW, padH, padW, groups, hasBias.
const CONV_P = `
fn nimg() -> u32 { return P[3]; } fn cin() -> u32 { return P[4]; } fn hgt() -> u32 { return P[5]; } fn wid() -> u32 { return P[6]; }
fn cout() -> u32 { return P[7]; } fn oh_() -> u32 { return P[8]; } fn ow_() -> u32 { return P[9]; }
fn kh_() -> u32 { return P[10]; } fn kw_() -> u32 { return P[11]; }
fn sh() -> i32 { return i32(P[12]); } fn sw() -> i32 { return i32(P[13]); } fn ph() -> i32 { return i32(P[14]); } fn pw() -> i32 { return i32(P[15]); }
fn cing() -> u32 { return P[4] / P[16]; } fn coutg() -> u32 { return P[7] / P[16]; }
// x[img, z * Cin/g + ci, oh * s - p + kh, ow * s - p + kw], zero outside the image.
fn xAt(z: u32, img: u32, ci: u32, oh: u32, ow: u32, kh: u32, kw: u32) -> f32 {
  let ih = i32(oh) * sh() - ph() + i32(kh); let iw = i32(ow) * sw() - pw() + i32(kw);
  let ok = ih >= 0 && iw >= 0 && ih < i32(hgt()) && iw < i32(wid()) && img < nimg();
  let idx = ((min(img, nimg() - 1u) * cin() + z * cing() + ci) * hgt() + u32(clamp(ih, 0, i32(hgt()) - 1))) * wid() + u32(clamp(iw, 0, i32(wid()) - 1));
  return select(0.0, X[idx], ok);
}`;

/** Forward: M = Cout/g, N = Nimg*OH*OW, K = Cin/g*KH*KW. */
export const convKernel = (wHalf: boolean, f16 = false) => template(IO(['X', 'Wt', 'BIAS'], 'Y', wHalf ? ['Wt'] : [], f16) + CONV_P, `
fn loadA(z: u32, m: u32, k: u32) -> f32 { return at_Wt((z * coutg() + m) * P[2] + k); }
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = kh_() * kw_(); let ci = k / khw; let r = k % khw;
  let ohw = oh_() * ow_(); let img = n / ohw; let p = n % ohw;
  return xAt(z, img, min(ci, cing() - 1u), p / ow_(), p % ow_(), r / kw_(), r % kw_());
}
fn store(z: u32, m: u32, n: u32, v: f32) {
  let co = z * coutg() + m; let ohw = oh_() * ow_();
  Y[((n / ohw) * cout() + co) * ohw + n % ohw] = v + select(0.0, at_BIAS(co), P[17] == 1u);
}`, { half: f16 });

/** Input gradient: M = Cin/g, N = Nimg*H*W, K = Cout/g*KH*KW; dY read where (i + p - k) / s lands on an output. */
export const convGradInputKernel = (wHalf: boolean, f16 = false) => template(IO(['GY', 'Wt'], 'DX', wHalf ? ['Wt'] : [], f16) + CONV_P.replace(/fn xAt[\s\S]*$/, ''), `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let khw = kh_() * kw_();
  return at_Wt(((z * coutg() + k / khw) * cing() + m) * khw + k % khw);
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = kh_() * kw_(); let co = k / khw; let r = k % khw;
  let hw = hgt() * wid(); let img = n / hw; let p = n % hw;
  let th = i32(p / wid()) + ph() - i32(r / kw_()); let tw = i32(p % wid()) + pw() - i32(r % kw_());
  let oh = th / sh(); let ow = tw / sw();
  let ok = th >= 0 && tw >= 0 && th % sh() == 0 && tw % sw() == 0 && oh < i32(oh_()) && ow < i32(ow_()) && img < nimg() && co < coutg();
  let idx = ((min(img, nimg() - 1u) * cout() + z * coutg() + min(co, coutg() - 1u)) * oh_() + u32(clamp(oh, 0, i32(oh_()) - 1))) * ow_() + u32(clamp(ow, 0, i32(ow_()) - 1));
  return select(0.0, GY[idx], ok);
}
fn store(z: u32, m: u32, n: u32, v: f32) {
  let hw = hgt() * wid();
  DX[((n / hw) * cin() + z * cing() + m) * hw + n % hw] = v;
}`, { half: f16 });

/** Weight gradient: M = Cout/g, N = Cin/g*KH*KW, K = Nimg*OH*OW. */
export const convGradWeightKernelOf = (f16: boolean) => template(IO(['GY', 'X'], 'DW', [], f16) + CONV_P, `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let ohw = oh_() * ow_();
  return at_GY(((k / ohw) * cout() + z * coutg() + m) * ohw + k % ohw);
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = kh_() * kw_(); let ci = n / khw; let r = n % khw;
  let ohw = oh_() * ow_(); let img = k / ohw; let p = k % ohw;
  return xAt(z, img, min(ci, cing() - 1u), p / ow_(), p % ow_(), r / kw_(), r % kw_());
}
fn store(z: u32, m: u32, n: u32, v: f32) { DW[(z * coutg() + m) * P[1] + n] = v; }`, { half: f16 });
export const convGradWeightKernel = convGradWeightKernelOf(false);
