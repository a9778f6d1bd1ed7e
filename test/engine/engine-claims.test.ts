// The README's Engine claims: the cpu backend's WebAssembly kernels run on all cores through worker
// threads sharing one WebAssembly.Memory, its GEMM micro-kernel has the shape the README gives,
// cpu attention works one block of queries at a time; the webgpu backend's attention never holds
// an [Lq, Lk] buffer (forward or backward) and its dispatches are submitted in batches.
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { MR, NR } from '../../src/engine/cpu/gemm-wat.js';
import { availableThreads } from '../../src/engine/cpu/kernel-threads.js';
import { WasmPool, getPool } from '../../src/engine/cpu/wasm-pool.js';
import { attentionScratch } from '../../src/engine/cpu/attention.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const ENGINE = README.slice(README.indexOf('## Engine'), README.indexOf('## Benchmarks'));

it('the cpu kernels use SDLORA_THREADS threads, else every core', async () => {
  assert.match(README, /`SDLORA_THREADS` \(kernel threads, a positive whole number; default all cores\)/);
  const saved = process.env.SDLORA_THREADS;
  try {
    delete process.env.SDLORA_THREADS;
    assert.equal(availableThreads(), os.availableParallelism());
    process.env.SDLORA_THREADS = '3';
    assert.equal(availableThreads(), 3);
  } finally {
    if (saved === undefined) delete process.env.SDLORA_THREADS; else process.env.SDLORA_THREADS = saved;
  }
  // The engine's own pool takes that count.
  assert.equal((await getPool()).threads, availableThreads());
});

it('the kernel threads (one per core asked for) share one WebAssembly.Memory, and a softmax split across them is right in every row', async () => {
  assert.match(ENGINE, /on all cores through worker threads sharing one\s+`WebAssembly\.Memory`/);
  const threads = 3;
  const pool = await WasmPool.create(threads);
  assert.equal(pool.threads, threads);
  // The caller is one of them: threads - 1 worker threads, all started on the pool's memory.
  assert.equal((pool as unknown as { workers: unknown[] }).workers.length, threads - 1);
  const rows = 96, cols = 1024, ptr = 1 << 16;
  const mem = pool.reserve(ptr + rows * cols * 4);
  assert.ok(mem instanceof SharedArrayBuffer, 'the kernels\' memory is a SharedArrayBuffer');
  const x = new Float32Array(mem, ptr, rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 3;
  const before = Float32Array.from(x);
  // Large enough to be split across the threads (the kernels' own size rule).
  assert.ok(rows * cols >= 1 << 16);
  pool.runSoftmax(ptr, rows, cols, 1, -1);
  const view = new Float32Array(pool.reserve(0), ptr, rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, before[r * cols + c]);
    let z = 0;
    for (let c = 0; c < cols; c++) z += Math.exp(before[r * cols + c] - max);
    for (const c of [0, 511, cols - 1]) {
      const want = Math.exp(before[r * cols + c] - max) / z;
      assert.ok(Math.abs(view[r * cols + c] - want) < 1e-5 + 1e-4 * want, `row ${r}, col ${c}: ${view[r * cols + c]} vs ${want}`);
    }
  }
});

it('the GEMM micro-kernel has the README\'s shape', () => {
  const m = /runs f32 products in a (\d+)x(\d+) WebAssembly SIMD micro-kernel/.exec(ENGINE);
  assert.ok(m, 'the README gives the micro-kernel\'s rows x columns');
  assert.deepEqual([Number(m[1]), Number(m[2])], [MR, NR]);
});

it('cpu attention holds scores for one block of the README\'s number of queries at a time, per thread', async () => {
  await E.initCpuBackend(); // the wasm kernel, not the JS fallback
  const m = /works through blocks of\s+(\d+) queries/.exec(README);
  assert.ok(m, 'the README gives the query block');
  const block = Number(m[1]);
  const lq = 2 * block + 37, lk = 53, d = 8;
  const rng = new E.Rng(4);
  const q = E.randn([1, lq, d], rng), k = E.randn([1, lk, d], rng), v = E.randn([1, lk, d], rng);
  const y = E.attention(q, k, v);
  assert.deepEqual(y.shape, [1, lq, d]);
  // A thread's score scratch (P, and dP backward) is sized for one block of queries, not for all lq.
  const spec = { batch: 1, lq, lk, d, dv: d, scale: 1, causal: false };
  for (const backward of [false, true]) {
    const { qb, sizes } = attentionScratch(spec, backward);
    assert.equal(qb, block);
    assert.equal(sizes[0], block * lk * 4);
    assert.equal(sizes[1], backward ? block * lk * 4 : 0);
  }
  // And the blocks together give the unblocked result (last query, checked on the host).
  const [qd, kd, vd, yd] = [q, k, v, y].map((t) => t.dataSync() as Float32Array);
  const i = lq - 1, s = new Float64Array(lk);
  for (let j = 0; j < lk; j++) { let a = 0; for (let c = 0; c < d; c++) a += qd[i * d + c] * kd[j * d + c]; s[j] = a / Math.sqrt(d); }
  const mx = Math.max(...s), e = s.map((x) => Math.exp(x - mx)), z = e.reduce((a, b) => a + b, 0);
  for (let c = 0; c < d; c++) {
    let want = 0;
    for (let j = 0; j < lk; j++) want += (e[j] / z) * vd[j * d + c];
    assert.ok(Math.abs(yd[i * d + c] - want) < 1e-4, `y[${i}, ${c}] ${yd[i * d + c]} vs ${want}`);
  }
});

