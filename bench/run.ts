// `npm run bench`: per-op timings on the cpu backend (wasm SIMD + worker threads).
// Prints op, shape, ms (median of several runs after a warm-up) and GFLOP/s.
import * as E from '../src/engine/index.js';
import { Rng, initCpuBackend } from '../src/engine/index.js';
import { getPool } from '../src/engine/cpu/wasm-pool.js';
import { gemm, mat } from '../src/engine/cpu/gemm.js';
import { SD15_UNET_CONFIG } from '../src/models/sd15-configs.js';
import { parseUNetConfig } from '../src/models/unet-config.js';
import { randomUNetWeights } from '../src/models/unet-params.js';
import { UNet2DConditionModel } from '../src/models/unet.js';

await initCpuBackend();
const threads = (await getPool()).threads;
const rng = new Rng(0);
const rand = (shape: number[]) => E.randn(shape, rng);

function time(fn: () => void, runs = 5): number {
  if (runs > 1) fn();
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

{
  // Tiny UNet (the golden fixtures' config): one training step, forward + backward.
  const cfg = parseUNetConfig({ ...SD15_UNET_CONFIG, block_out_channels: [32, 64], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'], cross_attention_dim: 32 });
  const weights = randomUNetWeights(cfg, 1);
  weights.requireGrad();
  const unet = new UNet2DConditionModel(cfg, weights);
  const x = rand([2, 4, 32, 32]), ctx = rand([2, 77, 32]), t = E.tensor([10, 500], [2]);
  bench('tiny UNet fwd+bwd', '2x4x32x32 ctx 77x32', 0, () => E.mseLoss(unet.forward(x, t, ctx), x).backward(), 5);
}

if (process.argv.includes('--sd15')) {
  // SD 1.5-shaped UNet with random weights: one forward at a 64x64 latent (512 px), batch 1.
  const cfg = parseUNetConfig(SD15_UNET_CONFIG);
  const unet = new UNet2DConditionModel(cfg, randomUNetWeights(cfg, 2));
  const x = rand([1, 4, 64, 64]), ctx = rand([1, 77, 768]), t = E.tensor([500], [1]);
  bench('SD1.5 UNet fwd (random weights)', '1x4x64x64 ctx 77x768', 0, () => E.noGrad(() => unet.forward(x, t, ctx)), 1);
  console.error(`  peak RSS ${(process.resourceUsage().maxRSS / 1048576).toFixed(2)} GiB`);
}

console.log(`\nsdlora cpu backend, ${threads} thread(s), node ${process.version}\n`);
console.log('| op | shape | ms | GFLOP/s |');
console.log('|---|---|---:|---:|');
for (const [op, shape, ms, gf] of rows) console.log(`| ${op} | ${shape} | ${ms.toFixed(1)} | ${gf ? gf.toFixed(1) : '-'} |`);
