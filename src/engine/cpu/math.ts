// Scalar math the elementwise kernels need and JS lacks.

/** erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TANH_C = Math.sqrt(2 / Math.PI);
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export type Fn = (x: number, p: number) => number;

export const forward: Record<string, Fn> = {
  neg: (x) => -x,
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  sqrt: (x) => Math.sqrt(x),
  rsqrt: (x) => 1 / Math.sqrt(x),
  square: (x) => x * x,
  abs: (x) => Math.abs(x),
  sin: (x) => Math.sin(x),
  cos: (x) => Math.cos(x),
  tanh: (x) => Math.tanh(x),
  sigmoid,
  relu: (x) => (x > 0 ? x : 0),
  silu: (x) => x * sigmoid(x),
  gelu: (x) => 0.5 * x * (1 + erf(x * SQRT1_2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(TANH_C * (x + 0.044715 * x * x * x))),
  quick_gelu: (x) => x * sigmoid(1.702 * x),
  scale: (x, p) => x * p,
  shift: (x, p) => x + p,
  pow: (x, p) => Math.pow(x, p),
  minimum: (x, p) => Math.min(x, p),
  maximum: (x, p) => Math.max(x, p),
};

/** d f(x) / dx. */
export const derivative: Record<string, Fn> = {
  neg: () => -1,
  exp: (x) => Math.exp(x),
  log: (x) => 1 / x,
  sqrt: (x) => 0.5 / Math.sqrt(x),
  rsqrt: (x) => -0.5 * Math.pow(x, -1.5),
  square: (x) => 2 * x,
  abs: (x) => Math.sign(x),
  sin: (x) => Math.cos(x),
  cos: (x) => -Math.sin(x),
  tanh: (x) => 1 - Math.tanh(x) ** 2,
  sigmoid: (x) => { const s = sigmoid(x); return s * (1 - s); },
  relu: (x) => (x > 0 ? 1 : 0),
  silu: (x) => { const s = sigmoid(x); return s * (1 + x * (1 - s)); },
  gelu: (x) => 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x),
  gelu_tanh: (x) => {
    const u = TANH_C * (x + 0.044715 * x * x * x);
    const t = Math.tanh(u);
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * TANH_C * (1 + 3 * 0.044715 * x * x);
  },
  quick_gelu: (x) => { const s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1 - s); },
  scale: (_x, p) => p,
  shift: () => 1,
  pow: (x, p) => p * Math.pow(x, p - 1),
  minimum: (x, p) => (x <= p ? 1 : 0),
  maximum: (x, p) => (x >= p ? 1 : 0),
};
