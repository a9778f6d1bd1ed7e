// Op-by-op parity of the webgpu backend against the cpu backend: each case runs forward and
// backward on both (same inputs, same upstream gradient) and compares outputs and input gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

type Case = { name: string; inputs: number[][]; fn: (xs: E.Tensor[]) => E.Tensor; tol?: number; positive?: boolean; noGrad?: boolean };

const rnd = (rng: E.Rng, n: number, positive = false) => Float32Array.from({ length: n }, () => (positive ? 0.5 + rng.uniform() : rng.normal()));

const cases: Case[] = [
  ...(['neg', 'exp', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'geluTanh', 'quickGelu', 'abs', 'square'] as const).map((op) => ({
    name: op, inputs: [[3, 7, 5]], fn: (xs: E.Tensor[]) => (E[op] as (t: E.Tensor) => E.Tensor)(xs[0]),
  })),
  ...(['log', 'sqrt', 'rsqrt'] as const).map((op) => ({ name: op, inputs: [[257]], positive: true, fn: (xs: E.Tensor[]) => E[op](xs[0]) })),
  { name: 'scalar ops', inputs: [[4, 9]], fn: (xs) => E.addScalar(E.mulScalar(E.powScalar(xs[0], 3), 0.5), 2) },
  { name: 'clamp', inputs: [[300]], fn: (xs) => E.clamp(xs[0], -0.5, 0.7) },
  { name: 'add same', inputs: [[1000], [1000]], fn: (xs) => E.add(xs[0], xs[1]) },
  { name: 'sub broadcast', inputs: [[2, 3, 4, 5], [3, 1, 5]], fn: (xs) => E.sub(xs[0], xs[1]) },
  { name: 'mul broadcast', inputs: [[2, 8, 6, 6], [1, 8, 1, 1]], fn: (xs) => E.mul(xs[0], xs[1]) },
  { name: 'div broadcast', inputs: [[5, 6], [6]], fn: (xs) => E.div(xs[0], E.addScalar(E.abs(xs[1]), 1)) },
  { name: 'sum / mean', inputs: [[3, 4, 70]], fn: (xs) => E.add(E.sum(xs[0], 2, true), E.mean(xs[0], 2, true)) },
  { name: 'permute', inputs: [[2, 3, 4, 5]], fn: (xs) => E.permute(xs[0], [2, 0, 3, 1]) },
  { name: 'transpose + reshape', inputs: [[6, 10]], fn: (xs) => E.reshape(E.transpose(xs[0], 0, 1), [5, 12]) },
  { name: 'slice', inputs: [[4, 9, 7]], fn: (xs) => E.slice(E.slice(xs[0], 0, 1, 3), 1, 2, 7) },
  { name: 'concat', inputs: [[2, 3, 4], [2, 5, 4], [2, 1, 4]], fn: (xs) => E.concat(xs, 1) },
  { name: 'chunk', inputs: [[2, 6, 3]], fn: (xs) => E.mul(...(E.chunk(xs[0], 2, 1) as [E.Tensor, E.Tensor])) },
  { name: 'matmul', inputs: [[67, 45], [45, 130]], fn: (xs) => E.matmul(xs[0], xs[1]) },
  { name: 'matmul batched broadcast', inputs: [[3, 20, 17], [17, 9]], fn: (xs) => E.matmul(xs[0], xs[1]) },
  { name: 'matmul transposed', inputs: [[2, 17, 20], [2, 9, 17]], fn: (xs) => E.matmul(E.transpose(xs[0], 1, 2), E.transpose(xs[1], 1, 2)) },
  { name: 'linear', inputs: [[2, 7, 33], [19, 33], [19]], fn: (xs) => E.linear(xs[0], xs[1], xs[2]) },
  { name: 'conv2d 3x3 pad 1', inputs: [[2, 5, 9, 11], [7, 5, 3, 3], [7]], fn: (xs) => E.conv2d(xs[0], xs[1], xs[2], { padding: 1 }) },
  { name: 'conv2d stride 2', inputs: [[1, 4, 10, 9], [6, 4, 3, 3], [6]], fn: (xs) => E.conv2d(xs[0], xs[1], xs[2], { stride: 2, padding: 1 }) },
  { name: 'conv2d 1x1 no bias', inputs: [[2, 8, 5, 5], [3, 8, 1, 1]], fn: (xs) => E.conv2d(xs[0], xs[1], null) },
  { name: 'conv2d groups', inputs: [[1, 6, 7, 7], [4, 3, 3, 3], [4]], fn: (xs) => E.conv2d(xs[0], xs[1], xs[2], { padding: 1, groups: 2 }) },
  { name: 'group norm', inputs: [[2, 8, 5, 6], [8], [8]], fn: (xs) => E.groupNorm(xs[0], 4, xs[1], xs[2], 1e-5) },
  { name: 'group norm + silu (fused)', inputs: [[2, 6, 7, 5], [6], [6]], fn: (xs) => E.groupNormSilu(xs[0], 3, xs[1], xs[2], 1e-5) },
  { name: 'group norm, no affine', inputs: [[1, 4, 9]], fn: (xs) => E.groupNorm(xs[0], 2, null, null) },
  { name: 'layer norm', inputs: [[3, 5, 24], [24], [24]], fn: (xs) => E.layerNorm(xs[0], xs[1], xs[2], 1e-5) },
  { name: 'softmax', inputs: [[6, 300]], fn: (xs) => E.softmax(xs[0]) },
  { name: 'attention', inputs: [[2, 3, 70, 8], [2, 3, 50, 8], [2, 3, 50, 12]], fn: (xs) => E.attention(xs[0], xs[1], xs[2]) },
  { name: 'attention causal', inputs: [[2, 77, 16], [2, 77, 16], [2, 77, 16]], fn: (xs) => E.attention(xs[0], xs[1], xs[2], { causal: true }) },
  { name: 'upsample', inputs: [[2, 3, 4, 5]], fn: (xs) => E.upsampleNearest2x(xs[0]) },
  { name: 'mse', inputs: [[4, 30], [4, 30]], fn: (xs) => E.mseLoss(xs[0], xs[1]) },
];

