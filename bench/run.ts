// `npm run bench`: per-op timings on the cpu backend (wasm SIMD + worker threads) and, when an
// adapter exists, the webgpu backend, side by side. Each figure is the median of several runs
// after a warm-up (which also compiles the GPU shaders); GPU runs are timed to queue completion.
//   --cpu / --webgpu   one backend only
//   --sd15             add an SD1.5-shaped UNet forward (random weights, 64x64 latent, batch 1)
//   --sd15-train       add an SD1.5-shaped UNet LoRA training step (random weights, 512 px, batch 2)
//   --sdxl-train       add an SDXL-shaped UNet LoRA training step (the SDXL base config with random
//                      weights, f16 frozen weights, checkpointing, 1024 px, batch 1): time, peak RSS and
//                      peak GPU buffers; run it alone (--no-cases --no-ops) so the peaks are its own
//   --px=N --batch=B   image size and batch of --sd15-train / --sdxl-train (scripts/gpu-check.sh shrinks it on a software adapter)
//   --no-cases         skip the three whole-model cases of issue 15 (timed on cpu and on a hardware
//                      adapter; a software adapter such as lavapipe would take minutes per case)
//   --no-ops           skip the per-op table (scripts/gpu-check.sh: only the training step)
//   --cases-only       only those cases (median seconds; bench/pytorch_cases.py times the same in PyTorch)
//   --case=tiny|fwd|lora  only that one of the three cases (for paired A/B timing of one case)
//   --runs=N           timed runs per case (default 5 for tiny, 3 for the others)
import * as E from '../src/engine/index.js';
import { Rng, initCpuBackend } from '../src/engine/index.js';
import { getPool } from '../src/engine/cpu/wasm-pool.js';
import { SD15_UNET_CONFIG, SD15_VAE_CONFIG } from '../src/models/sd15-configs.js';
import { randomWeights, vaeParamShapes } from '../src/models/model-params.js';
import { AutoencoderKL, parseVAEConfig } from '../src/models/vae.js';
import { SDXL_UNET_CONFIG, sdxlTimeIds } from '../src/families/sdxl.js';
import { unetParamShapes } from '../src/models/unet-params.js';
import { parseUNetConfig } from '../src/models/unet-config.js';
import { randomUNetWeights } from '../src/models/unet-params.js';
import { UNet2DConditionModel } from '../src/models/unet.js';
import { Weights } from '../src/models/weights.js';
import { LoRANetwork } from '../src/train/network.js';

const args = process.argv.slice(2);
const numArg = (k: string, d: number) => { const a = args.find((x) => x.startsWith(`--${k}=`)); return a ? Number(a.slice(k.length + 3)) : d; };
await initCpuBackend();
const threads = (await getPool()).threads;
const backends: E.Backend[] = [];
if (!args.includes('--webgpu')) backends.push(E.cpuBackend);
let gpu: E.WebGPUBackend | null = null;
if (!args.includes('--cpu')) {
  try { gpu = await E.getWebGPUBackend(); backends.push(gpu); } catch (e) { console.error(`webgpu: ${(e as Error).message}`); }
}

