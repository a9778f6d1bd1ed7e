// The f16 GEMM and attention of the webgpu backend (mixed precision fp16 on a device with shader-f16): matmul and
// the three conv2d GEMMs (attention further down) against an f64 reference. The kernel rounds each operand to f16 (after
// scaling an f32 operand by a power of two so its largest magnitude lies in [2^14, 2^15)), forms
// exact products and accumulates them in f32. So:
//  - against the reference computed from the same f16-rounded operands, the error is f32
//    accumulation only: |err| <= gamma(K + 2) * sum_k |a_k b_k|, gamma(n) = n * 2^-24 / (1 - n * 2^-24);
//  - against the reference from the unrounded f32 operands it is at most that plus the input
//    rounding: (2u + u^2) * sum_k |a_k b_k| with f16's unit roundoff u = 2^-11.
// Accumulating in f16 instead breaks the first bound by orders of magnitude for large K (the
// positive-data case makes partial sums grow to thousands, where f16's spacing is 2 or more), and
// a mishandled tile edge breaks both (the sizes are odd, not multiples of the 64x64x32 tile).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { ConvShapes, MatmulSpec, Storage } from '../../src/engine/backend.js';
import { f16ToF32, f32ToF16 } from '../../src/engine/dtype.js';
import { train } from '../../src/train/trainer.js';
import { TINY_LORA, trainFixture } from '../helpers/train-setup.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const U16 = 2 ** -11;
const gamma = (n: number) => (n * 2 ** -24) / (1 - n * 2 ** -24);
const q16 = (v: number) => f16ToF32(f32ToF16(v));

/** The power of two the kernel scales an f32 operand by (same rule as scaleExp in gemm.ts). */
function scaleExp(x: Float32Array): number {
  let m = 0;
  for (const v of x) m = Math.max(m, Math.abs(v));
  if (m === 0 || !Number.isFinite(m)) return 0;
  const bits = new Uint32Array(Float32Array.of(m).buffer)[0];
  return Math.min(60, Math.max(-60, 14 - (((bits >>> 23) & 0xff) - 127)));
}

/** The operand as the kernel sees it: f32 values scaled, rounded to f16 and scaled back. */
function asF16(x: Float32Array): Float64Array {
  const e = scaleExp(x);
  return Float64Array.from(x, (v) => q16(v * 2 ** e) / 2 ** e);
}

const rnd = (rng: E.Rng, n: number, positive = false, scale = 1) => Float32Array.from({ length: n }, () => scale * (positive ? 0.5 + rng.uniform() : rng.normal()));

interface Ref { sum: Float64Array; abs: Float64Array }

/** Checks the GPU result against both references; returns the largest errors relative to the bounds. */
function check(what: string, got: Float32Array, r16: Ref, r32: Ref, K: number, extra = 0, witness = true): { acc: number; input: number; witness: number } {
  assert.equal(got.length, r16.sum.length, `${what}: length`);
  let worstAcc = 0, worstIn = 0, maxAcc = 0, maxRound = 0;
  const gk = gamma(K + 2);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    assert.ok(Number.isFinite(g), `${what}[${i}] is ${g}`);
    const tolAcc = gk * r16.abs[i] + extra * Math.abs(r16.sum[i]) + 1e-30;
    const tolIn = (2 * U16 + U16 * U16 + gk) * r32.abs[i] + extra * Math.abs(r32.sum[i]) + 1e-30;
    const eAcc = Math.abs(g - r16.sum[i]), eIn = Math.abs(g - r32.sum[i]);
    if (eAcc > tolAcc) assert.fail(`${what}[${i}]: ${g} vs ${r16.sum[i]} (from f16-rounded operands): error ${eAcc.toExponential(3)} > f32-accumulation bound ${tolAcc.toExponential(3)} (K=${K})`);
    if (eIn > tolIn) assert.fail(`${what}[${i}]: ${g} vs ${r32.sum[i]} (from f32 operands): error ${eIn.toExponential(3)} > f16 input-rounding bound ${tolIn.toExponential(3)} (K=${K})`);
    worstAcc = Math.max(worstAcc, eAcc / tolAcc);
    worstIn = Math.max(worstIn, eIn / tolIn);
    maxAcc = Math.max(maxAcc, eAcc);
    maxRound = Math.max(maxRound, Math.abs(r16.sum[i] - r32.sum[i]));
  }
  // The operands really were rounded to f16: the result sits far closer to the f16-operand
  // reference than the two references are to each other. (Not with positive data over a large K,
  // where input rounding errors average out while the accumulation error grows with the sum.)
  if (witness) assert.ok(maxAcc * 8 < maxRound, `${what}: GPU result not closer to the f16-rounded reference (${maxAcc}) than f16 rounding moves it (${maxRound}): was the f16 kernel used?`);
  return { acc: worstAcc, input: worstIn, witness: maxAcc / maxRound };
}