/** Runs a case on cpu and on `gpu` and compares the outputs and input gradients. */
async function compare(gpu: E.Backend, c: Case, rng: E.Rng): Promise<void> {
  {
    const host = c.inputs.map((s) => rnd(rng, s.reduce((a, b) => a * b, 1), c.positive));
    const run = async (be: E.Backend) => {
      const xs = host.map((h, i) => E.tensor(h, c.inputs[i], 'f32', be).requireGrad());
      const y = c.fn(xs);
      const r = E.tensor(rnd(new E.Rng(3), y.size), y.shape, 'f32', be);
      E.sum(E.mul(y, r)).backward();
      return { y: await y.data(), grads: await Promise.all(xs.map((x) => x.grad!.data())) };
    };
    const want = await run(E.cpuBackend), got = await run(gpu);
    const tol = c.tol ?? 1e-4;
    assert.equal(got.y.length, want.y.length, c.name);
    const cmp = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
      assert.ok(worst <= tol, `${c.name} ${what}: max rel diff ${worst}`);
    };
    cmp(got.y, want.y, 'forward');
    got.grads.forEach((g, i) => cmp(g, want.grads[i], `grad ${i}`));
  }
}

test('webgpu matches cpu op by op, forward and backward', async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  const rng = new E.Rng(7);
  for (const c of cases) await compare(gpu, c, rng);
});

test('row reductions (norms, softmax) agree in their subgroup and workgroup-memory forms', async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  const rows = cases.filter((c) => /norm|softmax/.test(c.name));
  assert.ok(rows.length >= 5);
  for (const subgroups of [true, false]) {
    const be = new E.WebGPUBackend(gpu.ctx, null, { subgroups });
    if (subgroups && !be.subgroups) { t.diagnostic('this adapter has no subgroups: only the workgroup-memory form runs'); continue; }
    const rng = new E.Rng(11);
    for (const c of rows) await compare(be, c, rng);
  }
});

