// Forward results against independent naive references, and the wasm SIMD kernels against the
// plain JS path (f32 vs f64 of the same data).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { Rng, initCpuBackend, tensor } from '../../src/engine/index.js';
import { gemm, gemmFillB, gemmJs, mat } from '../../src/engine/cpu/gemm.js';
import { setConvBandValues } from '../../src/engine/cpu/conv.js';
import { unary, unaryGrad } from '../../src/engine/cpu/elementwise.js';
import { maxAbsDiff, randT } from '../helpers/gradcheck.js';

const rng = new Rng(11);

function naiveConv(x: E.Tensor, w: E.Tensor, b: E.Tensor | null, stride: number, pad: number, groups: number): number[] {
  const [n, cin, h, wd] = x.shape, [cout, cg, kh, kw] = w.shape;
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1, ow = Math.floor((wd + 2 * pad - kw) / stride) + 1;
  const X = x.dataSync(), W = w.dataSync(), B = b?.dataSync();
  const out: number[] = [];
  const cog = cout / groups;
  for (let i = 0; i < n; i++) for (let o = 0; o < cout; o++) for (let y = 0; y < oh; y++) for (let z = 0; z < ow; z++) {
    let s = B ? B[o] : 0;
    const g = Math.floor(o / cog);
    for (let c = 0; c < cg; c++) for (let p = 0; p < kh; p++) for (let q = 0; q < kw; q++) {
      const iy = y * stride - pad + p, ix = z * stride - pad + q;
      if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
      s += X[((i * cin + g * cg + c) * h + iy) * wd + ix] * W[((o * cg + c) * kh + p) * kw + q];
    }
    out.push(s);
  }
  return out;
}

/** x shape, w shape, stride, padding, groups. */
type ConvCase = [number[], number[], [number, number], [number, number], number];
/** The backend's shapes of a convolution case, its output size computed. */
function convCase([x, w, stride, padding, groups]: ConvCase) {
  const oh = Math.floor((x[2] + 2 * padding[0] - w[2]) / stride[0]) + 1, ow = Math.floor((x[3] + 2 * padding[1] - w[3]) / stride[1]) + 1;
  return { x, w, out: [x[0], w[0], oh, ow], stride, padding, groups };
}

