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
interface LoadOrder { aMFast?: boolean; bKFast?: boolean }

const template = (decls: string, loaders: string, order: LoadOrder = {}) => `${PARAMS}${decls}
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

/**
 * Bindings; an input named in `half` holds f16 pairs (frozen weights kept in half precision are read
 * in place: no f32 copy is made). Each input X gets an accessor at_X(i) clamped to the buffer.
 */
const IO = (ins: string[], out: string, half: string[] = []) =>
  ins.map((n, i) => {
    const h = half.includes(n);
    const decl = `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<${h ? 'u32' : 'f32'}>;\n`;
    const at = h
      ? `fn at_${n}(i: u32) -> f32 { let j = min(i, 2u * arrayLength(&${n}) - 1u); let v = unpack2x16float(${n}[j >> 1u]); return select(v.x, v.y, (j & 1u) == 1u); }\n`
      : `fn at_${n}(i: u32) -> f32 { return ${n}[min(i, arrayLength(&${n}) - 1u)]; }\n`;
    return decl + at;
  }).join('') +
  `@group(0) @binding(${ins.length + 1}) var<storage, read_write> ${out}: array<f32>;\n`;

/**
 * Batched matmul. Loaders index with clamped coordinates: the select() above discards the value
 * of out-of-range elements, but the read itself must stay inside the buffer.
 * P: [M, N, K, transA, transB, a batch stride, b batch stride].
 */
export const matmulKernel = (transA: boolean, transB: boolean, bHalf: boolean) => template(IO(['A', 'B'], 'C', bHalf ? ['B'] : []), `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let mm = min(m, P[0] - 1u); let kk = min(k, P[2] - 1u);
  return at_A(z * P[5] + select(mm * P[2] + kk, kk * P[0] + mm, P[3] == 1u));
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let nn = min(n, P[1] - 1u); let kk = min(k, P[2] - 1u);
  return at_B(z * P[6] + select(kk * P[1] + nn, nn * P[2] + kk, P[4] == 1u));
}
fn store(z: u32, m: u32, n: u32, v: f32) { C[(z * P[0] + m) * P[1] + n] = v; }`, { aMFast: transA, bKFast: transB });

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
export const convKernel = (wHalf: boolean) => template(IO(['X', 'Wt', 'BIAS'], 'Y', wHalf ? ['Wt'] : []) + CONV_P, `
fn loadA(z: u32, m: u32, k: u32) -> f32 { return at_Wt((z * coutg() + m) * P[2] + k); }
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = kh_() * kw_(); let ci = k / khw; let r = k % khw;
  let ohw = oh_() * ow_(); let img = n / ohw; let p = n % ohw;
  return xAt(z, img, min(ci, cing() - 1u), p / ow_(), p % ow_(), r / kw_(), r % kw_());
}
fn store(z: u32, m: u32, n: u32, v: f32) {
  let co = z * coutg() + m; let ohw = oh_() * ow_();
  Y[((n / ohw) * cout() + co) * ohw + n % ohw] = v + select(0.0, at_BIAS(co), P[17] == 1u);
}`);

/** Input gradient: M = Cin/g, N = Nimg*H*W, K = Cout/g*KH*KW; dY read where (i + p - k) / s lands on an output. */
export const convGradInputKernel = (wHalf: boolean) => template(IO(['GY', 'Wt'], 'DX', wHalf ? ['Wt'] : []) + CONV_P.replace(/fn xAt[\s\S]*$/, ''), `
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
}`);

/** Weight gradient: M = Cout/g, N = Cin/g*KH*KW, K = Nimg*OH*OW. */
export const convGradWeightKernel = template(IO(['GY', 'X'], 'DW') + CONV_P, `
fn loadA(z: u32, m: u32, k: u32) -> f32 {
  let ohw = oh_() * ow_();
  return at_GY(((k / ohw) * cout() + z * coutg() + m) * ohw + k % ohw);
}
fn loadB(z: u32, k: u32, n: u32) -> f32 {
  let khw = kh_() * kw_(); let ci = n / khw; let r = n % khw;
  let ohw = oh_() * ow_(); let img = k / ohw; let p = k % ohw;
  return xAt(z, img, min(ci, cing() - 1u), p / ow_(), p % ow_(), r / kw_(), r % kw_());
}
fn store(z: u32, m: u32, n: u32, v: f32) { DW[(z * coutg() + m) * P[1] + n] = v; }`);