test('webgpu reads f16 weights in place in linear and conv2d (forward and input gradient)', async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  const rng = new E.Rng(4);
  for (const [xs, ws, f] of [
    [[3, 5, 37], [19, 37], (x: E.Tensor, w: E.Tensor) => E.linear(x, w)],
    [[2, 6, 9, 7], [5, 6, 3, 3], (x: E.Tensor, w: E.Tensor) => E.conv2d(x, w, null, { padding: 1 })],
  ] as [number[], number[], (x: E.Tensor, w: E.Tensor) => E.Tensor][]) {
    const xh = rnd(rng, xs.reduce((a, b) => a * b, 1)), wh = rnd(rng, ws.reduce((a, b) => a * b, 1));
    const run = async (be: E.Backend) => {
      const x = E.tensor(xh, xs, 'f32', be).requireGrad(), w = E.tensor(wh, ws, 'f32', be).to('f16');
      const y = f(x, w);
      E.sum(E.mul(y, y)).backward();
      return [await y.data(), await x.grad!.data()];
    };
    const [yc, gc] = await run(E.cpuBackend), [yg, gg] = await run(gpu);
    for (const [a, b] of [[yg, yc], [gg, gc]]) for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(b[i])));
    const xg = E.tensor(xh, xs, 'f32', gpu), wg = E.tensor(wh, ws, 'f32', gpu).to('f16');
    const d0: number = gpu.dispatches;
    f(xg, wg);
    assert.equal(gpu.dispatches - d0, 1, 'one product, no widening copy of the weight');
  }
  await assert.rejects(async () => E.linear(E.zeros([1, 2], 'f32', gpu), E.zeros([2, 2], 'f16', gpu).requireGrad()), /cannot be trained/);
});

test('webgpu scopes give temporaries back and keep what is returned', async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  const x = E.tensor([1, 2, 3, 4], [4], 'f32', gpu);
  const released = (t: E.Tensor) => (t.storage as { released: boolean }).released;
  gpu.beginScope();
  const tmp1 = E.mulScalar(x, 2), tmp2 = E.addScalar(tmp1, 1);
  const kept = E.reshape(E.mul(tmp2, x), [2, 2]);
  gpu.endScope([kept.storage]);
  assert.deepEqual([released(tmp1), released(tmp2), released(kept), released(x)], [true, true, false, false]);
  assert.deepEqual(Array.from(await kept.data()), [3, 10, 21, 36]);
  assert.deepEqual(Array.from(await x.data()), [1, 2, 3, 4], 'tensors from before the scope are untouched');
  assert.throws(() => E.neg(tmp1), /released by the end of its scope/);
  // A checkpointed block on the GPU gives the plain graph's gradients.
  const w = E.tensor([0.5, -1, 2, 0.25], [4], 'f32', gpu).requireGrad();
  const block = (a: E.Tensor) => E.silu(E.mul(E.addScalar(a, 1), w));
  E.sum(block(x)).backward();
  const plain = Array.from(await w.grad!.data());
  w.grad = null;
  E.sum(E.checkpoint(block, x)).backward();
  assert.deepEqual(Array.from(await w.grad!.data()), plain);
});

test('webgpu casts, layout on f16 and i32, embeddings, assign', async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  const vals = Float32Array.from({ length: 11 }, (_, i) => (i - 5) * 0.37);
  const h = E.tensor(vals, [11], 'f32', gpu).to('f16');
  assert.deepEqual(Array.from(await h.data()), Array.from(E.tensor(vals, [11]).to('f16').dataSync()));
  const back = await h.to('f32').data();
  for (let i = 0; i < 11; i++) assert.ok(Math.abs(back[i] - vals[i]) < 2e-3);
  const h2 = E.permute(E.reshape(h, [1, 11]), [1, 0]);
  assert.equal(h2.dtype, 'f16');
  assert.deepEqual(Array.from(await h2.data()), Array.from(await h.data()));
  const ids = E.tensor([3, 0, 3, 1], [4], 'i32', gpu);
  assert.deepEqual(Array.from(await E.slice(ids, 0, 1, 3).data()), [0, 3]);
  const table = E.tensor(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3], 'f32', gpu).requireGrad();
  const emb = E.embedding(ids, table);
  assert.deepEqual(Array.from(await emb.data()), [9, 10, 11, 0, 1, 2, 9, 10, 11, 3, 4, 5]);
  E.sum(emb).backward();
  assert.deepEqual(Array.from(await table.grad!.data()), [1, 1, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2]);
  const z = E.zeros([5], 'f32', gpu);
  assert.deepEqual(Array.from(await z.data()), [0, 0, 0, 0, 0]);
  const p = E.tensor([1, 2, 3], [3], 'f32', gpu);
  p.assign(Float32Array.from([4, 5, 6]));
  assert.deepEqual(Array.from(await E.mulScalar(p, 2).data()), [8, 10, 12]);
  assert.deepEqual(Array.from(p.dataSync()), [4, 5, 6]);
});
