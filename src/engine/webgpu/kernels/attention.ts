// Flash-style attention: one invocation per query (or per key in the backward), keys/values (or
// queries) streamed through workgroup memory in tiles, online softmax. No [Lq, Lk] buffer exists
// in either direction; the backward recomputes probabilities from the saved log-sum-exp.
// Head sizes are compiled in (register arrays), so each (d, dv) pair is its own pipeline.
// With `half` (mixed precision fp16 on a device with shader-f16), Q, K and V are rounded to f16:
// the K/V (or Q) tiles are f16 in workgroup memory (twice the rows), QK^T and PV take f16 operands
// (their products are exact in f32) and accumulate in f32; the softmax statistics, the output
// gradient dO and everything derived from it stay f32 (gradients would underflow in f16). The
// backward recomputes the logits from the same f16-rounded Q and K, so it is the gradient of the
// rounded forward.
import { FLAT_MAIN, PARAMS, bindings } from './common.js';

export const ATTN_WG = 64;

/** Rows of a tile that fit 16 KiB of workgroup memory (the WebGPU default limit). */
export const tileRows = (floatsPerRow: number) => Math.max(1, Math.min(64, Math.floor(4096 / floatsPerRow)));

// P: [batch, lq, lk, scale, causal]
const HEAD = (d: number, dv: number, tile: number, half: boolean) => `${half ? `enable f16;\n${R16}` : ''}${PARAMS}
const D = ${d}u; const DV = ${dv}u; const T = ${tile}u; const WGS = ${ATTN_WG}u;
alias TT = ${half ? 'f16' : 'f32'};
var<workgroup> Kt: array<TT, ${tile * d}>;
var<workgroup> Vt: array<TT, ${tile * dv}>;
fn dotRow(a: ptr<function, array<f32, ${d}>>, b: u32) -> f32 { var s = 0.0; for (var c = 0u; c < D; c++) { s = fma((*a)[c], f32(Kt[b * D + c]), s); } return s; }
`;
/**
 * Rounding to f16 (to nearest, ties to even; subnormals; overflow to infinity) of a value kept in
 * an f32 register. Spelled out because a compiler may fold f32(f16(x)) back to x (Mesa's does), so
 * only values stored in f16 arrays are reliably rounded by a conversion.
 */
const R16 = `fn r16(x: f32) -> f32 {
  if (abs(x) < 6.103515625e-5) { return round(x * 16777216.0) / 16777216.0; }
  let b = bitcast<u32>(x);
  let r = bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u);
  return select(r, bitcast<f32>((b & 0x80000000u) | 0x7f800000u), abs(r) > 65504.0);
}
`;
/** A loaded value as the kernel computes with it: rounded to f16 in the half variant. */
const rnd = (half: boolean, v: string) => (half ? `r16(${v})` : v);
/** Tile rows for the half variant's f16 rows. */
const halfRows = (half: boolean, f16s: number, f32s: number) => tileRows(Math.ceil((half ? f16s / 2 : f16s) + f32s));

/**
 * The per-query loop over keys: tiles of K and V are loaded by the whole workgroup, then each
 * valid query runs `perKey` for key t0 + jj (keys after the query skipped when causal).
 */
const streamKeys = (perKey: string) => `
  let kEnd = select(lk, min(lk, (w.x + 1u) * WGS), causal);
  for (var t0 = 0u; t0 < kEnd; t0 += T) {
    workgroupBarrier();
    for (var e = l; e < T * D; e += WGS) { let j = t0 + e / D; if (j < lk) { Kt[e] = TT(K[(b * lk + j) * D + e % D]); } }
    for (var e = l; e < T * DV; e += WGS) { let j = t0 + e / DV; if (j < lk) { Vt[e] = TT(V[(b * lk + j) * DV + e % DV]); } }
    workgroupBarrier();
    if (valid) {
      let tEnd = min(T, kEnd - t0);
      for (var jj = 0u; jj < tEnd; jj++) {
        if (causal && t0 + jj > i) { break; }${perKey}
      }
    }
  }`;

/** Output and (for the backward) the log-sum-exp of each query row. */
export const attentionForwardKernel = (d: number, dv: number, half = false) => {
  const t = halfRows(half, d + dv, 0);
  return HEAD(d, dv, t, half) + bindings(['Q', 'K', 'V'], ['O', 'LSE']) + `
@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_index) l: u32) {
  let b = w.y; let lq = P[1]; let lk = P[2]; let scale = pf(3u); let causal = P[4] == 1u;
  let i = w.x * WGS + l;
  let valid = i < lq;
  var q: array<f32, ${d}>;
  if (valid) { for (var c = 0u; c < D; c++) { q[c] = ${rnd(half, 'Q[(b * lq + i) * D + c]')}; } }
  var acc: array<f32, ${dv}>;
  var m = -3.0e38; var s = 0.0;
${streamKeys(`
        let x = dotRow(&q, jj) * scale;
        let mn = max(m, x);
        let corr = exp(m - mn); let p = exp(x - mn);
        s = s * corr + p;
        let pv = ${rnd(half, 'p')};
        for (var c = 0u; c < DV; c++) { acc[c] = fma(pv, f32(Vt[jj * DV + c]), acc[c] * corr); }
        m = mn;`)}
  if (!valid) { return; }
  for (var c = 0u; c < DV; c++) { O[(b * lq + i) * DV + c] = acc[c] / s; }
  LSE[b * lq + i] = m + log(s);
}`;
};