/** C = op(A) op(B) in f64 with sum |a b| alongside. A is [M,K] (or [K,M] with transA), B [K,N] (or [N,K]). */
function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, N: number, K: number, transA: boolean, transB: boolean): Ref {
  const sum = new Float64Array(M * N), abs = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, t = 0;
      for (let k = 0; k < K; k++) {
        const p = a[transA ? k * M + m : m * K + k] * b[transB ? n * K + k : k * N + n];
        s += p; t += Math.abs(p);
      }
      sum[m * N + n] = s; abs[m * N + n] = t;
    }
  }
  return { sum, abs };
}

/** Direct convolutions in f64 (NCHW, OIHW, groups), each with sum |products|. */
function refConv(s: ConvShapes, x: ArrayLike<number>, w: ArrayLike<number>, gy: ArrayLike<number>) {
  const [n, cin, h, wd] = s.x, [cout, cg, kh, kw] = s.w, [, , oh, ow] = s.out, g = s.groups, og = cout / g;
  const y = { sum: new Float64Array(n * cout * oh * ow), abs: new Float64Array(n * cout * oh * ow) };
  const dx = { sum: new Float64Array(n * cin * h * wd), abs: new Float64Array(n * cin * h * wd) };
  const dw = { sum: new Float64Array(cout * cg * kh * kw), abs: new Float64Array(cout * cg * kh * kw) };
  for (let b = 0; b < n; b++) for (let co = 0; co < cout; co++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const yi = ((b * cout + co) * oh + i) * ow + j;
    for (let c = 0; c < cg; c++) for (let p = 0; p < kh; p++) for (let q = 0; q < kw; q++) {
      const ih = i * s.stride[0] - s.padding[0] + p, iw = j * s.stride[1] - s.padding[1] + q;
      if (ih < 0 || iw < 0 || ih >= h || iw >= wd) continue;
      const ci = Math.floor(co / og) * cg + c;
      const xi = ((b * cin + ci) * h + ih) * wd + iw, wi = ((co * cg + c) * kh + p) * kw + q;
      const pf = x[xi] * w[wi]; y.sum[yi] += pf; y.abs[yi] += Math.abs(pf);
      const pi = gy[yi] * w[wi]; dx.sum[xi] += pi; dx.abs[xi] += Math.abs(pi);
      const pw = gy[yi] * x[xi]; dw.sum[wi] += pw; dw.abs[wi] += Math.abs(pw);
    }
  }
  return { y, dx, dw };
}

const halfOf = (x: Float32Array) => Uint16Array.from(x, f32ToF16);
const fromHalf = (h: Uint16Array) => Float64Array.from(h, f16ToF32);