async function time(be: E.Backend, fn: () => unknown, runs: number): Promise<number> {
  const done = async () => { if (be === gpu) await gpu.sync(); };
  fn(); await done(); // warm-up (and shader compiles)
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) { const t0 = performance.now(); fn(); await done(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

type Row = { op: string; shape: string; flops: number; ms: Map<string, number> };
const rows: Row[] = [];
/** Times make(backend)() on every backend; `runs` may differ per backend (lavapipe is slow). */
async function bench(op: string, shape: string, flops: number, make: (be: E.Backend) => () => unknown, runs: (be: E.Backend) => number = () => 3): Promise<void> {
  const row: Row = { op, shape, flops, ms: new Map() };
  for (const be of backends) {
    const ms = await time(be, make(be), runs(be));
    row.ms.set(be.name, ms);
    console.error(`  ${be.name} ${op} ${shape}: ${ms.toFixed(1)} ms`);
  }
  rows.push(row);
}
const rng = new Rng(0);
const rand = (shape: number[], be: E.Backend) => E.randn(shape, rng, 'f32', be);
const fewOnGpu = (be: E.Backend) => (be === gpu ? 1 : 3);
/** The same op on the webgpu backend with its f16 kernels (mixed precision fp16; needs shader-f16), in a row of its own. */
async function benchF16(op: string, shape: string, flops: number, make: (be: E.Backend) => () => unknown, runs = 1): Promise<void> {
  if (!gpu?.halfGemm) return;
  const prev = gpu.setHalfCompute(true);
  try {
    const ms = await time(gpu, make(gpu), runs);
    rows.push({ op: `${op}, f16`, shape, flops, ms: new Map([[gpu.name, ms]]) });
    console.error(`  ${gpu.name} ${op} (f16) ${shape}: ${ms.toFixed(1)} ms`);
  } finally {
    gpu.setHalfCompute(prev);
  }
}

const casesOnly = args.includes('--cases-only') || args.includes('--no-ops');
if (!casesOnly) {
for (const n of [512, 1024]) {
  await bench('matmul', `${n}x${n}x${n}`, 2 * n ** 3, (be) => { const a = rand([n, n], be), b = rand([n, n], be); return () => E.matmul(a, b); });
}

{
  const s = { x: [1, 320, 64, 64], w: [320, 320, 3, 3], out: [1, 320, 64, 64], stride: [1, 1] as [number, number], padding: [1, 1] as [number, number], groups: 1 };
  const flops = 2 * 320 * 320 * 9 * 64 * 64;
  const io = (be: E.Backend) => ({ x: rand(s.x, be), w: E.mulScalar(rand(s.w, be), 0.02), gy: rand(s.out, be) });
  await bench('conv2d fwd', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2d(t.x.storage, t.w.storage, null, s, 'f32'); }, fewOnGpu);
  await bench('conv2d bwd input', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2dGradInput(t.gy.storage, t.w.storage, s, 'f32'); }, fewOnGpu);
  await bench('conv2d bwd weight', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2dGradWeight(t.gy.storage, t.x.storage, s, 'f32'); }, fewOnGpu);
  await benchF16('matmul', '1024x1024x1024', 2 * 1024 ** 3, (be) => { const a = rand([1024, 1024], be), b = rand([1024, 1024], be); return () => E.matmul(a, b); });
  await benchF16('conv2d fwd', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2d(t.x.storage, t.w.storage, null, s, 'f32'); });
  await benchF16('conv2d bwd input', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2dGradInput(t.gy.storage, t.w.storage, s, 'f32'); });
  await benchF16('conv2d bwd weight', '1x320x64x64 k3', flops, (be) => { const t = io(be); return () => be.conv2dGradWeight(t.gy.storage, t.x.storage, s, 'f32'); });
}

{
  // SD1.5 first-level self-attention at 512px: 8 heads, 4096 tokens, head dim 40.
  const flops = 4 * 8 * 4096 * 4096 * 40;
  const spec = { batch: 8, lq: 4096, lk: 4096, d: 40, dv: 40, scale: 1 / Math.sqrt(40), causal: false };
  const qkv = (be: E.Backend) => [rand([8, 4096, 40], be), rand([8, 4096, 40], be), rand([8, 4096, 40], be)];
  await bench('attention fwd', '8x4096x40', flops, (be) => { const [q, k, v] = qkv(be); return () => E.attention(q, k, v); }, fewOnGpu);
  await bench('attention bwd', '8x4096x40', 2 * flops, (be) => { const [q, k, v] = qkv(be); return () => be.attentionGrad(q.storage, k.storage, v.storage, q.storage, spec, 'f32'); }, fewOnGpu);
  await benchF16('attention fwd', '8x4096x40', flops, (be) => { const [q, k, v] = qkv(be); return () => E.attention(q, k, v); });
  await benchF16('attention bwd', '8x4096x40', 2 * flops, (be) => { const [q, k, v] = qkv(be); return () => be.attentionGrad(q.storage, k.storage, v.storage, q.storage, spec, 'f32'); });
}

