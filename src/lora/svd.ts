// Small dense linear algebra in float64 for the LoRA tools: QR, symmetric eigen-decomposition
// (Jacobi), and singular value decompositions of low-rank products and of full deltas.
import { gemm, mat } from '../engine/cpu/gemm.js';
import { Rng } from '../engine/random.js';

export interface SVD {
  /** [m, k] row-major */
  u: Float64Array;
  s: Float64Array;
  /** [k, n] row-major */
  vt: Float64Array;
  m: number;
  n: number;
  k: number;
}

/** C = A[m,k] @ B[k,n] (transposes through flags). */
function mm(a: Float64Array, b: Float64Array, m: number, n: number, k: number, ta = false, tb = false): Float64Array {
  const c = new Float64Array(m * n);
  gemm(m, n, k, ta ? mat(a, 0, 1, m) : mat(a, 0, k, 1), tb ? mat(b, 0, 1, k) : mat(b, 0, n, 1), c, 0, false);
  return c;
}

/** Thin QR of A [m, r] (m >= r) by modified Gram-Schmidt with one re-orthogonalization pass. */
export function qr(a: Float64Array, m: number, r: number): { q: Float64Array; r: Float64Array } {
  // Columns stored contiguously (the transpose) so the inner loops run over adjacent memory.
  const cols = transpose(a, m, r);
  const R = new Float64Array(r * r);
  for (let j = 0; j < r; j++) {
    const cj = cols.subarray(j * m, (j + 1) * m);
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        const ci = cols.subarray(i * m, (i + 1) * m);
        let d = 0;
        for (let t = 0; t < m; t++) d += ci[t] * cj[t];
        R[i * r + j] += d;
        for (let t = 0; t < m; t++) cj[t] -= d * ci[t];
      }
    }
    let nrm = 0;
    for (let t = 0; t < m; t++) nrm += cj[t] * cj[t];
    nrm = Math.sqrt(nrm);
    R[j * r + j] = nrm;
    for (let t = 0; t < m; t++) cj[t] = nrm > 1e-300 ? cj[t] / nrm : 0;
  }
  return { q: transpose(cols, r, m), r: R };
}

/** Eigen-decomposition of a symmetric [n, n] matrix (cyclic Jacobi); values descending, vectors as columns. */
export function symEig(g: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(g);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => { for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src]; });
  return { values, vectors };
}

/** SVD of a small [m, n] matrix through the eigen-decomposition of its smaller Gram matrix. */
export function smallSvd(a: Float64Array, m: number, n: number): SVD {
  if (m > n) {
    const t = smallSvd(transpose(a, m, n), n, m);
    return { u: transpose(t.vt, t.k, m), s: t.s, vt: transpose(t.u, n, t.k), m, n, k: t.k };
  }
  // m <= n: A A^T = U S^2 U^T, Vt = S^-1 U^T A
  const { values, vectors } = symEig(mm(a, a, m, m, n, false, true), m);
  const k = m;
  const s = Float64Array.from(values, (x) => Math.sqrt(Math.max(0, x)));
  const vt = mm(vectors, a, m, n, m, true, false);
  for (let i = 0; i < k; i++) {
    const inv = s[i] > 1e-300 ? 1 / s[i] : 0;
    for (let j = 0; j < n; j++) vt[i * n + j] *= inv;
  }
  return { u: vectors, s, vt, m, n, k };
}

export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** Exact SVD of up [m, r] @ down [r, n] without forming the product (rank <= r). */
export function lowRankSvd(up: Float64Array, down: Float64Array, m: number, r: number, n: number): SVD {
  const qu = qr(up, m, r);
  const qd = qr(transpose(down, r, n), n, r);
  // up @ down = Qu (Ru Rd^T) Qd^T
  const core = mm(qu.r, qd.r, r, r, r, false, true);
  const c = smallSvd(core, r, r);
  return { u: mm(qu.q, c.u, m, r, r), s: c.s, vt: mm(c.vt, qd.q, r, n, r, false, true), m, n, k: r };
}

/** C = A @ B in float32 (the WebAssembly GEMM once the cpu backend has started it). */
function mm32(a: Float32Array, b: Float32Array, m: number, n: number, k: number, ta = false): Float32Array {
  const c = new Float32Array(m * n);
  gemm(m, n, k, ta ? mat(a, 0, 1, m) : mat(a, 0, k, 1), mat(b, 0, n, 1), c, 0, false);
  return c;
}

/** Largest distance of a unit column of `prev` [m, k] from span(cur) [m, k] (both orthonormal). */
function subspaceGap(prev: Float64Array, cur: Float64Array, m: number, k: number): number {
  const proj = mm(cur, mm(cur, prev, k, k, m, true, false), m, k, k);
  let worst = 0;
  for (let j = 0; j < k; j++) {
    let d = 0;
    for (let i = 0; i < m; i++) d += (prev[i * k + j] - proj[i * k + j]) ** 2;
    worst = Math.max(worst, Math.sqrt(d));
  }
  return worst;
}