describe('webgpu f16 GEMM and attention (mixed precision fp16)', () => {
  let gpu: E.WebGPUBackend | null = null;
  const report: string[] = [];
  before(async () => {
    gpu = await E.getWebGPUBackend().catch(() => null);
    gpu?.setHalfCompute(true);
  });
  after(() => {
    gpu?.setHalfCompute(false);
    if (report.length) console.log(`f16 GEMM parity (worst error / bound):\n  ${report.join('\n  ')}`);
  });

  /** Runs one GEMM on the GPU with f16 arithmetic and checks that the f16 kernel ran. */
  async function onGpu(be: E.WebGPUBackend, fn: () => Storage): Promise<Float32Array> {
    const before = be.halfGemmDispatches;
    const out = await be.read(fn());
    assert.equal(be.halfGemmDispatches, before + 1, 'the f16 GEMM kernel ran');
    return out as Float32Array;
  }

  const mm = [
    { name: 'matmul 67x131, K=1001, normal', M: 67, N: 131, K: 1001, transA: false, transB: false, positive: false },
    { name: 'matmul 33x65, K=4099, positive (partial sums in the thousands)', M: 33, N: 65, K: 4099, transA: false, transB: false, positive: true },
    { name: 'matmul transA 70x45, K=301 (a weight gradient)', M: 70, N: 45, K: 301, transA: true, transB: false, positive: false },
  ];
  for (const c of mm) {
    it(c.name, async (t) => {
      const be = await webgpuOrSkip(t);
      if (!be) return;
      if (!be.halfGemm) return t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): f16 GEMM not available');
      const rng = new E.Rng(11);
      // Small gradient-like magnitudes in A: without scaling most would be f16 subnormals.
      const a = rnd(rng, c.M * c.K, c.positive, c.positive ? 1 : 1e-6), b = rnd(rng, c.K * c.N, c.positive);
      const spec: MatmulSpec = { batch: 1, aBatch: 1, bBatch: 1, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB };
      const got = await onGpu(be, () => be.matmul(be.fromArray(a), be.fromArray(b), spec));
      const r = check(c.name, got, refMatmul(asF16(a), asF16(b), c.M, c.N, c.K, c.transA, c.transB), refMatmul(a, b, c.M, c.N, c.K, c.transA, c.transB), c.K, 0, !c.positive);
      report.push(`${c.name}: accumulation ${r.acc.toFixed(3)}, input rounding ${r.input.toFixed(3)}`);
    });
  }

  it('linear with a frozen f16 weight read in place (forward x W^T and input gradient gy W), batch of 2', async (t) => {
    const be = await webgpuOrSkip(t);
    if (!be) return;
    if (!be.halfGemm) return t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): f16 GEMM not available');
    const rng = new E.Rng(12);
    const rows = 77, inF = 129, out = 95;
    const x = rnd(rng, rows * inF), w16 = halfOf(rnd(rng, out * inF, false, 0.05)), gy = rnd(rng, rows * out, false, 3e-7);
    const wS = be.fromArray(w16), w = fromHalf(w16);
    const fwd = await onGpu(be, () => be.matmul(be.fromArray(x), wS, { batch: 1, aBatch: 1, bBatch: 1, M: rows, N: out, K: inF, transA: false, transB: true, bHalf: true }));
    const r1 = check('linear forward', fwd, refMatmul(asF16(x), w, rows, out, inF, false, true), refMatmul(x, w, rows, out, inF, false, true), inF);
    const bwd = await onGpu(be, () => be.matmul(be.fromArray(gy), wS, { batch: 1, aBatch: 1, bBatch: 1, M: rows, N: inF, K: out, transA: false, transB: false, bHalf: true }));
    const r2 = check('linear input gradient', bwd, refMatmul(asF16(gy), w, rows, inF, out, false, false), refMatmul(gy, w, rows, inF, out, false, false), out);
    report.push(`linear f16 weight: forward ${r1.acc.toFixed(3)} / ${r1.input.toFixed(3)}, input grad ${r2.acc.toFixed(3)} / ${r2.input.toFixed(3)}`);
  });

  const convs: { name: string; x: number[]; w: number[]; stride: number; pad: number; groups: number; wHalf: boolean }[] = [
    { name: 'conv 3x3 pad 1, 2x37x13x11 -> 41', x: [2, 37, 13, 11], w: [41, 37, 3, 3], stride: 1, pad: 1, groups: 1, wHalf: false },
    { name: 'conv 3x3 stride 2 groups 2, f16 weight', x: [3, 10, 15, 9], w: [14, 5, 3, 3], stride: 2, pad: 1, groups: 2, wHalf: true },
    { name: 'conv 1x1, 1x70x9x7 -> 67, f16 weight', x: [1, 70, 9, 7], w: [67, 70, 1, 1], stride: 1, pad: 0, groups: 1, wHalf: true },
  ];
  for (const c of convs) {
    it(`${c.name}: forward (with bias), input gradient, weight gradient`, async (t) => {
      const be = await webgpuOrSkip(t);
      if (!be) return;
      if (!be.halfGemm) return t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): f16 GEMM not available');
      const rng = new E.Rng(13);
      const [n, cin, h, wd] = c.x, [cout, cg, kh, kw] = c.w;
      const oh = Math.floor((h + 2 * c.pad - kh) / c.stride) + 1, ow = Math.floor((wd + 2 * c.pad - kw) / c.stride) + 1;
      const s: ConvShapes = { x: c.x, w: c.w, out: [n, cout, oh, ow], stride: [c.stride, c.stride], padding: [c.pad, c.pad], groups: c.groups, wHalf: c.wHalf };
      const x = rnd(rng, n * cin * h * wd, false, 20), wF = rnd(rng, cout * cg * kh * kw, false, 0.1), gy = rnd(rng, n * cout * oh * ow, false, 1e-5);
      const bias = rnd(rng, cout);
      const w16 = halfOf(wF);
      const wS = c.wHalf ? be.fromArray(w16) : be.fromArray(wF);
      const wSeen = c.wHalf ? fromHalf(w16) : asF16(wF), wExact = c.wHalf ? fromHalf(w16) : Float64Array.from(wF);
      const r16 = refConv(s, asF16(x), wSeen, asF16(gy)), r32 = refConv(s, x, wExact, gy);
      const withBias = (r: Ref) => ({ sum: r.sum.map((v, i) => v + bias[Math.floor(i / (oh * ow)) % cout]), abs: r.abs });
      const y = await onGpu(be, () => be.conv2d(be.fromArray(x), wS, be.fromArray(bias), s));
      const K = cg * kh * kw;
      const ry = check(`${c.name} forward`, y, withBias(r16.y), withBias(r32.y), K, 2 ** -23);
      const dx = await onGpu(be, () => be.conv2dGradInput(be.fromArray(gy), wS, s));
      const rx = check(`${c.name} input gradient`, dx, r16.dx, r32.dx, (cout / c.groups) * kh * kw);
      const msg = [`forward ${ry.acc.toFixed(3)} / ${ry.input.toFixed(3)}`, `input grad ${rx.acc.toFixed(3)} / ${rx.input.toFixed(3)}`];
      if (!c.wHalf) {
        // The weight gradient exists for trained (f32) weights only.
        const dw = await onGpu(be, () => be.conv2dGradWeight(be.fromArray(gy), be.fromArray(x), s));
        const rw = check(`${c.name} weight gradient`, dw, r16.dw, r32.dw, n * oh * ow);
        msg.push(`weight grad ${rw.acc.toFixed(3)} / ${rw.input.toFixed(3)}`);
      }
      report.push(`${c.name}: ${msg.join(', ')}`);
    });
  }

  // Attention: Q, K, V rounded to f16 (no scaling: activations), products exact, sums and softmax
  // statistics in f32, the probabilities rounded to f16 for PV. Against the f64 attention of the
  // rounded inputs the output error is then at most u * sum_j p_j |v_j| (the rounding of p) plus f32
  // noise; the gradients are those of the rounded forward, within u of their terms' magnitudes.
  const attn = [
    { name: 'attention 2x77x131, d 40, dv 24', b: 2, lq: 77, lk: 131, d: 40, dv: 24, causal: false },
    { name: 'attention causal 3x70x70, d 16', b: 3, lq: 70, lk: 70, d: 16, dv: 16, causal: true },
  ];
  for (const c of attn) {
    it(`${c.name}: forward and backward with f16 QK^T and PV`, async (t) => {
      const be = await webgpuOrSkip(t);
      if (!be) return;
      if (!be.halfGemm) return t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): f16 attention not available');
      const rng = new E.Rng(15);
      const q = rnd(rng, c.b * c.lq * c.d, false, 2), k = rnd(rng, c.b * c.lk * c.d, false, 2), v = rnd(rng, c.b * c.lk * c.dv), gy = rnd(rng, c.b * c.lq * c.dv, false, 1e-3);
      const spec = { batch: c.b, lq: c.lq, lk: c.lk, d: c.d, dv: c.dv, scale: 1 / Math.sqrt(c.d), causal: c.causal };
      const before = be.halfAttentionDispatches;
      const [qs, ks, vs, gs] = [q, k, v, gy].map((x) => be.fromArray(x));
      const o = (await be.read(be.attention(qs, ks, vs, spec))) as Float32Array;
      const g = be.attentionGrad(qs, ks, vs, gs, spec);
      const [dq, dk, dv] = (await Promise.all([g.dq, g.dk, g.dv].map((x) => be.read(x)))) as Float32Array[];
      assert.equal(be.halfAttentionDispatches, before + 4, 'forward, then the backward\'s forward, dQ and dK/dV ran the f16 variant');
      const ref = (round: boolean) => {
        const r = (x: Float32Array) => (round ? Float64Array.from(x, q16) : Float64Array.from(x));
        const Q = r(q), K = r(k), V = r(v);
        const O = new Float64Array(o.length), A = new Float64Array(o.length);
        const dQ = new Float64Array(dq.length), dK = new Float64Array(dk.length), dV = new Float64Array(dv.length);
        const tQ = new Float64Array(dq.length), tK = new Float64Array(dk.length), tV = new Float64Array(dv.length);
        for (let b = 0; b < c.b; b++) {
          for (let i = 0; i < c.lq; i++) {
            const qi = (b * c.lq + i) * c.d, oi = (b * c.lq + i) * c.dv;
            const n = c.causal ? i + 1 : c.lk;
            const x = Array.from({ length: n }, (_, j) => { let s = 0; for (let e = 0; e < c.d; e++) s += Q[qi + e] * K[(b * c.lk + j) * c.d + e]; return s * spec.scale; });
            const m = Math.max(...x), p = x.map((z) => Math.exp(z - m)), sum = p.reduce((a, z) => a + z, 0);
            for (let j = 0; j < n; j++) { p[j] /= sum; for (let e = 0; e < c.dv; e++) { O[oi + e] += p[j] * V[(b * c.lk + j) * c.dv + e]; A[oi + e] += p[j] * Math.abs(V[(b * c.lk + j) * c.dv + e]); } }
            let delta = 0;
            for (let e = 0; e < c.dv; e++) delta += gy[oi + e] * O[oi + e];
            for (let j = 0; j < n; j++) {
              const vj = (b * c.lk + j) * c.dv, kj = (b * c.lk + j) * c.d;
              let dp = 0, dpa = 0;
              for (let e = 0; e < c.dv; e++) { dp += gy[oi + e] * V[vj + e]; dpa += Math.abs(gy[oi + e] * V[vj + e]); dV[vj + e] += p[j] * gy[oi + e]; tV[vj + e] += p[j] * Math.abs(gy[oi + e]); }
              const ds = p[j] * (dp - delta), dsa = p[j] * (dpa + Math.abs(delta));
              for (let e = 0; e < c.d; e++) {
                dQ[qi + e] += spec.scale * ds * K[kj + e]; tQ[qi + e] += spec.scale * dsa * Math.abs(K[kj + e]);
                dK[kj + e] += spec.scale * ds * Q[qi + e]; tK[kj + e] += spec.scale * dsa * Math.abs(Q[qi + e]);
              }
            }
          }
        }
        return { O, A, dQ, dK, dV, tQ, tK, tV };
      };
      const r16 = ref(true), r32 = ref(false);
      const worst = (what: string, got: Float32Array, want: Float64Array, mag: Float64Array, rel: number) => {
        let w = 0;
        for (let i = 0; i < got.length; i++) {
          const tol = rel * mag[i] + 1e-12;
          const e = Math.abs(got[i] - want[i]);
          if (!(e <= tol)) assert.fail(`${c.name} ${what}[${i}]: ${got[i]} vs ${want[i]} (from f16-rounded inputs): error ${e.toExponential(3)} > ${tol.toExponential(3)}`);
          w = Math.max(w, e / tol);
        }
        return w;
      };
      const wo = worst('output', o, r16.O, r16.A, U16 + 2e-5);
      const wq = worst('dQ', dq, r16.dQ, r16.tQ, U16), wk = worst('dK', dk, r16.dK, r16.tK, U16), wv = worst('dV', dv, r16.dV, r16.tV, U16);
      // The inputs really were rounded: the output is much closer to the rounded-input reference.
      let e16 = 0, e32 = 0;
      for (let i = 0; i < o.length; i++) { e16 = Math.max(e16, Math.abs(o[i] - r16.O[i])); e32 = Math.max(e32, Math.abs(r16.O[i] - r32.O[i])); }
      assert.ok(e16 * 4 < e32, `${c.name}: output not closer to the f16-rounded reference (${e16}) than rounding moves it (${e32})`);
      report.push(`${c.name}: output ${wo.toFixed(3)}, dQ ${wq.toFixed(3)}, dK ${wk.toFixed(3)}, dV ${wv.toFixed(3)} (of the u + 2e-5 and u bounds); output error ${e16.toExponential(2)} against ${e32.toExponential(2)} moved by input rounding`);
    });
  }

  it('plain f32 runs keep the f32 kernels; SDLORA_WEBGPU_F16=0 forces them under mixed precision too', async (t) => {
    const be = await webgpuOrSkip(t);
    if (!be) return;
    const rng = new E.Rng(14);
    const a = E.randn([40, 50], rng, 'f32', be), b = E.randn([50, 30], rng, 'f32', be);
    const count = be.halfGemmDispatches;
    be.setHalfCompute(false);
    try {
      assert.equal(be.gemmArithmetic, 'f32');
      await E.matmul(a, b).data();
      assert.equal(be.halfGemmDispatches, count, 'no f16 GEMM outside mixed precision');
      be.setHalfCompute(true);
      const saved = process.env.SDLORA_WEBGPU_F16;
      process.env.SDLORA_WEBGPU_F16 = '0';
      try {
        assert.equal(be.halfGemm, false);
        assert.equal(be.gemmArithmetic, 'f32');
        await E.matmul(a, b).data();
        assert.equal(be.halfGemmDispatches, count, 'no f16 GEMM with SDLORA_WEBGPU_F16=0');
      } finally {
        if (saved === undefined) delete process.env.SDLORA_WEBGPU_F16; else process.env.SDLORA_WEBGPU_F16 = saved;
      }
      assert.equal(be.gemmArithmetic, be.ctx.features.has('shader-f16') ? 'f16' : 'f32');
    } finally {
      be.setHalfCompute(true);
    }
  });
});

