// Builds the bundled tiny Stable Diffusion (assets/tiny-sd) with the project's own code: a small
// BPE vocabulary, then a VAE and a text encoder + UNet trained from scratch on procedurally drawn
// shapes (circle, square, triangle; never a cross, which the demo LoRA teaches).
//
//   node --import tsx scripts/build-tiny-model.ts vae  [steps]   -> build/tiny/vae
//   node --import tsx scripts/build-tiny-model.ts unet [steps]   -> build/tiny/{unet,text_encoder}
//   node --import tsx scripts/build-tiny-model.ts assemble       -> assets/tiny-sd (f16 weights)
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as E from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import { BACKGROUNDS, BASE_SHAPES, COLORS, drawShape } from '../src/data/procedural.js';
import { rgbToTensorData } from '../src/data/images.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { encodePng } from '../src/io/png.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/models/clip-text.js';
import { CLIPTokenizer, bytesToUnicode } from '../src/models/clip-tokenizer.js';
import { clipParamShapes, randomWeights, vaeParamShapes } from '../src/models/model-params.js';
import { parseUNetConfig } from '../src/models/unet-config.js';
import { randomUNetWeights } from '../src/models/unet-params.js';
import { UNet2DConditionModel } from '../src/models/unet.js';
import { AutoencoderKL, parseVAEConfig } from '../src/models/vae.js';
import { Weights } from '../src/models/weights.js';
import { toRgb } from '../src/infer/txt2img.js';
import { DDPMScheduler, SD15_SCHEDULER } from '../src/schedulers/index.js';
import { AdamW } from '../src/train/optimizers.js';

const BUILD = path.resolve('build/tiny');
const OUT = path.resolve('assets/tiny-sd');
const SIZE = 32;

const WORDS = ['a', 'an', 'the', 'on', 'of', 'in', 'with', 'and', 'background', 'shape', 'sks', 'photo', 'drawing', 'picture', 'big', 'small',
  ...Object.keys(COLORS), ...Object.keys(BACKGROUNDS), 'circle', 'square', 'triangle', 'star', 'ring', 'cross'];

export const VAE_CONFIG = { _class_name: 'AutoencoderKL', in_channels: 3, out_channels: 3, latent_channels: 4, block_out_channels: [32, 64], layers_per_block: 1, norm_num_groups: 32, down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], act_fn: 'silu', sample_size: SIZE, scaling_factor: 1 };
export const UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel', in_channels: 4, out_channels: 4, block_out_channels: [32, 64], layers_per_block: 1,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'], mid_block_type: 'UNetMidBlock2DCrossAttn',
  attention_head_dim: 2, cross_attention_dim: 64, norm_num_groups: 32, norm_eps: 1e-5, use_linear_projection: false, flip_sin_to_cos: true, freq_shift: 0,
  downsample_padding: 1, sample_size: SIZE / 2, act_fn: 'silu',
};

/** Byte-level base vocabulary plus left-to-right merges that spell each caption word. */
function buildTokenizer(): { vocab: Record<string, number>; merges: string[] } {
  const base = bytesToUnicode().ordered;
  const tokens = [...base, ...base.map((b) => `${b}</w>`)];
  const merges: string[] = [];
  const seen = new Set(tokens);
  for (const w of WORDS) {
    const chars = [...w];
    let cur = chars[0];
    for (let i = 1; i < chars.length; i++) {
      const next = i === chars.length - 1 ? `${chars[i]}</w>` : chars[i];
      const merged = cur + next;
      if (!seen.has(merged)) { merges.push(`${cur} ${next}`); tokens.push(merged); seen.add(merged); }
      cur = merged;
    }
  }
  tokens.push('<|startoftext|>', '<|endoftext|>');
  return { vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), merges };
}

function textConfig(vocabSize: number, eos: number) {
  return { _name_or_path: 'sdlora-tiny', architectures: ['CLIPTextModel'], model_type: 'clip_text_model', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 77, vocab_size: vocabSize, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, bos_token_id: eos - 1, eos_token_id: eos, pad_token_id: eos };
}

function randomBatch(n: number, rng: E.Rng, shapes: readonly string[] = BASE_SHAPES): { pixels: Tensor; captions: string[] } {
  const data = new Float32Array(n * 3 * SIZE * SIZE);
  const captions: string[] = [];
  const colors = Object.keys(COLORS), bgs = Object.keys(BACKGROUNDS);
  for (let i = 0; i < n; i++) {
    const shape = shapes[Math.floor(rng.uniform() * shapes.length)] as 'circle';
    const img = drawShape(SIZE, shape, colors[Math.floor(rng.uniform() * colors.length)], bgs[Math.floor(rng.uniform() * bgs.length)], rng);
    data.set(rgbToTensorData(img.rgb, SIZE, SIZE), i * 3 * SIZE * SIZE);
    captions.push(img.caption);
  }
  return { pixels: E.tensor(data, [n, 3, SIZE, SIZE]), captions };
}