describe('forward kernels against naive references', () => {
  before(() => initCpuBackend());

  it('conv2d equals the direct definition (f32 through wasm, several geometries)', () => {
    for (const [shape, wshape, stride, pad, groups] of [
      [[2, 3, 9, 7], [5, 3, 3, 3], 1, 1, 1], [[1, 4, 8, 8], [6, 2, 3, 3], 2, 1, 2], [[1, 8, 6, 6], [16, 8, 1, 1], 1, 0, 1],
      [[1, 32, 12, 12], [32, 32, 3, 3], 1, 1, 1],
      // Big enough for the wasm GEMM and its im2col kernel: stride 2 with groups, a 5x5 kernel.
      [[2, 6, 11, 9], [8, 3, 3, 3], 2, 1, 2], [[1, 4, 7, 13], [6, 4, 5, 5], 1, 2, 1],
    ] as [number[], number[], number, number, number][]) {
      const x = randT(shape, rng, 1, 'f32'), w = randT(wshape, rng, 0.2, 'f32'), b = randT([wshape[0]], rng, 1, 'f32');
      const y = E.conv2d(x, w, b, { stride, padding: pad, groups });
      assert.ok(maxAbsDiff(y.dataSync(), naiveConv(x, w, b, stride, pad, groups)) < 1e-4, `conv ${shape} ${wshape}`);
    }
  });

  it('conv2d gradients in f32 (wasm, batched im2col) match the f64 path', () => {
    for (const [shape, wshape, stride, pad, groups] of [
      [[3, 8, 9, 7], [6, 8, 3, 3], 1, 1, 1], [[2, 4, 8, 8], [6, 2, 3, 3], 2, 1, 2], [[3, 16, 6, 6], [8, 16, 1, 1], 1, 0, 1],
      [[3, 8, 13, 11], [6, 4, 3, 3], 2, 1, 2], [[2, 5, 9, 10], [7, 5, 5, 5], 1, 2, 1],
    ] as [number[], number[], number, number, number][]) {
      const x = randT(shape, rng), w = randT(wshape, rng, 0.2), gyShape = E.conv2d(x, w, null, { stride, padding: pad, groups }).shape;
      const gy = randT([...gyShape], rng);
      const s = { x: x.shape, w: w.shape, out: gyShape, stride: [stride, stride] as [number, number], padding: [pad, pad] as [number, number], groups };
      const be = E.cpuBackend;
      const f = (t: E.Tensor) => t.to('f32').storage;
      const d64 = be.conv2dGradWeight(gy.storage, x.storage, s, 'f64') as Float64Array, d32 = be.conv2dGradWeight(f(gy), f(x), s, 'f32') as Float32Array;
      const i64 = be.conv2dGradInput(gy.storage, w.storage, s, 'f64') as Float64Array, i32 = be.conv2dGradInput(f(gy), f(w), s, 'f32') as Float32Array;
      assert.ok(maxAbsDiff(d32, d64) < 1e-4, `dW ${shape} ${wshape}`);
      assert.ok(maxAbsDiff(i32, i64) < 1e-4, `dX ${shape} ${wshape}`);
    }
  });

  it('fused group norm + SiLU equals silu(group norm)', () => {
    const x = randT([2, 6, 3, 3], rng), g = randT([6], rng), b = randT([6], rng);
    const fused = E.groupNormSilu(x, 3, g, b, 1e-5).dataSync(), plain = E.silu(E.groupNorm(x, 3, g, b, 1e-5)).dataSync();
    for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(fused[i] - plain[i]) < 1e-6);
  });

  it('fused group norm + SiLU backward in f32 (silu\' in the wasm kernel) matches the f64 path', () => {
    // Sizes below and above the norm kernel's threshold, both above the activation kernel's.
    for (const shape of [[2, 8, 24, 24], [2, 32, 33, 33]]) {
      const x = randT(shape, rng), g = randT([shape[1]], rng), b = randT([shape[1]], rng), gy = randT(shape, rng);
      const grads = (dt: 'f32' | 'f64') => {
        const [xx, gg, bb] = [x, g, b].map((t) => t.to(dt).requireGrad());
        E.sum(E.mul(E.groupNormSilu(xx, 4, gg, bb, 1e-5), gy.to(dt))).backward();
        return [xx, gg, bb].map((t) => t.grad!.dataSync());
      };
      const ref = grads('f64'), got = grads('f32');
      ['dx', 'dgamma', 'dbeta'].forEach((name, i) => {
        const scaleOf = Math.max(...Array.from(ref[i], Math.abs));
        assert.ok(maxAbsDiff(got[i], ref[i]) < 2e-5 * scaleOf, `${name} ${shape}: ${maxAbsDiff(got[i], ref[i])} of ${scaleOf}`);
      });
    }
  });

  it('group norm equals the textbook formula', () => {
    const x = randT([2, 6, 3, 3], rng), g = randT([6], rng), b = randT([6], rng);
    const y = E.groupNorm(x, 3, g, b, 1e-5).dataSync();
    const X = x.dataSync(), G = g.dataSync(), B = b.dataSync();
    for (let n = 0; n < 2; n++) for (let grp = 0; grp < 3; grp++) {
      const idx: number[] = [];
      for (let c = grp * 2; c < grp * 2 + 2; c++) for (let s = 0; s < 9; s++) idx.push((n * 6 + c) * 9 + s);
      const m = idx.reduce((a, i) => a + X[i], 0) / idx.length;
      const v = idx.reduce((a, i) => a + (X[i] - m) ** 2, 0) / idx.length;
      for (const i of idx) {
        const c = Math.floor(i / 9) % 6;
        assert.ok(Math.abs(y[i] - ((X[i] - m) / Math.sqrt(v + 1e-5) * G[c] + B[c])) < 1e-12);
      }
    }
  });

  it('fused attention equals softmax(q k^T * scale) v, with and without the causal mask', () => {
    const q = randT([2, 7, 4], rng), k = randT([2, 7, 4], rng), v = randT([2, 7, 3], rng);
    for (const causal of [false, true]) {
      let s = E.mulScalar(E.matmul(q, E.transpose(k)), 0.5);
      if (causal) {
        const mask = new Float64Array(49).map((_, i) => (i % 7 > Math.floor(i / 7) ? -Infinity : 0));
        s = E.add(s, tensor(mask, [7, 7], 'f64'));
      }
      const ref = E.matmul(E.softmax(s), v).dataSync();
      assert.ok(maxAbsDiff(E.attention(q, k, v, { scale: 0.5, causal }).dataSync(), ref) < 1e-12);
    }
  });

  it('attention over more queries than one block (f32, wasm) matches the f64 path', () => {
    const q = randT([1, 600, 16], rng), k = randT([1, 300, 16], rng), v = randT([1, 300, 8], rng);
    const ref = E.attention(q, k, v).dataSync();
    const got = E.attention(q.to('f32'), k.to('f32'), v.to('f32')).dataSync();
    assert.ok(maxAbsDiff(got, ref) < 1e-5);
  });

  it('the wasm softmax inside attention handles odd lengths, causal masks and large scores', () => {
    for (const [lq, lk, causal, scale] of [[37, 37, true, 0.3], [50, 77, false, 1], [9, 3, false, 8], [64, 64, true, 4]] as const) {
      const q = randT([2, lq, 8], rng), k = randT([2, lk, 8], rng), v = randT([2, lk, 5], rng);
      const ref = E.attention(q, k, v, { causal, scale }).dataSync();
      const got = E.attention(q.to('f32'), k.to('f32'), v.to('f32'), { causal, scale }).dataSync();
      assert.ok(maxAbsDiff(got, ref) < 2e-5, `lq ${lq} lk ${lk} causal ${causal}`);
    }
  });

  it('the fused wasm attention (forward and backward, slices on all threads) matches the f64 path', () => {
    // Odd head sizes, several query blocks (lq past the kernel's block of 128), K blocks of the P V
    // product (lk past 256), causal masks, lk < lq, more slices than threads and a single slice.
    for (const [b, lq, lk, d, dv, causal, scale] of [
      [3, 37, 37, 8, 5, true, 0.3], [2, 50, 77, 8, 5, false, 1], [1, 300, 290, 13, 7, false, 0.25],
      [5, 260, 260, 40, 40, true, 0.158], [2, 9, 3, 8, 5, false, 2], [1, 129, 513, 3, 9, false, 0.5],
    ] as const) {
      const q = randT([b, lq, d], rng), k = randT([b, lk, d], rng), v = randT([b, lk, dv], rng), gy = randT([b, lq, dv], rng);
      const run = (dt: 'f32' | 'f64') => {
        const [qq, kk, vv] = [q, k, v].map((t) => t.to(dt).requireGrad());
        const y = E.attention(qq, kk, vv, { causal, scale });
        E.sum(E.mul(y, gy.to(dt))).backward();
        return [y, qq.grad!, kk.grad!, vv.grad!].map((t) => t.dataSync());
      };
      const ref = run('f64'), got = run('f32');
      ['y', 'dq', 'dk', 'dv'].forEach((name, i) => {
        const scaleOf = Math.max(...Array.from(ref[i], Math.abs));
        assert.ok(maxAbsDiff(got[i], ref[i]) < 1e-5 * scaleOf, `${name} of b ${b} lq ${lq} lk ${lk} d ${d} dv ${dv} causal ${causal}: ${maxAbsDiff(got[i], ref[i])}`);
      });
    }
  });

  it('multi-head attention on the projections\' layout equals splitting the heads out, attending and merging (f32 wasm and f64, gradients too)', () => {
    for (const [b, lq, lk, heads, d, dv, causal] of [[2, 37, 20, 3, 5, 7, false], [1, 140, 140, 8, 8, 8, true], [3, 9, 77, 2, 13, 4, false]] as const) {
      const q = randT([b, lq, heads * d], rng), k = randT([b, lk, heads * d], rng), v = randT([b, lk, heads * dv], rng), gy = randT([b, lq, heads * dv], rng);
      const split = (t: E.Tensor) => E.transpose(E.reshape(t, [t.shape[0], t.shape[1], heads, -1]), 1, 2);
      const viaSplit = (qq: E.Tensor, kk: E.Tensor, vv: E.Tensor) => E.reshape(E.transpose(E.attention(split(qq), split(kk), split(vv), { causal }), 1, 2), [b, lq, heads * dv]);
      const fused = (qq: E.Tensor, kk: E.Tensor, vv: E.Tensor) => E.multiHeadAttention(qq, kk, vv, heads, { causal });
      const run = (f: typeof fused, dt: 'f32' | 'f64') => {
        const [qq, kk, vv] = [q, k, v].map((t) => t.to(dt).detach().requireGrad());
        const y = f(qq, kk, vv);
        E.sum(E.mul(y, gy.to(dt))).backward();
        return [y, qq.grad!, kk.grad!, vv.grad!].map((t) => t.dataSync());
      };
      const ref = run(viaSplit, 'f64');
      for (const [got, tol, what] of [[run(fused, 'f64'), 1e-12, 'f64'], [run(fused, 'f32'), 2e-5, 'f32']] as const) {
        ['y', 'dq', 'dk', 'dv'].forEach((name, i) => {
          const scaleOf = Math.max(...Array.from(ref[i], Math.abs));
          assert.ok(maxAbsDiff(got[i], ref[i]) < tol * scaleOf, `${what} ${name} of b ${b} lq ${lq} lk ${lk} heads ${heads}: ${maxAbsDiff(got[i], ref[i])}`);
        });
      }
    }
  });

  it('softmax in f32 (rows in the wasm kernel) matches the f64 path', () => {
    for (const shape of [[37, 53], [3, 300, 257], [5, 3]]) {
      const x = randT(shape, rng, 4);
      const ref = E.softmax(x).dataSync(), got = E.softmax(x.to('f32')).dataSync();
      assert.ok(maxAbsDiff(got, ref) < 1e-6, `softmax ${shape}: ${maxAbsDiff(got, ref)}`);
    }
  });

  it('linear with a bias (the bias as the product\'s starting values, wasm f32) equals x W^T + b', () => {
    for (const [lead, inF, out] of [[[2, 37], 19, 23], [[5], 3, 2], [[1, 64], 96, 130]] as [number[], number, number][]) {
      const x = randT([...lead, inF], rng), w = randT([out, inF], rng), b = randT([out], rng);
      const X = x.dataSync(), W = w.dataSync(), B = b.dataSync();
      const rows = X.length / inF;
      const ref = Array.from({ length: rows * out }, (_, i) => {
        const r = Math.floor(i / out), o = i % out;
        let s = B[o];
        for (let k = 0; k < inF; k++) s += X[r * inF + k] * W[o * inF + k];
        return s;
      });
      for (const dt of ['f32', 'f64'] as const) {
        const y = E.linear(x.to(dt), w.to(dt), b.to(dt));
        assert.deepEqual(y.shape, [...lead, out]);
        assert.ok(maxAbsDiff(y.dataSync(), ref) < (dt === 'f32' ? 2e-5 * Math.sqrt(inF) : 1e-12), `${dt} [${lead}, ${inF}] -> ${out}`);
      }
    }
  });

  it('wasm gemm matches the JS reference for odd sizes and every transpose', () => {
    for (const [M, N, K] of [[1, 1, 1], [6, 8, 1], [7, 9, 300], [33, 65, 17], [130, 70, 513]]) {
      for (const ta of [false, true]) for (const tb of [false, true]) {
        const A = Float32Array.from({ length: M * K }, () => rng.normal());
        const B = Float32Array.from({ length: K * N }, () => rng.normal());
        const av = ta ? mat(A, 0, 1, M) : mat(A, 0, K, 1);
        const bv = tb ? mat(B, 0, 1, K) : mat(B, 0, N, 1);
        const c1 = Float32Array.from({ length: M * N }, () => 1), c2 = c1.slice();
        gemm(M, N, K, av, bv, c1, 0, true);
        gemmJs(M, N, K, av, bv, c2, 0, true);
        assert.ok(maxAbsDiff(c1, c2) < 1e-4 * Math.sqrt(K), `gemm ${M}x${N}x${K} ta=${ta} tb=${tb}`);
      }
    }
  });

  it('wasm gemm packs in wasm on all threads: offsets, several k blocks, k tails, partial panels, sparse views', () => {
    // Sizes past the threaded thresholds (pack >= 65536 elements, gemm >= 2^20 MACs) whose panel
    // counts do not divide into the threads' chunks evenly; K = 600 and 1030 take 3 and 5 k blocks
    // (kc 200 and 206, so the 4x4 transposes leave tails of 0 and 2); M = 151 ends on a 3-row panel.
    for (const [M, N, K] of [[151, 37, 600], [5, 300, 1030], [64, 17, 2049], [301, 1030, 3], [9, 13, 7]]) {
      for (const ta of [false, true]) for (const tb of [false, true]) for (const sparse of [false, true]) {
        // sparse: every other row/column of a twice larger array, copied by the JS packer instead.
        const s = sparse ? 3 : 1, oa = 5, ob = 3;
        const A = Float32Array.from({ length: oa + M * K * s + 8 }, () => rng.normal());
        const B = Float32Array.from({ length: ob + K * N * s + 8 }, () => rng.normal());
        const av = ta ? mat(A, oa, 1, M * s) : mat(A, oa, K * s, 1);
        const bv = tb ? mat(B, ob, 1, K * s) : mat(B, ob, N * s, 1);
        const c1 = Float32Array.from({ length: M * N + 4 }, () => 1), c2 = c1.slice();
        gemm(M, N, K, av, bv, c1, 2, true);
        gemmJs(M, N, K, av, bv, c2, 2, true);
        assert.ok(maxAbsDiff(c1, c2) < 1e-4 * Math.sqrt(K), `gemm ${M}x${N}x${K} ta=${ta} tb=${tb} sparse=${sparse}`);
        assert.equal(c1[0], 1); assert.equal(c1[M * N + 3], 1);
      }
    }
  });

  it('gemmFillB (im2col written into the kernels\' memory) matches the JS reference', () => {
    for (const [M, N, K] of [[33, 1030, 77], [150, 20, 900], [3, 5, 300]]) {
      const A = Float32Array.from({ length: M * K }, () => rng.normal());
      const B = Float32Array.from({ length: K * N }, () => rng.normal());
      for (const acc of [false, true]) {
        const c1 = Float32Array.from({ length: M * N }, () => 2), c2 = c1.slice();
        gemmFillB(M, N, K, mat(A, 0, K, 1), (mem, off) => mem.set(B, off), c1, 0, acc);
        gemmJs(M, N, K, mat(A, 0, K, 1), mat(B, 0, N, 1), c2, 0, acc);
        assert.ok(maxAbsDiff(c1, c2) < 1e-4 * Math.sqrt(K), `fillB ${M}x${N}x${K} acc=${acc}`);
      }
    }
  });

  it('silu and gelu of big f32 tensors (wasm, all threads) match the f64 loops, odd lengths and extremes included', () => {
    // 65539 is just past the wasm threshold and not a multiple of 4; 300001 spans many chunks.
    for (const n of [65539, 300001, 1001]) {
      const x = Float32Array.from({ length: n }, (_, i) => (i % 11 === 0 ? 30 : 4) * rng.normal());
      x.set([0, -0, 1e-8, 100, -100, 89, -89, 1e30, -1e30], 0);
      x[n - 1] = -3.5;
      const g = Float32Array.from({ length: n }, () => rng.normal());
      const x64 = Float64Array.from(x), g64 = Float64Array.from(g);
      for (const op of ['silu', 'gelu'] as const) {
        const y = unary(op, x, 'f32', n, 0), ref = unary(op, x64, 'f64', n, 0);
        const gy = unaryGrad(op, x, g, 'f32', n, 0), gref = unaryGrad(op, x64, g64, 'f64', n, 0);
        for (let i = 0; i < n; i++) {
          assert.ok(Math.abs(y[i] - ref[i]) <= 2e-6 * Math.max(1, Math.abs(ref[i])), `${op}(${x[i]}) = ${y[i]}, want ${ref[i]} (n ${n}, i ${i})`);
          assert.ok(Math.abs(gy[i] - gref[i]) <= 4e-6 * Math.max(1, Math.abs(gref[i])), `${op}'(${x[i]}) = ${gy[i]}, want ${gref[i]} (n ${n}, i ${i})`);
        }
      }
    }
  });

  it('conv input gradient folded by the wasm col2im (threads split planes) matches the f64 JS fold', () => {
    // Strides, padding, groups, non-square kernels and batches whose plane counts (n * cin / groups)
    // do not divide into the threads' chunks evenly.
    const cases: ConvCase[] = [
      [[2, 3, 40, 37], [5, 3, 3, 3], [1, 1], [1, 1], 1],
      [[3, 6, 40, 41], [4, 3, 3, 2], [2, 1], [1, 0], 2],
      [[2, 7, 65, 19], [8, 7, 1, 3], [1, 2], [0, 1], 1],
      [[2, 16, 64, 64], [16, 16, 3, 3], [2, 2], [1, 1], 1],
    ];
    for (const c of cases) {
      const s = convCase(c), ws = s.w;
      const w = Float32Array.from({ length: ws.reduce((a, b) => a * b) }, () => rng.normal());
      const gy = Float32Array.from({ length: s.out.reduce((a, b) => a * b) }, () => rng.normal());
      const got = E.cpuBackend.conv2dGradInput(gy, w, s, 'f32') as Float32Array;
      const ref = E.cpuBackend.conv2dGradInput(Float64Array.from(gy), Float64Array.from(w), s, 'f64') as Float64Array;
      assert.equal(got.length, ref.length);
      assert.ok(maxAbsDiff(got, ref) < 1e-4 * Math.sqrt(ws[0] * ws[2] * ws[3]), `conv input grad ${JSON.stringify(s)}`);
    }
  });

  it('convolutions of big images, run in bands of output rows, equal the whole-image result', () => {
    // A tiny band threshold puts these small images through the banded path (the real one, 64M
    // column values, keeps a 512 px VAE decode under WebAssembly's 4 GiB). Band edges meet the
    // top and bottom padding, strides that skip rows, 5x5 and non-square kernels and groups.
    const cases: ConvCase[] = [
      [[2, 3, 17, 13], [5, 3, 3, 3], [1, 1], [1, 1], 1],
      [[1, 4, 19, 11], [6, 2, 3, 3], [2, 2], [1, 1], 2],
      [[2, 5, 14, 9], [4, 5, 5, 5], [1, 1], [2, 2], 1],
      [[1, 6, 21, 12], [8, 6, 3, 2], [2, 1], [0, 1], 1],
      [[1, 32, 40, 40], [32, 32, 3, 3], [1, 1], [1, 1], 1],
    ];
    for (const dtype of ['f32', 'f64'] as const) for (const c of cases) {
      const s = convCase(c), { x: xs, w: ws } = s, [, , oh, ow] = s.out;
      const arr = (n: number, scale = 1) => {
        const a = dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
        for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
        return a;
      };
      const x = arr(xs.reduce((a, b) => a * b)), w = arr(ws.reduce((a, b) => a * b), 0.2), bias = arr(ws[0]);
      const gy = arr(s.out.reduce((a, b) => a * b));
      const be = E.cpuBackend;
      const run = () => [be.conv2d(x, w, bias, s, dtype), be.conv2dGradInput(gy, w, s, dtype), be.conv2dGradWeight(gy, x, s, dtype)] as Float32Array[];
      const whole = run();
      // Bands of one to a few output rows.
      for (const rows of [1, 3]) {
        const was = setConvBandValues(rows * ws[1] * ws[2] * ws[3] * ow);
        let banded: Float32Array[];
        try { banded = run(); } finally { setConvBandValues(was); }
        const tol = dtype === 'f32' ? 1e-4 : 1e-10;
        ['y', 'dx', 'dw'].forEach((name, i) => {
          assert.equal(banded[i].length, whole[i].length);
          assert.ok(maxAbsDiff(banded[i], whole[i]) < tol * Math.sqrt(ws[1] * ws[2] * ws[3] * Math.max(1, name === 'dw' ? oh * ow : 1)),
            `${dtype} ${name} in bands of ${rows} rows ${JSON.stringify(s)}: off by ${maxAbsDiff(banded[i], whole[i])}`);
        });
      }
    }
  });

  it('frozen f16 weights are read in place by linear and conv2d (forward and input gradient, f32 and f64) as their widened values', () => {
    assert.ok(E.cpuBackend.halfWeights);
    for (const dtype of ['f32', 'f64'] as const) {
      for (const [xs, ws, f] of [
        [[3, 5, 37], [19, 37], (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.linear(x, w, b)],
        [[4, 96], [80, 96], (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.linear(x, w, b)],
        [[2, 6, 9, 7], [5, 6, 3, 3], (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.conv2d(x, w, b, { padding: 1 })],
        [[1, 16, 12, 12], [24, 16, 3, 3], (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.conv2d(x, w, b, { stride: 2, padding: 1 })],
      ] as [number[], number[], (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.Tensor][]) {
        const wh = randT(ws, rng, 0.3, 'f32').to('f16'), b = randT([ws[0]], rng, 1, dtype), x0 = randT(xs, rng, 1, dtype);
        const run = (w: E.Tensor) => {
          const x = x0.detach().requireGrad();
          const y = f(x, w, b);
          E.sum(E.mul(y, y)).backward();
          return [y.dataSync(), x.grad!.dataSync()];
        };
        // Twice in place (the widening buffer is reused), against the weight widened explicitly.
        const [y1, g1] = run(wh), [y2, g2] = run(wh), [yr, gr] = run(wh.to(dtype));
        for (const [a, r] of [[y1, yr], [g1, gr], [y2, yr], [g2, gr]]) assert.ok(maxAbsDiff(a, r) < (dtype === 'f32' ? 1e-4 : 1e-10) * (1 + Math.max(...Array.from(r, Math.abs))), `${dtype} ${xs} x ${ws}`);
      }
    }
  });

  it('group and layer norm of big f32 tensors (wasm, rows split across threads) match the f64 JS kernel', () => {
    // [N, C, H, W] group norms (rows N*G, channel runs of H*W) and [T, D] layer norms (inner 1);
    // row counts that do not divide into the threads' chunks, with and without affine, with SiLU.
    const cases: { rows: number; size: number; inner: number; channels: number }[] = [
      { rows: 2 * 8, size: 5 * 31 * 29, inner: 31 * 29, channels: 40 }, // N 2, C 40, G 8
      { rows: 3 * 32, size: 2 * 17 * 19, inner: 17 * 19, channels: 64 }, // N 3, C 64, G 32
      { rows: 333, size: 320, inner: 1, channels: 320 }, // layer norm
      { rows: 1, size: 40000, inner: 10000, channels: 4 },
    ];
    for (const L of cases) for (const affine of [true, false]) for (const act of ['none', 'silu'] as const) {
      const n = L.rows * L.size;
      const x = Float32Array.from({ length: n }, () => 3 * rng.normal() + 0.5);
      const gy = Float32Array.from({ length: n }, () => rng.normal());
      const g = affine ? Float32Array.from({ length: L.channels }, () => rng.normal()) : null;
      const b = affine ? Float32Array.from({ length: L.channels }, () => rng.normal()) : null;
      const f64 = (a: Float32Array | null) => (a ? Float64Array.from(a) : null);
      const got = E.cpuBackend.norm(x, g, b, L, 1e-5, 'f32', act);
      const ref = E.cpuBackend.norm(f64(x)!, f64(g), f64(b), L, 1e-5, 'f64', act);
      const what = `${JSON.stringify(L)} affine ${affine} ${act}`;
      assert.ok(maxAbsDiff(got.y as Float32Array, ref.y as Float64Array) < 2e-5, `y ${what}`);
      assert.ok(maxAbsDiff(got.mean as Float32Array, ref.mean as Float64Array) < 1e-5, `mean ${what}`);
      assert.ok(maxAbsDiff(got.rstd as Float32Array, ref.rstd as Float64Array) < 1e-5, `rstd ${what}`);
      const gg = E.cpuBackend.normGrad(gy, x, g, b, got.mean, got.rstd, L, 'f32', act);
      const gr = E.cpuBackend.normGrad(f64(gy)!, f64(x)!, f64(g), f64(b), ref.mean, ref.rstd, L, 'f64', act);
      assert.ok(maxAbsDiff(gg.dx as Float32Array, gr.dx as Float64Array) < 1e-4, `dx ${what}`);
      if (affine) {
        const scale = Math.sqrt(n / L.channels);
        assert.ok(maxAbsDiff(gg.dgamma as Float32Array, gr.dgamma as Float64Array) < 1e-4 * scale, `dgamma ${what}`);
        assert.ok(maxAbsDiff(gg.dbeta as Float32Array, gr.dbeta as Float64Array) < 1e-4 * scale, `dbeta ${what}`);
      } else assert.equal(gg.dgamma, null);
    }
  });

  it('upsample, embedding, permute and concat move the right values', () => {
    const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
    assert.deepEqual([...E.upsampleNearest2x(x).dataSync()], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const t = tensor([0, 1, 10, 11, 20, 21], [3, 2]);
    assert.deepEqual([...E.embedding(tensor([2, 0], [2], 'i32'), t).dataSync()], [20, 21, 0, 1]);
    const p = E.permute(tensor([0, 1, 2, 3, 4, 5], [1, 2, 3]), [2, 0, 1]);
    assert.deepEqual(p.shape, [3, 1, 2]);
    assert.deepEqual([...p.dataSync()], [0, 3, 1, 4, 2, 5]);
    const c = E.concat([tensor([1, 2], [2, 1]), tensor([3, 4, 5, 6], [2, 2])], 1);
    assert.deepEqual([...c.dataSync()], [1, 3, 4, 2, 5, 6]);
    assert.throws(() => E.embedding(tensor([3], [1], 'i32'), t), /out of range/);
  });
});