describe('doctor names the GEMM arithmetic', () => {
  it('f16 with shader-f16, f32 with SDLORA_WEBGPU_F16=0', async (t) => {
    const be = await webgpuOrSkip(t);
    if (!be) return;
    const doctor = (env: Record<string, string>) => {
      const r = spawnSync(process.execPath, [path.resolve('bin/sdlora.js'), 'doctor'], { encoding: 'utf8', env: { ...process.env, ...env } });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').find((l) => l.includes('GEMM arithmetic')) ?? '';
    };
    const on = doctor({});
    if (be.ctx.features.has('shader-f16')) assert.match(on, /GEMM arithmetic \(matmul, conv2d, attention\): f16 operands with f32 accumulation under mixed_precision fp16/);
    else assert.match(on, /GEMM arithmetic \(matmul, conv2d, attention\): f32 \(no shader-f16\)/);
    assert.match(doctor({ SDLORA_WEBGPU_F16: '0' }), /GEMM arithmetic \(matmul, conv2d, attention\): f32 \(SDLORA_WEBGPU_F16=0\)/);
  });
});

const fx = trainFixture('sdlora-webgpu-f16-train-', {
  dataset: { name: 'ring', repeats: 1, count: 4, size: 32, shapes: ['circle'], seed: 2 },
  defaults: { ...TINY_LORA, max_train_steps: 4, learning_rate: 0.5, optimizer_type: 'SGDNesterov', seed: 5, mixed_precision: 'fp16' },
  dataSub: 'data/train',
});