await bench('group norm fwd', '2x320x64x64 g32', 0, (be) => { const x = rand([2, 320, 64, 64], be), g = rand([320], be), b = rand([320], be); return () => E.groupNorm(x, 32, g, b); });
await bench('layer norm fwd', '2x4096x320', 0, (be) => { const h = rand([2, 4096, 320], be), g = rand([320], be), b = rand([320], be); return () => E.layerNorm(h, g, b); });
await bench('silu', '2x320x64x64', 0, (be) => { const x = rand([2, 320, 64, 64], be); return () => E.silu(x); });

}

// The three cases of issue 15, with the exact shapes PyTorch (diffusers 0.30.3) was timed on.
// Median seconds of 3 runs after a warm-up, with the median run's CPU seconds (worker threads
// included): on a shared machine the wall time mostly measures the neighbours, the CPU time the work.
type CaseRow = { name: string; s: Map<string, { sec: number; cpu: number }> };
const caseRows: CaseRow[] = [];
const onlyCase = args.find((a) => a.startsWith('--case='))?.slice(7);
async function benchCase(name: string, make: (be: E.Backend) => () => unknown, runs = 3, key = ''): Promise<void> {
  if (onlyCase && onlyCase !== key) return;
  runs = numArg('runs', runs);
  const row: CaseRow = { name, s: new Map() };
  for (const be of backends) {
    if (be === gpu && gpu.ctx.report.isFallback) continue;
    const fn = make(be);
    const done = async () => { if (be === gpu) await gpu.sync(); };
    fn(); await done();
    const ts: number[] = [], cs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const c0 = process.cpuUsage(), t0 = performance.now();
      fn(); await done();
      const c = process.cpuUsage(c0);
      ts.push((performance.now() - t0) / 1000); cs.push((c.user + c.system) / 1e6);
    }
    const mid = Math.floor(runs / 2), sec = [...ts].sort((a, b) => a - b)[mid], cpu = cs.sort((a, b) => a - b)[mid];
    row.s.set(be.name, { sec, cpu });
    console.error(`  ${be.name} ${name}: ${sec.toFixed(3)} s (${cpu.toFixed(2)} CPU s)`);
  }
  caseRows.push(row);
}
const sd15 = parseUNetConfig(SD15_UNET_CONFIG);
if (!args.includes('--no-cases')) {
  const tinyCfg = parseUNetConfig({ ...SD15_UNET_CONFIG, block_out_channels: [32, 64], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'], cross_attention_dim: 32 });
  await benchCase('tiny UNet fwd+bwd, all weights trainable, 2x4x32x32, ctx 77x32', (be) => {
    const weights = randomUNetWeights(tinyCfg, 1).toBackend(be);
    weights.requireGrad();
    const unet = new UNet2DConditionModel(tinyCfg, weights);
    const x = rand([2, 4, 32, 32], be), ctx = rand([2, 77, 32], be), t = E.tensor([10, 500], [2], 'f32', be);
    // Gradients start from none each step, as PyTorch's zero_grad(set_to_none=True) in bench/pytorch_cases.py.
    return () => {
      for (const w of weights.tensors.values()) w.grad = null;
      E.mseLoss(unet.forward(x, t, ctx), x).backward();
    };
  }, 5, 'tiny');
  await benchCase('SD1.5 UNet fwd, random weights, 1x4x32x32, ctx 77x768', (be) => {
    const unet = new UNet2DConditionModel(sd15, randomUNetWeights(sd15, 2).toBackend(be));
    const x = rand([1, 4, 32, 32], be), ctx = rand([1, 77, 768], be), t = E.tensor([500], [1], 'f32', be);
    return () => E.noGrad(() => unet.forward(x, t, ctx));
  }, 3, 'fwd');
  await benchCase('SD1.5 LoRA step dim 64 (transformer Linear + 1x1 conv), f32 base, MSE fwd+bwd, 1x4x32x32', (be) => {
    const weights = randomUNetWeights(sd15, 3).toBackend(be);
    const unet = new UNet2DConditionModel(sd15, weights);
    E.setDefaultBackend(be);
    const none = new Weights(new Map(), 'none');
    const net = LoRANetwork.create({ unet: weights, textEncoder: none }, { dim: 64, alpha: 64, trainUnet: true, trainTextEncoder: false }, new Rng(1));
    E.setDefaultBackend(E.cpuBackend);
    net.attach({ unet: weights, textEncoder: none });
    const x = rand([1, 4, 32, 32], be), ctx = rand([1, 77, 768], be), t = E.tensor([500], [1], 'f32', be);
    return () => {
      for (const p of net.parameters()) p.param().grad = null;
      E.mseLoss(unet.forward(x, t, ctx), x).backward();
    };
  }, 3, 'lora');
}

if (args.includes('--sd15')) {
  const cfg = parseUNetConfig(SD15_UNET_CONFIG);
  await bench('SD1.5 UNet fwd (random weights)', '1x4x64x64 ctx 77x768', 0, (be) => {
    const unet = new UNet2DConditionModel(cfg, randomUNetWeights(cfg, 2).toBackend(be));
    const x = rand([1, 4, 64, 64], be), ctx = rand([1, 77, 768], be), t = E.tensor([500], [1], 'f32', be);
    return () => E.noGrad(() => unet.forward(x, t, ctx));
  }, () => 1);
}

if (args.includes('--vae')) {
  // The SD1.5 VAE decode of one image at --px (512 by default): txt2img's last stage and the
  // samples' during training. Its biggest convolutions run in bands of output rows on the cpu.
  const cfg = parseVAEConfig(SD15_VAE_CONFIG), px = numArg('px', 512), lat = px / 8;
  await bench('SD1.5 VAE decode (random weights)', `1x4x${lat}x${lat} -> ${px} px`, 0, (be) => {
    const vae = new AutoencoderKL(cfg, randomWeights(vaeParamShapes(cfg), 4, 'bench').toBackend(be));
    const z = rand([1, cfg.latent_channels, lat, lat], be);
    return () => E.noGrad(() => vae.decode(z));
  }, () => 1);
}

if (args.includes('--sd15-train')) {
  // The seed config's network on SD1.5 shapes: LoRA dim 64 on attention/proj layers, frozen f16
  // base weights, gradient checkpointing, 512 px, batch 2 (or --px/--batch). One forward + backward per step.
  const cfg = parseUNetConfig(SD15_UNET_CONFIG);
  const px = numArg('px', 512), B = numArg('batch', 2), lat = px / 8;
  await bench('SD1.5 LoRA train step (random weights)', `${B}x4x${lat}x${lat} ctx 77x768 dim 64`, 0, (be) => {
    const weights = randomUNetWeights(cfg, 3);
    weights.toHalfStorage();
    weights.toBackend(be);
    const unet = new UNet2DConditionModel(cfg, weights, { gradientCheckpointing: true });
    E.setDefaultBackend(be); // the LoRA parameters are created where the model is
    const net = LoRANetwork.create({ unet: weights, textEncoder: new Weights(new Map(), 'none') }, { dim: 64, alpha: 64, trainUnet: true, trainTextEncoder: false }, new Rng(1));
    E.setDefaultBackend(E.cpuBackend);
    net.attach({ unet: weights, textEncoder: new Weights(new Map(), 'none') });
    const x = rand([B, 4, lat, lat], be), ctx = rand([B, 77, 768], be), t = E.tensor(Array.from({ length: B }, (_, k) => 10 + 490 * k), [B], 'f32', be);
    return () => E.mseLoss(unet.forward(x, t, ctx), x).backward();
  }, () => 1);
  console.error(`  peak RSS ${(process.resourceUsage().maxRSS / 1048576).toFixed(2)} GiB${gpu ? `, peak GPU buffers ${(gpu.pool.peak / 2 ** 30).toFixed(2)} GiB` : ''}`);
}

if (args.includes('--sdxl-train')) {
  // The SDXL base UNet (2.6B parameters) with random weights made f16 one tensor at a time (so the
  // f32 copy never exists whole), LoRA dim 64 on the transformer layers, gradient checkpointing,
  // context 77x2048 with the pooled text embeds and size ids, 1024 px and batch 1 (or --px/--batch).
  const cfg = parseUNetConfig(SDXL_UNET_CONFIG);
  const px = numArg('px', 1024), B = numArg('batch', 1), lat = px / 8;
  const rss0 = process.memoryUsage().rss;
  await bench('SDXL LoRA train step (random weights)', `${B}x4x${lat}x${lat} ctx 77x2048 dim 64`, 0, (be) => {
    const init = new Rng(4), tensors = new Map<string, E.Tensor>();
    for (const [k, shape] of unetParamShapes(cfg)) {
      const n = shape.reduce((a, b) => a * b, 1), a = new Float32Array(n);
      if (/norm[0-9_a-z]*\.weight$/.test(k) && shape.length === 1) a.fill(1);
      else if (shape.length > 1) { const bound = 1 / Math.sqrt(n / shape[0]); for (let i = 0; i < n; i++) a[i] = (init.uniform() * 2 - 1) * bound; }
      tensors.set(k, E.tensor(a, shape).to('f16'));
    }
    const weights = new Weights(tensors, 'random init').toBackend(be);
    console.error(`  ${be.name} SDXL: f16 weights ready, RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB; warm-up step, then the timed one`);
    const unet = new UNet2DConditionModel(cfg, weights, { gradientCheckpointing: true });
    E.setDefaultBackend(be);
    const net = LoRANetwork.create({ unet: weights, textEncoder: new Weights(new Map(), 'none') }, { dim: 64, alpha: 64, trainUnet: true, trainTextEncoder: false }, new Rng(1));
    E.setDefaultBackend(E.cpuBackend);
    net.attach({ unet: weights, textEncoder: new Weights(new Map(), 'none') });
    const x = rand([B, 4, lat, lat], be), ctx = rand([B, 77, 2048], be), t = E.tensor(Array.from({ length: B }, (_, k) => 10 + 490 * k), [B], 'f32', be);
    const added = { textEmbeds: rand([B, 1280], be), timeIds: sdxlTimeIds(Array.from({ length: B }, () => ({ originalSize: [px, px] as [number, number], cropTopLeft: [0, 0] as [number, number], targetSize: [px, px] as [number, number] }))) };
    return () => E.mseLoss(unet.forward(x, t, ctx, added), x).backward();
  }, () => 1);
  console.error(`  SDXL: peak RSS ${(process.resourceUsage().maxRSS / 1048576).toFixed(2)} GiB (${(rss0 / 2 ** 30).toFixed(2)} GiB before the model)${gpu ? `, peak GPU buffers ${(gpu.pool.peak / 2 ** 30).toFixed(2)} GiB` : ''}`);
}

const names = backends.map((b) => b.name);
const adapter = gpu ? `${gpu.ctx.report.description ?? gpu.ctx.report.device}` : 'none';
console.log(`\nsdlora: cpu backend ${threads} thread(s), node ${process.version}; webgpu adapter: ${adapter}\n`);
if (gpu) console.log(`webgpu subgroup-matrix GEMM: ${gpu.matrixGemm.on ? 'on' : 'off'} (${gpu.matrixGemm.why})\n`);
if (rows.length) console.log(`| op | shape |${names.map((n) => ` ${n} ms | ${n} GFLOP/s |`).join('')}`);
if (rows.length) console.log(`|---|---|${names.map(() => '---:|---:|').join('')}`);
for (const r of rows) {
  const cells = names.map((n) => { const ms = r.ms.get(n); return ms === undefined ? ' - | - |' : ` ${ms.toFixed(1)} | ${r.flops ? (r.flops / ms / 1e6).toFixed(1) : '-'} |`; });
  console.log(`| ${r.op} | ${r.shape} |${cells.join('')}`);
}
if (caseRows.length) {
  const cb = backends.filter((b) => caseRows[0].s.has(b.name)).map((b) => b.name);
  console.log(`\n| case |${cb.map((n) => ` ${n} median s | ${n} CPU s |`).join('')}`);
  console.log(`|---|${cb.map(() => '---:|---:|').join('')}`);
  for (const r of caseRows) console.log(`| ${r.name} |${cb.map((n) => { const v = r.s.get(n); return v ? ` ${v.sec.toFixed(3)} | ${v.cpu.toFixed(2)} |` : ' - | - |'; }).join('')}`);
}
