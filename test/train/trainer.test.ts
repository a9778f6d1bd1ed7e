// End-to-end LoRA training on the tiny golden model: files, metadata, reproducibility, exact
// resume, LoCon, unet-only, samples; and the training network's gradients against sd-scripts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { decodePng } from '../../src/io/png.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { addnetHash } from '../../src/lora/lora-save.js';
import { DDPMScheduler, SD15_SCHEDULER } from '../../src/schedulers/index.js';
import { LoRANetwork } from '../../src/train/network.js';
import { train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, loraModuleNames } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';
import { TINY_LORA, trainFixture } from '../helpers/train-setup.js';

const fx = trainFixture('sdlora-train-', {
  dataset: { name: 'star', repeats: 2, count: 3, size: 32, shapes: ['star'], seed: 1 },
  defaults: { ...TINY_LORA, seed: 11, flip_aug: true, shuffle_caption: true },
  dataSub: 'data/train',
});
const { tmp, cfg } = fx;
const quiet = () => {};
/** Relative bound on the f16-storage gradient error (observed worst 6.2e-3). */
const F16_GRAD_RTOL = 1.5e-2;
const tensorsOf = async (f: string) => (await loadSafetensors(f)).tensors;

describe('training', () => {
  before(fx.setup);

  it('writes a kohya LoRA with ss_* metadata, hashes, a loss log, a plot and samples', async () => {
    const out = path.join(tmp, 'run1');
    const prompts = path.join(tmp, 'prompts.txt');
    writeFileSync(prompts, '# samples\na red star on a white background --n blurry --w 32 --h 32 --d 5 --s 3 --l 5\n');
    const r = await train(cfg({ output_dir: out, output_name: 'star', sample_prompts: prompts, sample_every_n_steps: 2, save_every_n_steps: 2 }), { log: quiet });
    assert.equal(r.steps, 4);
    assert.equal(r.finalPath, path.join(out, 'star.safetensors'));
    assert.ok(existsSync(path.join(out, 'star-step00000002.safetensors')));
    const f = await loadLoRA(r.finalPath!);
    assert.deepEqual([...f.modules.keys()].sort(), loraModuleNames(goldenCase('lora')).sort(), 'the sd-scripts module set');
    assert.deepEqual(f.unsupportedKeys, []);
    for (const m of f.modules.values()) { assert.equal(m.alpha, 2); assert.equal(m.down.shape[0], 4); }
    const md = f.metadata;
    assert.equal(md.ss_network_module, 'networks.lora');
    assert.equal(md.ss_network_dim, '4');
    assert.equal(md.ss_steps, '4');
    assert.equal(md.ss_resolution, '(32, 32)');
    assert.equal(md.ss_num_train_images, '6');
    assert.equal(md.ss_optimizer, 'sdlora.optimizers.AdamW');
    assert.equal(md.ss_base_model_version, 'sd_v1');
    assert.ok(JSON.parse(md.ss_tag_frequency)['2_star']);
    assert.deepEqual(JSON.parse(md.ss_dataset_dirs), { '2_star': { n_repeats: 2, img_count: 3 } });
    assert.equal(md.sshs_model_hash, await addnetHash(r.finalPath!));
    assert.ok(f.modules.size && [...f.modules.values()].some((m) => m.up.dataSync().some((v) => v !== 0)), 'lora_up moved from zero');
    const log = readFileSync(path.join(out, 'star-loss.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(log.map((l) => l.step), [1, 2, 3, 4]);
    assert.ok(log.every((l) => Number.isFinite(l.loss)));
    assert.match(readFileSync(path.join(out, 'star-loss.svg'), 'utf8'), /^<svg/);
    assert.equal(r.samples.length, 2);
    assert.match(decodePng(readFileSync(r.samples[0])).text.parameters, /^a red star on a white background\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM, CFG scale: 5, Seed: 5/);
  });

  it('is reproducible from the seed and resumes exactly from a saved state', async () => {
    const a = await train(cfg({ output_dir: path.join(tmp, 'a'), optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', lr_warmup_steps: 1 }), { log: quiet });
    const b = await train(cfg({ output_dir: path.join(tmp, 'b'), optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', lr_warmup_steps: 1 }), { log: quiet });
    const ta = await tensorsOf(a.finalPath!), tb = await tensorsOf(b.finalPath!);
    for (const k of Object.keys(ta)) assert.deepEqual(ta[k].dataSync(), tb[k].dataSync(), k);
    const outC = path.join(tmp, 'c');
    const first = await train(cfg({ output_dir: outC, save_state: true, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', lr_warmup_steps: 1 }), { log: quiet, stopAfterSteps: 2 });
    assert.equal(first.finalPath, null);
    const resumed = await train(cfg({ output_dir: outC, save_state: true, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', lr_warmup_steps: 1, resume: path.join(outC, 'last-state') }), { log: quiet });
    assert.equal(resumed.steps, 4);
    const tc = await tensorsOf(resumed.finalPath!);
    for (const k of Object.keys(ta)) assert.deepEqual(tc[k].dataSync(), ta[k].dataSync(), `resumed ${k}`);
    assert.deepEqual(resumed.losses.map((l) => l.loss), a.losses.map((l) => l.loss));
  });

  it('trains LoCon (conv_dim) and unet-only networks with the right modules', async () => {
    const r = await train(cfg({ output_dir: path.join(tmp, 'locon'), max_train_steps: 1, network_args: ['conv_dim=2', 'conv_alpha=1'], network_train_unet_only: true, optimizer_type: 'Lion', learning_rate: 1e-4 }), { log: quiet });
    const f = await loadLoRA(r.finalPath!);
    const names = [...f.modules.keys()];
    assert.ok(names.every((n) => n.startsWith('lora_unet_')), 'unet only');
    const conv = f.modules.get('lora_unet_down_blocks_0_resnets_0_conv1')!;
    assert.deepEqual(conv.down.shape, [2, 32, 3, 3]);
    assert.deepEqual(conv.up.shape, [32, 2, 1, 1]);
    assert.equal(conv.alpha, 1);
    assert.deepEqual(f.modules.get('lora_unet_down_blocks_0_resnets_0_time_emb_proj')!.down.shape, [4, 128]);
    assert.ok(f.modules.has('lora_unet_down_blocks_0_downsamplers_0_conv'));
  });

  it('the training network reproduces the sd-scripts LoRA training step (lora-backward)', async () => {
    const io = (await loadSafetensors(path.join(goldenCase('lora-backward'), 'io.safetensors'))).tensors;
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    const models = { unet: unet.weights, textEncoder: te.weights };
    const net = LoRANetwork.fromFile(await loadLoRA(path.join(goldenCase('lora'), 'lora_a.safetensors')), models, { dim: 4, alpha: 2, trainUnet: true, trainTextEncoder: true }, new E.Rng(0));
    net.attach(models);
    net.setTraining(true);
    const noisy = new DDPMScheduler(SD15_SCHEDULER).addNoise(io.latents, io.noise, [...io.timesteps.dataSync()]);
    const loss = E.mseLoss(unet.forward(noisy, io.timesteps, te.forward(io.input_ids).lastHiddenState), io.noise);
    assert.ok(Math.abs(loss.item() - io.loss.item()) <= 1e-5 * io.loss.item());
    loss.backward();
    for (const m of net.modules) {
      for (const [part, t] of [['lora_down', m.down], ['lora_up', m.up]] as const) {
        const want = io[`grad.${m.name}.${part}.weight`];
        const tol = 1e-4 * Math.max(...[...want.dataSync()].map(Math.abs));
        assert.ok(maxAbsDiff(t.grad!.dataSync(), want.dataSync()) <= tol, `${m.name}.${part}`);
      }
    }
    net.detach();
  });

  it('gives the f32 gradients with gradient checkpointing and, within f16 rounding, with f16 weight storage', async () => {
    // SGD moves each weight by a fixed multiple of its gradient (Adam's first step, lr·sign(g),
    // would hide a wrong gradient), so the moves compare gradients. Two steps, so lora_down (no
    // gradient while lora_up is zero) is compared too; its start is the one-step run's lora_down.
    const sgd = { optimizer_type: 'SGDNesterov', learning_rate: 5, max_grad_norm: 0 };
    const start = await tensorsOf((await train(cfg({ output_dir: path.join(tmp, 'gc-1'), max_train_steps: 1, ...sgd }), { log: quiet })).finalPath!);
    const base = await train(cfg({ output_dir: path.join(tmp, 'gc0'), max_train_steps: 2, ...sgd }), { log: quiet });
    const gc = await train(cfg({ output_dir: path.join(tmp, 'gc1'), max_train_steps: 2, ...sgd, gradient_checkpointing: true }), { log: quiet });
    const half = await train(cfg({ output_dir: path.join(tmp, 'gc2'), max_train_steps: 2, ...sgd, mixed_precision: 'fp16' }), { log: quiet });
    assert.equal(gc.losses[0].loss, base.losses[0].loss);
    assert.ok(Math.abs(half.losses[0].loss - base.losses[0].loss) <= 1e-3 * base.losses[0].loss, `f16 loss ${half.losses[0].loss} vs ${base.losses[0].loss}`);
    const a = await tensorsOf(base.finalPath!), b = await tensorsOf(gc.finalPath!), h = await tensorsOf(half.finalPath!);
    const moved = (t: Record<string, E.Tensor>, k: string) => t[k].dataSync().map((v, i) => v - (k.includes('lora_down') ? start[k].dataSync()[i] : 0));
    const norm = (x: ArrayLike<number>) => { let q = 0; for (let i = 0; i < x.length; i++) q += x[i] * x[i]; return Math.sqrt(q); };
    let worstHalf = 0;
    for (const k of Object.keys(a).filter((k) => k.endsWith('.weight'))) {
      const da = moved(a, k), db = moved(b, k), dh = moved(h, k);
      assert.ok(norm(da) > 0, `${k} moved`);
      // lora_down's move is a difference of stored f32 values: allow their rounding (2^-24 each).
      const floor = k.includes('lora_down') ? 2 ** -22 * norm(start[k].dataSync()) : 0;
      assert.ok(norm(db.map((v, i) => v - da[i])) <= 1e-5 * norm(da) + floor, `checkpointing changed the gradient of ${k}`);
      worstHalf = Math.max(worstHalf, (norm(dh.map((v, i) => v - da[i])) - floor) / norm(da));
    }
    // f16 weights round to 2^-11 relative; the gradients they give differ from f32's by 0.6% at
    // worst here, so a gradient a few percent off fails.
    assert.ok(worstHalf < F16_GRAD_RTOL, `f16 storage changed a gradient by ${worstHalf} relative`);
    assert.equal((await loadLoRA(half.finalPath!)).metadata.ss_mixed_precision, 'fp16');
    // With dropouts the recompute must replay the forward's masks.
    const d0 = await train(cfg({ output_dir: path.join(tmp, 'gc3'), max_train_steps: 1, network_args: ['rank_dropout=0.5', 'module_dropout=0.2'], network_dropout: 0.3 }), { log: quiet });
    const d1 = await train(cfg({ output_dir: path.join(tmp, 'gc4'), max_train_steps: 1, network_args: ['rank_dropout=0.5', 'module_dropout=0.2'], network_dropout: 0.3, gradient_checkpointing: true }), { log: quiet });
    const x = await tensorsOf(d0.finalPath!), y = await tensorsOf(d1.finalPath!);
    for (const k of Object.keys(x)) assert.ok(maxAbsDiff(x[k].dataSync(), y[k].dataSync()) < 1e-6, `dropout + checkpointing changed ${k}`);
  });

  it('stops with a clear message for a missing dataset folder', async () => {
    await assert.rejects(train(cfg({ train_data_dir: path.join(tmp, 'nope'), output_dir: path.join(tmp, 'x') }), { log: quiet }), /nope: not a folder/);
  });
});