it('webgpu attention allocates no [Lq, Lk] buffer, forward or backward', { timeout: 300_000 }, async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  assert.match(ENGINE, /flash-style attention \(no `\[Lq, Lk\]` buffer, forward or backward\)/);
  const L = 2048, d = 16;
  const rng = new E.Rng(7);
  const host = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const [q, k, v] = [0, 1, 2].map(() => E.tensor(host(L * d), [1, L, d], 'f32', gpu).requireGrad());
  const r = E.tensor(host(L * d), [1, L, d], 'f32', gpu);
  await gpu.sync();
  const base = gpu.pool.allocated;
  gpu.pool.peak = base;
  const y = E.attention(q, k, v);
  E.sum(E.mul(y, r)).backward();
  const grads = await Promise.all([q, k, v].map((x) => x.grad!.data()));
  await gpu.sync();
  const grew = gpu.pool.peak - base;
  const scores = L * L * 4;
  assert.ok(grew > 0, 'the pool counts what the op allocated');
  assert.ok(grew < scores / 4, `attention over ${L}x${L} grew the GPU buffers by ${grew} bytes; one [Lq, Lk] f32 buffer is ${scores}`);
  assert.ok(grads.every((g) => g.every(Number.isFinite)));
  // Control: the same measurement sees a score matrix when one is made (matmul + softmax).
  await gpu.sync();
  const base2 = gpu.pool.allocated;
  gpu.pool.peak = base2;
  const naive = E.noGrad(() => E.matmul(E.softmax(E.mulScalar(E.matmul(q, E.transpose(k, 1, 2)), 1 / Math.sqrt(d))), v));
  const [a, b] = [await naive.data(), await y.data()];
  assert.ok(gpu.pool.peak - base2 >= scores, `a [Lq, Lk] score matrix shows up (${gpu.pool.peak - base2} bytes)`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-4, `flash attention equals the plain one (max diff ${worst})`);
});

it('webgpu dispatches are submitted in batches, not one submit per op', { timeout: 120_000 }, async (t) => {
  const gpu = await webgpuOrSkip(t);
  if (!gpu) return;
  assert.match(ENGINE, /batched command submission/);
  const queue = gpu.ctx.device.queue;
  assert.equal(gpu.ctx.device.queue, queue, 'one queue object');
  let submits = 0;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers) => { submits++; return submit(buffers); };
  try {
    let x = E.tensor(new Float32Array(1000).fill(1), [1000], 'f32', gpu);
    await gpu.sync();
    submits = 0;
    const d0 = gpu.dispatches;
    const ops = 200;
    for (let i = 0; i < ops; i++) x = E.addScalar(x, 1);
    const out = await x.data();
    assert.equal(out[0], 1 + ops);
    assert.ok(gpu.dispatches - d0 >= ops, `${gpu.dispatches - d0} dispatches`);
    assert.ok(submits >= 1 && submits <= 2, `${submits} submits for ${ops} ops`);
    // Control: a flush after every op is one submit each, and the counter sees them.
    submits = 0;
    for (let i = 0; i < 5; i++) { x = E.addScalar(x, 1); gpu.flush(); }
    assert.equal(submits, 5);
  } finally {
    queue.submit = submit;
  }
});

it('WGSL subgroup operations appear only in the row reductions (kernels/norm.ts) and the subgroup-matrix GEMM', () => {
  assert.match(README.slice(README.indexOf('## Not yet')), /subgroups only in row\s+reductions and in a subgroup-matrix \(tensor core\) form of the f16 GEMM/);
  const dir = path.join(ROOT, 'src/engine/webgpu/kernels');
  const using = readdirSync(dir).filter((f) => /\bsubgroup(Add|Max|Min|Mul|Broadcast|Shuffle\w*|Ballot|Elect|All|Any|ExclusiveAdd|InclusiveAdd|Matrix\w*)\s*[(<]|enable subgroups/.test(readFileSync(path.join(dir, f), 'utf8')));
  assert.deepEqual(using, ['gemm.ts', 'norm.ts']);
  assert.match(readFileSync(path.join(dir, 'norm.ts'), 'utf8'), /subgroupAdd\(/);
  // In gemm.ts only the matrix template enables subgroups; the f32 and f16 templates do not.
  const gemm = readFileSync(path.join(dir, 'gemm.ts'), 'utf8');
  assert.equal(gemm.match(/enable subgroups/g)?.length, 1);
  assert.ok(gemm.indexOf('enable subgroups') > gemm.indexOf('export const matrixTemplate'));
});
