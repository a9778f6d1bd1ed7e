// Row reductions with one 256-wide workgroup per row: group/layer norm and softmax, forward and
// backward. Norm rows are normalized, then each element gets the affine channel
// floor((row * size + i) / inner) % channels (see NormLayout). Each kernel comes in two forms:
// a workgroup-memory tree reduction (8 barrier rounds), and, where the adapter has subgroups and
// WGSL's subgroup_id, subgroup sums whose per-subgroup partials are added by every invocation
// (2 barriers).
import { PARAMS, bindings } from './common.js';

const TREE_REDUCE = `
var<workgroup> red: array<f32, 256>;
fn wgSum(v: f32, l: u32) -> f32 {
  workgroupBarrier();
  red[l] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (l < k) { red[l] += red[l + k]; }
    workgroupBarrier();
  }
  return red[0];
}
fn wgMax(v: f32, l: u32) -> f32 {
  workgroupBarrier();
  red[l] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (l < k) { red[l] = max(red[l], red[l + k]); }
    workgroupBarrier();
  }
  return red[0];
}`;

const SUBGROUP_REDUCE = `
var<workgroup> red: array<f32, 256>;
var<private> sgId: u32;
var<private> sgCount: u32;
var<private> sgLane: u32;
fn wgSum(v: f32, l: u32) -> f32 {
  let s = subgroupAdd(v);
  workgroupBarrier();
  if (sgLane == 0u) { red[sgId] = s; }
  workgroupBarrier();
  var t = 0.0;
  for (var k = 0u; k < sgCount; k++) { t += red[k]; }
  return t;
}
fn wgMax(v: f32, l: u32) -> f32 {
  let s = subgroupMax(v);
  workgroupBarrier();
  if (sgLane == 0u) { red[sgId] = s; }
  workgroupBarrier();
  var t = -3.0e38;
  for (var k = 0u; k < sgCount; k++) { t = max(t, red[k]); }
  return t;
}`;

const ROW_MAIN = (sg: boolean, body: string) => `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) l: u32${
  sg ? ', @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sgi: u32' : ''}) {
  ${sg ? 'sgId = sgid; sgCount = nsg; sgLane = sgi;' : ''}
  let row = w.y * nw.x + w.x;
${body}
}`;

/** Header and reduction helpers for the chosen form. */
const reduce = (sg: boolean) => (sg ? 'enable subgroups;\nrequires subgroup_id;\n' : '');
const REDUCE = (sg: boolean) => (sg ? SUBGROUP_REDUCE : TREE_REDUCE);

// P: [rows, size, channels, inner, eps, hasAffine, act (1 = SiLU after the affine step)]
const NORM_P = `
fn chan(row: u32, i: u32) -> u32 { return ((row * P[1] + i) / P[3]) % P[2]; }
// The upstream gradient through the fused SiLU, the pre-activation recomputed from x.
fn geff(e: u32, c: u32, m: f32, rs: f32) -> f32 {
  let d = GY[e];
  if (P[6] == 0u) { return d; }
  var g = 1.0; var b = 0.0;
  if (P[5] == 1u) { g = G[c]; b = Bt[c]; }
  let pre = (X[e] - m) * rs * g + b;
  let s = 1.0 / (1.0 + exp(-pre));
  return d * s * (1.0 + pre * (1.0 - s));
}`;
const NORM_FWD_P = `
fn chan(row: u32, i: u32) -> u32 { return ((row * P[1] + i) / P[3]) % P[2]; }`;

export const normKernel = (sg: boolean) => reduce(sg) + PARAMS + bindings(['X', 'G', 'Bt'], ['Y', 'MEAN', 'RSTD']) + REDUCE(sg) + NORM_FWD_P + ROW_MAIN(sg, `
  let size = P[1]; let o = row * size;
  let valid = row < P[0];
  var s = 0.0;
  if (valid) { for (var i = l; i < size; i += 256u) { s += X[o + i]; } }
  let m = wgSum(s, l) / f32(size);
  var v = 0.0;
  if (valid) { for (var i = l; i < size; i += 256u) { let d = X[o + i] - m; v += d * d; } }
  let rs = inverseSqrt(wgSum(v, l) / f32(size) + pf(4u));
  if (!valid) { return; }
  if (l == 0u) { MEAN[row] = m; RSTD[row] = rs; }
  for (var i = l; i < size; i += 256u) {
    var g = 1.0; var b = 0.0;
    if (P[5] == 1u) { let c = chan(row, i); g = G[c]; b = Bt[c]; }
    let v = (X[o + i] - m) * rs * g + b;
    Y[o + i] = select(v, v / (1.0 + exp(-v)), P[6] == 1u);
  }`);