describe('mixed precision fp16 training on webgpu (f16 GEMMs)', () => {
  before(fx.setup);

  it('follows the cpu run (f32 arithmetic on the same f16 weights): losses within 1% relative', async (t) => {
    const be = await webgpuOrSkip(t);
    if (!be) return;
    if (!be.halfGemm) return t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): f16 GEMM not available');
    const quiet = () => {};
    const cpu = await train(fx.cfg({ output_dir: path.join(fx.tmp, 'cpu') }), { log: quiet });
    const before = be.halfGemmDispatches, beforeAttn = be.halfAttentionDispatches;
    const gpu = await train(fx.cfg({ output_dir: path.join(fx.tmp, 'gpu'), device: 'webgpu' }), { log: quiet });
    const used = be.halfGemmDispatches - before;
    assert.ok(used > 0, 'the run used the f16 GEMM');
    assert.ok(be.halfAttentionDispatches > beforeAttn, 'the run used the f16 attention');
    assert.equal(be.gemmArithmetic, 'f32', 'f16 arithmetic ends with the run');
    assert.equal(gpu.losses.length, 4);
    const rel = gpu.losses.map((l, i) => Math.abs(l.loss - cpu.losses[i].loss) / Math.abs(cpu.losses[i].loss));
    console.log(`fp16 training, webgpu f16 GEMMs (${used} dispatches) and attention (${be.halfAttentionDispatches - beforeAttn}) vs cpu: losses ${gpu.losses.map((l) => l.loss.toPrecision(6)).join(', ')} vs ${cpu.losses.map((l) => l.loss.toPrecision(6)).join(', ')}; relative differences ${rel.map((r) => r.toExponential(2)).join(', ')}`);
    rel.forEach((r, i) => assert.ok(r <= 1e-2, `step ${i + 1}: ${gpu.losses[i].loss} vs ${cpu.losses[i].loss} (relative ${r})`));
    // The loss curve moves (the LoRA trains) and the f16 run is not the f32 one (the f16 path is in effect).
    assert.ok(cpu.losses.some((l) => l.loss !== cpu.losses[0].loss));
  });
});
