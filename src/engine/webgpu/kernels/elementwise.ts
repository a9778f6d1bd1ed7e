// Elementwise kernels: unary maps and their gradients, broadcasting binary ops, sum-to-shape, casts.
import type { BinaryOp, UnaryOp } from '../../backend.js';
import { COORDS, FLAT_MAIN, PARAMS, RANK, bindings } from './common.js';

// Helpers the activations need and WGSL lacks. tanh is evaluated on a clamped input because some
// drivers compute it through exp and return NaN for large |x|.
const MATH = `
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn tanh_(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sig(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn powf(x: f32, p: f32) -> f32 {
  if (x >= 0.0 || p != round(p)) { return pow(x, p); }
  let m = pow(-x, p);
  return select(m, -m, (i32(p) & 1) == 1);
}
`;

const FWD: Record<UnaryOp, string> = {
  neg: '-x', exp: 'exp(x)', log: 'log(x)', sqrt: 'sqrt(x)', rsqrt: 'inverseSqrt(x)', square: 'x * x', abs: 'abs(x)',
  sin: 'sin(x)', cos: 'cos(x)', tanh: 'tanh_(x)', sigmoid: 'sig(x)', relu: 'max(x, 0.0)', silu: 'x * sig(x)',
  gelu: '0.5 * x * (1.0 + erf_(x * 0.70710678118654752))',
  gelu_tanh: '0.5 * x * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
  quick_gelu: 'x * sig(1.702 * x)', scale: 'x * p', shift: 'x + p', pow: 'powf(x, p)',
  minimum: 'min(x, p)', maximum: 'max(x, p)',
};

/** d f(x) / dx, as the cpu backend's table. */
const DERIV: Record<UnaryOp, string> = {
  neg: '-1.0', exp: 'exp(x)', log: '1.0 / x', sqrt: '0.5 / sqrt(x)', rsqrt: '-0.5 * inverseSqrt(x) / x', square: '2.0 * x',
  abs: 'sign(x)', sin: 'cos(x)', cos: '-sin(x)', tanh: '1.0 - tanh_(x) * tanh_(x)', sigmoid: 'sig(x) * (1.0 - sig(x))',
  relu: 'select(0.0, 1.0, x > 0.0)', silu: 'sig(x) * (1.0 + x * (1.0 - sig(x)))',
  gelu: '0.5 * (1.0 + erf_(x * 0.70710678118654752)) + x * 0.3989422804014327 * exp(-0.5 * x * x)',
  gelu_tanh: 'gelu_tanh_d(x)',
  quick_gelu: 'sig(1.702 * x) + 1.702 * x * sig(1.702 * x) * (1.0 - sig(1.702 * x))',
  scale: 'p', shift: '1.0', pow: 'p * powf(x, p - 1.0)',
  minimum: 'select(0.0, 1.0, x <= p)', maximum: 'select(0.0, 1.0, x >= p)',
};

const GELU_TANH_D = `
fn gelu_tanh_d(x: f32) -> f32 {
  let t = tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}`;

/** P: [n, param]. */
export const unaryKernel = (op: UnaryOp) => PARAMS + bindings(['X'], ['Y']) + MATH + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let x = X[i]; let p = pf(1u);
  Y[i] = ${FWD[op]};`);

/** P: [n, param]. */
export const unaryGradKernel = (op: UnaryOp) => PARAMS + bindings(['X', 'GY'], ['Y']) + MATH + GELU_TANH_D + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let x = X[i]; let p = pf(1u);
  Y[i] = GY[i] * (${DERIV[op]});`);

const BIN: Record<BinaryOp, string> = { add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b' };

/** Same shapes. P: [n]. */
export const binarySameKernel = (op: BinaryOp) => PARAMS + bindings(['A', 'B'], ['Y']) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let a = A[i]; let b = B[i];
  Y[i] = ${BIN[op]};`);

/** Broadcasting. P: [n, rank, out shape x6, a strides x6, b strides x6]. */
export const binaryBroadcastKernel = (op: BinaryOp) => PARAMS + bindings(['A', 'B'], ['Y']) + COORDS + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let rank = P[1];
  let c = coords(i, rank, 2u);
  let a = A[dotStrides(c, rank, ${2 + RANK}u)]; let b = B[dotStrides(c, rank, ${2 + 2 * RANK}u)];
  Y[i] = ${BIN[op]};`);

/**
 * Sum over broadcast axes: one 64-wide workgroup per output element.
 * P: [outputs, rank, out shape x6, x strides x6, reduced shape x6, reduced count].
 */
export const sumToKernel = PARAMS + bindings(['X'], ['Y']) + COORDS + `
var<workgroup> part: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) l: u32) {
  let o = w.y * nw.x + w.x;
  let rank = P[1];
  let inRange = o < P[0];
  var s = 0.0;
  if (inRange) {
    let base = dotStrides(coords(o, rank, 2u), rank, ${2 + RANK}u);
    let count = P[${2 + 3 * RANK}];
    for (var r = l; r < count; r += 64u) {
      s += X[base + dotStrides(coords(r, rank, ${2 + 2 * RANK}u), rank, ${2 + RANK}u)];
    }
  }
  part[l] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k = k >> 1u) {
    if (l < k) { part[l] += part[l + k]; }
    workgroupBarrier();
  }
  if (inRange && l == 0u) { Y[o] = part[0]; }
}`;

/** f16 (two per u32) to f32. P: [n]. */
export const f16ToF32Kernel = PARAMS + bindings(['X'], [], 'u32') + bindings([], ['Y'], 'f32', 2) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let v = unpack2x16float(X[i >> 1u]);
  Y[i] = select(v.x, v.y, (i & 1u) == 1u);`);

/** f32 to f16 pairs. P: [n]; one invocation per output word. */
export const f32ToF16Kernel = PARAMS + bindings(['X'], []) + bindings([], ['Y'], 'u32', 2) + FLAT_MAIN(`
  let n = P[0];
  if (2u * i >= n) { return; }
  let hi = select(0.0, X[min(2u * i + 1u, n - 1u)], 2u * i + 1u < n);
  Y[i] = pack2x16float(vec2f(X[2u * i], hi));`);

/** i32 <-> f32. P: [n]. */
export const i32ToF32Kernel = PARAMS + bindings(['X'], [], 'i32') + bindings([], ['Y'], 'f32', 2) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  Y[i] = f32(X[i]);`);
export const f32ToI32Kernel = PARAMS + bindings(['X'], []) + bindings([], ['Y'], 'i32', 2) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  Y[i] = i32(trunc(X[i]));`);