export const normGradKernel = (sg: boolean) => reduce(sg) + PARAMS + bindings(['GY', 'X', 'G', 'Bt', 'MEAN', 'RSTD'], ['DX']) + REDUCE(sg) + NORM_P + ROW_MAIN(sg, `
  let size = P[1]; let o = row * size;
  let valid = row < P[0];
  let r = min(row, P[0] - 1u);
  let m = MEAN[r]; let rs = RSTD[r];
  var s1 = 0.0; var s2 = 0.0;
  if (valid) {
    for (var i = l; i < size; i += 256u) {
      let c = chan(row, i);
      let g = select(1.0, G[c], P[5] == 1u);
      let d = geff(o + i, c, m, rs) * g;
      s1 += d; s2 += d * (X[o + i] - m) * rs;
    }
  }
  let m1 = wgSum(s1, l) / f32(size);
  let m2 = wgSum(s2, l) / f32(size);
  if (!valid) { return; }
  for (var i = l; i < size; i += 256u) {
    let c = chan(row, i);
    let g = select(1.0, G[c], P[5] == 1u);
    DX[o + i] = rs * (geff(o + i, c, m, rs) * g - m1 - (X[o + i] - m) * rs * m2);
  }`);

/**
 * dgamma / dbeta: one workgroup per channel, summing over the runs of `inner` elements that use it
 * (run j uses channel j % channels). P as the norm, plus [runs].
 */
export const normAffineGradKernel = (sg: boolean) => reduce(sg) + PARAMS + bindings(['GY', 'X', 'G', 'Bt', 'MEAN', 'RSTD'], ['DG', 'DB']) + REDUCE(sg) + NORM_P + ROW_MAIN(sg, `
  let c = row; let channels = P[2]; let inner = P[3]; let size = P[1];
  let valid = c < channels;
  let runs = P[7];
  let mine = select(0u, (runs - min(c, runs) + channels - 1u) / channels, valid);
  var dg = 0.0; var db = 0.0;
  for (var t = l; t < mine * inner; t += 256u) {
    let e = (c + (t / inner) * channels) * inner + t % inner;
    let rw = e / size;
    let d = geff(e, c, MEAN[rw], RSTD[rw]);
    dg += d * (X[e] - MEAN[rw]) * RSTD[rw]; db += d;
  }
  let sg = wgSum(dg, l); let sb = wgSum(db, l);
  if (valid && l == 0u) { DG[c] = sg; DB[c] = sb; }`);

// P: [rows, cols]
export const softmaxKernel = (sg: boolean) => reduce(sg) + PARAMS + bindings(['X'], ['Y']) + REDUCE(sg) + ROW_MAIN(sg, `
  let cols = P[1]; let o = row * cols;
  let valid = row < P[0];
  var mx = -3.0e38;
  if (valid) { for (var i = l; i < cols; i += 256u) { mx = max(mx, X[o + i]); } }
  let m = wgMax(mx, l);
  var s = 0.0;
  if (valid) { for (var i = l; i < cols; i += 256u) { s += exp(X[o + i] - m); } }
  let inv = 1.0 / wgSum(s, l);
  if (!valid) { return; }
  for (var i = l; i < cols; i += 256u) { Y[o + i] = exp(X[o + i] - m) * inv; }`);

export const softmaxGradKernel = (sg: boolean) => reduce(sg) + PARAMS + bindings(['Yv', 'GY'], ['DX']) + REDUCE(sg) + ROW_MAIN(sg, `
  let cols = P[1]; let o = row * cols;
  let valid = row < P[0];
  var s = 0.0;
  if (valid) { for (var i = l; i < cols; i += 256u) { s += Yv[o + i] * GY[o + i]; } }
  let t = wgSum(s, l);
  if (!valid) { return; }
  for (var i = l; i < cols; i += 256u) { DX[o + i] = Yv[o + i] * (GY[o + i] - t); }`);