function trainParams(w: Weights[], lr: number) {
  const slots = w.flatMap((x) => [...x.tensors.entries()].map(([k, t]) => ({ w: x, k, t })));
  for (const s of slots) s.t.requireGrad();
  const opt = new AdamW(new Map([['all', { name: 'all', lr }]]), { weight_decay: '0' });
  return (lrNow: number) => {
    const grads = slots.map((s) => (s.t.grad?.dataSync() as Float32Array | undefined) ?? new Float32Array(s.t.size));
    let sq = 0;
    for (const g of grads) for (const v of g) sq += v * v;
    const clip = Math.min(1, 1 / (Math.sqrt(sq) + 1e-6));
    if (clip < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= clip;
    opt.update(slots.map((s) => ({ name: s.k, group: 'all', data: s.t.dataSync() as Float32Array })), grads, new Map([['all', lrNow]]));
    for (const s of slots) s.t.grad = null;
  };
}

async function saveWeights(w: Weights, dir: string, file: string, config: object): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await saveSafetensors(path.join(dir, file), [...w.tensors.entries()].map(([k, t]) => [k, t.detach()] as [string, Tensor]));
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

async function loadWeights(dir: string, file: string): Promise<Weights> {
  return new Weights(new Map(Object.entries((await loadSafetensors(path.join(dir, file))).tensors)), dir);
}

const cosine = (i: number, n: number, lr: number) => lr * (i < 50 ? (i + 1) / 50 : 0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * (i - 50)) / Math.max(1, n - 50))));

async function trainVae(steps: number): Promise<void> {
  const cfg = parseVAEConfig(VAE_CONFIG);
  const w = randomWeights(vaeParamShapes(cfg), 1, 'tiny vae');
  const vae = new AutoencoderKL(cfg, w);
  const rng = new E.Rng(100);
  const step = trainParams([w], 1e-3);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const { pixels } = randomBatch(16, rng);
    const d = vae.encode(pixels);
    const z = AutoencoderKL.sample(d, E.randn([...d.mean.shape], rng));
    const rec = vae.decode(z);
    const kl = E.mulScalar(E.mean(E.sub(E.add(E.square(d.mean), E.exp(d.logvar)), E.addScalar(d.logvar, 1))), 0.5);
    const loss = E.add(E.mseLoss(rec, pixels), E.mulScalar(kl, 1e-4));
    loss.backward();
    step(cosine(i, steps, 1e-3));
    if (i % 25 === 0 || i === steps - 1) console.log(`vae ${i} loss ${loss.item().toFixed(5)} ${((performance.now() - t0) / 1000).toFixed(0)}s`);
  }
  // scaling factor: make the latents roughly unit variance, as SD's 0.18215
  const lat = Array.from(E.noGrad(() => vae.encode(randomBatch(64, rng).pixels).mean).dataSync());
  const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
  const std = Math.sqrt(lat.reduce((a, b) => a + (b - mean) ** 2, 0) / lat.length);
  const config = { ...VAE_CONFIG, scaling_factor: Number((1 / std).toFixed(5)) };
  await saveWeights(w, path.join(BUILD, 'vae'), 'diffusion_pytorch_model.safetensors', config);
  const { pixels } = randomBatch(8, rng);
  const rec = E.noGrad(() => vae.decode(vae.encode(pixels).mean));
  await writeGrid(path.join(BUILD, 'vae-recon.png'), [pixels, rec]);
  console.log(`vae saved; scaling_factor ${config.scaling_factor}`);
}

async function writeGrid(file: string, rows: Tensor[]): Promise<void> {
  const n = rows[0].shape[0];
  const W = n * SIZE, H = rows.length * SIZE;
  const out = new Uint8Array(W * H * 3);
  for (const [r, t] of rows.entries()) {
    for (let i = 0; i < n; i++) {
      const rgb = await toRgb(E.reshape(E.slice(t, 0, i, i + 1), [1, 3, SIZE, SIZE]));
      for (let y = 0; y < SIZE; y++) out.set(rgb.subarray(y * SIZE * 3, (y + 1) * SIZE * 3), ((r * SIZE + y) * W + i * SIZE) * 3);
    }
  }
  writeFileSync(file, encodePng(out, W, H));
}

