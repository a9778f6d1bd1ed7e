// `npm run bench`: per-op timings on the cpu backend (wasm SIMD + worker threads).
// Prints op, shape, ms (median of several runs after a warm-up) and GFLOP/s.
import * as E from '../src/engine/index.js';
import { Rng, initCpuBackend } from '../src/engine/index.js';
import { getPool } from '../src/engine/cpu/wasm-pool.js';
import { gemm, mat } from '../src/engine/cpu/gemm.js';

await initCpuBackend();
const threads = (await getPool()).threads;
const rng = new Rng(0);
const rand = (shape: number[]) => E.randn(shape, rng);

function time(fn: () => void, runs = 5): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) { const t0 = performance.now(); fn(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

const rows: [string, string, number, number][] = [];
function bench(op: string, shape: string, flops: number, fn: () => void, runs?: number): void {
  const ms = time(fn, runs);
  rows.push([op, shape, ms, flops / ms / 1e6]);
  console.error(`  ${op} ${shape}: ${ms.toFixed(1)} ms`);
}

for (const n of [512, 1024]) {
  const a = new Float32Array(n * n).map(() => rng.normal()), b = new Float32Array(n * n).map(() => rng.normal()), c = new Float32Array(n * n);
  bench('matmul f32', `${n}x${n}x${n}`, 2 * n ** 3, () => gemm(n, n, n, mat(a, 0, n, 1), mat(b, 0, n, 1), c, 0, false));
}

{
  const x = rand([1, 320, 64, 64]), w = E.mulScalar(rand([320, 320, 3, 3]), 0.02), gy = rand([1, 320, 64, 64]);
  const flops = 2 * 320 * 320 * 9 * 64 * 64;
  const s = { x: x.shape, w: w.shape, out: [1, 320, 64, 64], stride: [1, 1] as [number, number], padding: [1, 1] as [number, number], groups: 1 };
  const be = E.cpuBackend;
  bench('conv2d fwd', '1x320x64x64 k3', flops, () => be.conv2d(x.storage, w.storage, null, s, 'f32'), 3);
  bench('conv2d bwd input', '1x320x64x64 k3', flops, () => be.conv2dGradInput(gy.storage, w.storage, s, 'f32'), 3);
  bench('conv2d bwd weight', '1x320x64x64 k3', flops, () => be.conv2dGradWeight(gy.storage, x.storage, s, 'f32'), 3);
}

{
  // SD1.5 first-level self-attention at 512px: 8 heads, 4096 tokens, head dim 40.
  const q = rand([8, 4096, 40]), k = rand([8, 4096, 40]), v = rand([8, 4096, 40]);
  const flops = 4 * 8 * 4096 * 4096 * 40;
  bench('attention fwd', '8x4096x40', flops, () => E.attention(q, k, v), 3);
  const be = E.cpuBackend;
  const spec = { batch: 8, lq: 4096, lk: 4096, d: 40, dv: 40, scale: 1 / Math.sqrt(40), causal: false };
  bench('attention bwd', '8x4096x40', 2 * flops, () => be.attentionGrad(q.storage, k.storage, v.storage, q.storage, spec, 'f32'), 3);
}

{
  const x = rand([2, 320, 64, 64]), g = rand([320]), b = rand([320]);
  bench('group norm fwd', '2x320x64x64 g32', 0, () => E.groupNorm(x, 32, g, b));
  const h = rand([2, 4096, 320]);
  bench('layer norm fwd', '2x4096x320', 0, () => E.layerNorm(h, g, b));
  bench('silu', '2x320x64x64', 0, () => E.silu(x));
}

console.log(`\nsdlora cpu backend, ${threads} thread(s), node ${process.version}\n`);
console.log('| op | shape | ms | GFLOP/s |');
console.log('|---|---|---:|---:|');
for (const [op, shape, ms, gf] of rows) console.log(`| ${op} | ${shape} | ${ms.toFixed(1)} | ${gf ? gf.toFixed(1) : '-'} |`);
