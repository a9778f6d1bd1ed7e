// Dawn's disable_robustness toggle on the webgpu backend: times a few kernels with the toggle as
// given in SDLORA_DAWN_OPTIONS (run once with, once without; docs/webgpu.md has the figures).
//   SDLORA_DAWN_OPTIONS=enable-dawn-features=disable_robustness node --import tsx bench/robustness-probe.ts
import * as E from '../src/engine/index.js';

const gpu = await E.getWebGPUBackend();
const rng = new E.Rng(0);
const rand = (s: number[]) => E.randn(s, rng, 'f32', gpu);
async function med(fn: () => unknown, runs = 5): Promise<number> {
  fn(); await gpu.sync();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) { const t0 = performance.now(); fn(); await gpu.sync(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[runs >> 1];
}
const a = rand([512, 512]), b = rand([512, 512]);
const x = rand([1, 128, 32, 32]), w = E.mulScalar(rand([128, 128, 3, 3]), 0.02);
const q = rand([8, 1024, 40]), k = rand([8, 1024, 40]), v = rand([8, 1024, 40]);
const h = rand([2, 32, 32, 32]), g = rand([32]), be = rand([32]);
const rows: [string, number][] = [
  ['matmul 512^3', await med(() => E.matmul(a, b))],
  ['conv2d 1x128x32x32 k3', await med(() => E.conv2d(x, w, null, { padding: 1 }))],
  ['attention 8x1024x40', await med(() => E.attention(q, k, v))],
  ['group norm 2x32x32x32', await med(() => E.groupNorm(h, 8, g, be))],
];
console.log(`dawn options: "${process.env.SDLORA_DAWN_OPTIONS ?? ''}"`);
for (const [n, ms] of rows) console.log(`${n}: ${ms.toFixed(1)} ms`);