async function trainUnet(steps: number): Promise<void> {
  const vaeCfg = (await import(path.join(BUILD, 'vae', 'config.json'), { with: { type: 'json' } })).default;
  const vae = new AutoencoderKL(parseVAEConfig(vaeCfg), await loadWeights(path.join(BUILD, 'vae'), 'diffusion_pytorch_model.safetensors'));
  const { vocab, merges } = buildTokenizer();
  const tok = new CLIPTokenizer(new Map(Object.entries(vocab)), merges.map((m) => m.split(' ') as [string, string]));
  const teCfg = textConfig(Object.keys(vocab).length, tok.eosId);
  const resume = existsSync(path.join(BUILD, 'unet', 'diffusion_pytorch_model.safetensors'));
  const teW = resume ? await loadWeights(path.join(BUILD, 'text_encoder'), 'model.safetensors') : randomWeights(clipParamShapes(parseCLIPTextConfig(teCfg)), 2, 'tiny te');
  const unetCfg = parseUNetConfig(UNET_CONFIG);
  const unetW = resume ? await loadWeights(path.join(BUILD, 'unet'), 'diffusion_pytorch_model.safetensors') : randomUNetWeights(unetCfg, 3);
  const te = new CLIPTextModel(parseCLIPTextConfig(teCfg), teW), unet = new UNet2DConditionModel(unetCfg, unetW);
  const sched = new DDPMScheduler(SD15_SCHEDULER);
  const rng = new E.Rng(resume ? 201 : 200);
  const step = trainParams([teW, unetW], 5e-4);
  const sf = vaeCfg.scaling_factor as number;
  // A fixed pool of encoded images (the VAE is frozen): encoding once is cheaper than per step.
  const POOL = 2400, B = 8;
  const pool: { latent: Tensor; caption: string }[] = [];
  const poolRng = new E.Rng(300);
  for (let i = 0; i < POOL; i += 48) {
    const { pixels, captions } = randomBatch(48, poolRng);
    const lat = E.noGrad(() => E.mulScalar(vae.encode(pixels).mean, sf));
    captions.forEach((c, j) => pool.push({ latent: E.slice(lat, 0, j, j + 1), caption: c }));
  }
  console.log(`encoded ${pool.length} images`);
  const t0 = performance.now();
  let avg = 0;
  for (let i = 0; i < steps; i++) {
    const pick = Array.from({ length: B }, () => pool[Math.floor(rng.uniform() * pool.length)]);
    const latents = E.concat(pick.map((p) => p.latent), 0);
    const caps = pick.map((p) => (rng.uniform() < 0.1 ? '' : p.caption));
    const ids = E.tensor(caps.flatMap((c) => tok.encodePadded(c)), [B, 77], 'i32');
    const ctx = te.forward(ids).lastHiddenState;
    const noise = E.randn([...latents.shape], rng);
    const ts = Array.from({ length: B }, () => Math.floor(rng.uniform() * 1000));
    const noisy = sched.addNoise(latents, noise, ts);
    const loss = E.mseLoss(unet.forward(noisy, E.tensor(ts, [B]), ctx), noise);
    loss.backward();
    step(cosine(i, steps, 5e-4));
    avg = i ? 0.98 * avg + 0.02 * loss.item() : loss.item();
    if (i % 50 === 0 || i === steps - 1) console.log(`unet ${i} loss ${loss.item().toFixed(4)} avg ${avg.toFixed(4)} ${((performance.now() - t0) / 1000).toFixed(0)}s`);
    if ((i + 1) % 200 === 0 || i === steps - 1) {
      await saveWeights(unetW, path.join(BUILD, 'unet'), 'diffusion_pytorch_model.safetensors', UNET_CONFIG);
      await saveWeights(teW, path.join(BUILD, 'text_encoder'), 'model.safetensors', teCfg);
      mkdirSync(path.join(BUILD, 'tokenizer'), { recursive: true });
      writeFileSync(path.join(BUILD, 'tokenizer', 'vocab.json'), JSON.stringify(vocab));
      writeFileSync(path.join(BUILD, 'tokenizer', 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
    }
  }
}

async function assemble(): Promise<void> {
  for (const [sub, file] of [['unet', 'diffusion_pytorch_model.safetensors'], ['vae', 'diffusion_pytorch_model.safetensors'], ['text_encoder', 'model.safetensors']]) {
    const { tensors } = await loadSafetensors(path.join(BUILD, sub, file));
    mkdirSync(path.join(OUT, sub), { recursive: true });
    await saveSafetensors(path.join(OUT, sub, file), tensors, {}, 'F16');
    writeFileSync(path.join(OUT, sub, 'config.json'), `${JSON.stringify((await import(path.join(BUILD, sub, 'config.json'), { with: { type: 'json' } })).default, null, 2)}\n`);
  }
  mkdirSync(path.join(OUT, 'tokenizer'), { recursive: true });
  const { vocab, merges } = buildTokenizer();
  writeFileSync(path.join(OUT, 'tokenizer', 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(path.join(OUT, 'tokenizer', 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
  mkdirSync(path.join(OUT, 'scheduler'), { recursive: true });
  writeFileSync(path.join(OUT, 'scheduler', 'scheduler_config.json'), `${JSON.stringify({ _class_name: 'DDPMScheduler', ...SD15_SCHEDULER }, null, 2)}\n`);
  writeFileSync(path.join(OUT, 'model_index.json'), `${JSON.stringify({ _class_name: 'StableDiffusionPipeline', _sdlora: 'tiny model built by scripts/build-tiny-model.ts', unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'], scheduler: ['diffusers', 'DDPMScheduler'] }, null, 2)}\n`);
  console.log(`assembled ${OUT}`);
}

await E.initCpuBackend();
const [phase, n] = process.argv.slice(2);
if (phase === 'vae') await trainVae(Number(n ?? 400));
else if (phase === 'unet') await trainUnet(Number(n ?? 2000));
else if (phase === 'assemble') await assemble();
else { console.error('usage: build-tiny-model.ts vae|unet|assemble [steps]'); process.exit(2); }