/** Delta[i] = dO[i] . O[i]. P: [rows, dv]. */
export const attentionDeltaKernel = PARAMS + bindings(['GO', 'O'], ['DELTA']) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  var s = 0.0;
  for (var c = 0u; c < P[1]; c++) { s = fma(GO[i * P[1] + c], O[i * P[1] + c], s); }
  DELTA[i] = s;`);

/** dQ: per query, stream keys and values. */
export const attentionGradQKernel = (d: number, dv: number, half = false) => {
  const t = halfRows(half, d + dv, 0);
  return HEAD(d, dv, t, half) + bindings(['Q', 'K', 'V', 'GO', 'LSE', 'DELTA'], ['DQ']) + `
@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_index) l: u32) {
  let b = w.y; let lq = P[1]; let lk = P[2]; let scale = pf(3u); let causal = P[4] == 1u;
  let i = w.x * WGS + l;
  let valid = i < lq;
  let row = b * lq + min(i, lq - 1u);
  var q: array<f32, ${d}>; var go: array<f32, ${dv}>; var dq: array<f32, ${d}>;
  for (var c = 0u; c < D; c++) { q[c] = ${rnd(half, 'Q[row * D + c]')}; }
  for (var c = 0u; c < DV; c++) { go[c] = GO[row * DV + c]; }
  let lse = LSE[row]; let delta = DELTA[row];
${streamKeys(`
        let p = exp(dotRow(&q, jj) * scale - lse);
        var dp = 0.0;
        for (var c = 0u; c < DV; c++) { dp = fma(go[c], f32(Vt[jj * DV + c]), dp); }
        let ds = p * (dp - delta);
        for (var c = 0u; c < D; c++) { dq[c] = fma(ds, f32(Kt[jj * D + c]), dq[c]); }`)}
  if (!valid) { return; }
  for (var c = 0u; c < D; c++) { DQ[row * D + c] = dq[c] * scale; }
}`;
};

/** dK and dV: per key, stream queries, output gradients and their softmax statistics. */
export const attentionGradKVKernel = (d: number, dv: number, half = false) => {
  const t = halfRows(half, d, dv + 2);
  return `${half ? `enable f16;\n${R16}` : ''}${PARAMS}
const D = ${d}u; const DV = ${dv}u; const T = ${t}u; const WGS = ${ATTN_WG}u;
` + bindings(['Q', 'K', 'V', 'GO', 'LSE', 'DELTA'], ['DK', 'DV_']) + `
var<workgroup> Qt: array<${half ? 'f16' : 'f32'}, ${t * d}>;
var<workgroup> Gt: array<f32, ${t * dv}>;
var<workgroup> St: array<f32, ${2 * t}>;
@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_index) l: u32) {
  let b = w.y; let lq = P[1]; let lk = P[2]; let scale = pf(3u); let causal = P[4] == 1u;
  let j = w.x * WGS + l;
  let valid = j < lk;
  let row = b * lk + min(j, lk - 1u);
  var k: array<f32, ${d}>; var v: array<f32, ${dv}>; var dk: array<f32, ${d}>; var dvv: array<f32, ${dv}>;
  for (var c = 0u; c < D; c++) { k[c] = ${rnd(half, 'K[row * D + c]')}; }
  for (var c = 0u; c < DV; c++) { v[c] = ${rnd(half, 'V[row * DV + c]')}; }
  // Causal: queries before this workgroup's first key see none of its keys.
  let qStart = select(0u, ((w.x * WGS) / T) * T, causal);
  for (var t0 = qStart; t0 < lq; t0 += T) {
    workgroupBarrier();
    for (var e = l; e < T * D; e += WGS) { let i = t0 + e / D; if (i < lq) { Qt[e] = ${half ? 'f16' : 'f32'}(Q[(b * lq + i) * D + e % D]); } }
    for (var e = l; e < T * DV; e += WGS) { let i = t0 + e / DV; if (i < lq) { Gt[e] = GO[(b * lq + i) * DV + e % DV]; } }
    for (var e = l; e < T; e += WGS) { let i = t0 + e; if (i < lq) { St[2u * e] = LSE[b * lq + i]; St[2u * e + 1u] = DELTA[b * lq + i]; } }
    workgroupBarrier();
    if (valid) {
      let tEnd = min(T, lq - t0);
      for (var ii = 0u; ii < tEnd; ii++) {
        if (causal && t0 + ii < j) { continue; }
        var x = 0.0;
        for (var c = 0u; c < D; c++) { x = fma(f32(Qt[ii * D + c]), k[c], x); }
        let p = exp(x * scale - St[2u * ii]);
        var dp = 0.0;
        for (var c = 0u; c < DV; c++) { let g = Gt[ii * DV + c]; dvv[c] = fma(p, g, dvv[c]); dp = fma(g, v[c], dp); }
        let ds = p * (dp - St[2u * ii + 1u]);
        for (var c = 0u; c < D; c++) { dk[c] = fma(ds, f32(Qt[ii * D + c]), dk[c]); }
      }
    }
  }
  if (!valid) { return; }
  for (var c = 0u; c < D; c++) { DK[row * D + c] = dk[c] * scale; }
  for (var c = 0u; c < DV; c++) { DV_[row * DV + c] = dvv[c]; }
}`;
};