/**
 * Top-k SVD of a full [m, n] matrix, as the first k triplets of torch.linalg.svd. Exact (Gram
 * eigen-decomposition) when min(m, n) is small. Otherwise subspace iteration (Halko et al.) with
 * float32 products, the precision sd-scripts' SVD runs in, until the top-k singular vectors move by
 * less than `tol`, then a float64 Rayleigh-Ritz step on the converged basis.
 */
export function truncatedSvd(a: Float64Array, m: number, n: number, k: number, seed = 0, tol = 1e-5, maxIter = 50): SVD {
  const small = Math.min(m, n);
  if (small <= Math.max(64, 2 * k)) return cut(smallSvd(a, m, n), k);
  const l = Math.min(small, 2 * k + 16);
  const a32 = Float32Array.from(a);
  const rng = new Rng(seed);
  let q = qr(Float64Array.from(mm32(a32, Float32Array.from({ length: n * l }, () => rng.normal()), m, l, n)), m, l).q;
  let prev: Float64Array | null = null;
  for (let it = 0; it < maxIter; it++) {
    // Y = A^T Q [n, l]. The left singular vectors of Y^T = Q^T A (eigenvectors of Y^T Y) rotate Q
    // into the current Ritz vectors.
    const y = Float64Array.from(mm32(a32, Float32Array.from(q), n, l, m, true));
    const { vectors } = symEig(mm(y, y, l, l, n, true, false), l);
    const top = mm(q, Float64Array.from({ length: l * k }, (_, i) => vectors[Math.floor(i / k) * l + (i % k)]), m, k, l);
    if (prev && subspaceGap(prev, top, m, k) < tol) break;
    prev = top;
    q = qr(Float64Array.from(mm32(a32, Float32Array.from(qr(y, n, l).q), m, l, n)), m, l).q;
  }
  const b = mm(q, a, l, n, m, true, false);
  const s = smallSvd(b, l, n);
  return cut({ u: mm(q, s.u, m, s.k, l), s: s.s, vt: s.vt, m, n, k: s.k }, k);
}

/** Keeps the first k singular triplets. */
export function cut(s: SVD, k: number): SVD {
  const kk = Math.min(k, s.k);
  const u = new Float64Array(s.m * kk);
  for (let i = 0; i < s.m; i++) for (let j = 0; j < kk; j++) u[i * kk + j] = s.u[i * s.k + j];
  return { u, s: s.s.slice(0, kk), vt: s.vt.slice(0, kk * s.n), m: s.m, n: s.n, k: kk };
}

/**
 * Fixes each singular pair's sign (the largest-magnitude entry of the Vt row positive). SVD
 * factors are defined only up to these signs; LAPACK's choice cannot be reproduced, but a fixed
 * rule keeps sdlora's output the same on every run and backend.
 */
export function canonicalSigns(s: SVD): SVD {
  const u = Float64Array.from(s.u), vt = Float64Array.from(s.vt);
  for (let j = 0; j < s.k; j++) {
    let big = 0;
    for (let c = 0; c < s.n; c++) if (Math.abs(vt[j * s.n + c]) > Math.abs(big)) big = vt[j * s.n + c];
    if (big >= 0) continue;
    for (let c = 0; c < s.n; c++) vt[j * s.n + c] = -vt[j * s.n + c];
    for (let i = 0; i < s.m; i++) u[i * s.k + j] = -u[i * s.k + j];
  }
  return { ...s, u, vt };
}

/**
 * Extends an SVD to k >= s.k triplets with singular value 0: U columns of zeros (they are only
 * ever used scaled by S) and Vt rows that complete an orthonormal set. torch.linalg.svd returns
 * such null-space rows when a tool asks for a rank above the matrix's rank.
 */
export function padSvd(s: SVD, k: number): SVD {
  if (k <= s.k) return s;
  const rows: Float64Array[] = [];
  for (let j = 0; j < s.k; j++) rows.push(s.vt.subarray(j * s.n, (j + 1) * s.n));
  for (let e = 0; e < s.n && rows.length < k; e++) {
    const v = new Float64Array(s.n);
    v[e] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (const r of rows) {
        let d = 0;
        for (let c = 0; c < s.n; c++) d += r[c] * v[c];
        for (let c = 0; c < s.n; c++) v[c] -= d * r[c];
      }
    }
    let nrm = 0;
    for (let c = 0; c < s.n; c++) nrm += v[c] * v[c];
    nrm = Math.sqrt(nrm);
    if (nrm < 1e-6) continue;
    rows.push(v.map((x) => x / nrm));
  }
  const kk = rows.length;
  const u = new Float64Array(s.m * kk);
  for (let i = 0; i < s.m; i++) for (let j = 0; j < s.k; j++) u[i * kk + j] = s.u[i * s.k + j];
  const vt = new Float64Array(kk * s.n);
  rows.forEach((r, j) => vt.set(r, j * s.n));
  const sv = new Float64Array(kk);
  sv.set(s.s);
  return { u, s: sv, vt, m: s.m, n: s.n, k: kk };
}
