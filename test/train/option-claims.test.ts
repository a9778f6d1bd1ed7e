// The README's claims about training options, each checked in a real run on the tiny model (or,
// for the option table and the no-effect list, against the schema): epoch files and their pruning,
// epoch samples and per-line samplers, gradient clipping, per-group and DreamBooth text-encoder
// learning rates, warm-up fractions, the timestep range, the old optimizer switches, the defaults
// sd-scripts gives, training_comment, prior_loss_weight and save_model_as.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { decodePng } from '../../src/io/png.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import type { Weights } from '../../src/models/weights.js';
import { ConfigError, configMessages, optionsMarkdown, readConfigLayer, resolveConfig } from '../../src/train/config.js';
import { OPTIONS } from '../../src/train/config-schema.js';
import { trainDreamBooth } from '../../src/train/dreambooth.js';
import { type MicroBatchTrace, type StepInfo, train } from '../../src/train/trainer.js';
import { TINY_LORA, trainConfig, trainFixture } from '../helpers/train-setup.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let runs = 0;
const fx = trainFixture('sdlora-options-', {
  // Two images and batch 2: one batch, so one optimizer step, per epoch.
  dataset: { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 7 },
  defaults: () => ({ ...TINY_LORA, seed: 13, output_dir: path.join(fx.tmp, `run${runs++}`) }),
});
const { tmp, cfg } = fx;
const quiet = () => {};
const regDir = path.join(tmp, 'reg'), oneDir = path.join(tmp, 'one');

const norm = (xs: Iterable<ArrayLike<number>>) => { let q = 0; for (const x of xs) for (let i = 0; i < x.length; i++) q += x[i] * x[i]; return Math.sqrt(q); };
const tensorsOf = async (f: string) => (await loadSafetensors(f)).tensors;
/** The lora_up weights of a LoRA file (they start at zero, so after one step they are the update). */
async function ups(file: string, prefix = ''): Promise<Map<string, Float32Array>> {
  const t = await tensorsOf(file);
  return new Map(Object.keys(t).filter((k) => k.endsWith('.lora_up.weight') && k.startsWith(prefix)).sort().map((k) => [k, Float32Array.from(t[k].dataSync())]));
}
const epochFiles = (dir: string, name: string) => readdirSync(dir).filter((f) => new RegExp(`^${name}-\\d{6}\\.safetensors$`).test(f)).sort();
/** SGD with Nesterov momentum m moves a weight by lr·(1+m)·g on its first step: the moves compare gradients. */
const SGD = (momentum: number) => ({ optimizer_type: 'SGDNesterov', optimizer_args: [`momentum=${momentum}`] });

describe('training options (README claims)', () => {
  before(async () => {
    await fx.setup();
    writeShapeDataset(regDir, { name: 'star', repeats: 1, count: 1, size: 32, shapes: ['star'], seed: 8 });
    writeShapeDataset(oneDir, { name: 'sks star', repeats: 1, count: 1, size: 32, shapes: ['star'], seed: 9 });
  });

  it('save_every_n_epochs writes <name>-<epoch, 6 digits>.safetensors before the last epoch, as sd-scripts names them', async () => {
    const r = await train(cfg({ output_name: 'ep', max_train_epochs: 3, save_every_n_epochs: 1 }), { log: quiet });
    const dir = path.dirname(r.finalPath!);
    assert.deepEqual(epochFiles(dir, 'ep'), ['ep-000001.safetensors', 'ep-000002.safetensors'], 'epochs 1 and 2; the last epoch is ep.safetensors');
    assert.equal(r.finalPath, path.join(dir, 'ep.safetensors'));
    for (const e of [1, 2]) {
      const md = (await loadLoRA(path.join(dir, `ep-00000${e}.safetensors`))).metadata;
      assert.equal(md.ss_epoch, String(e));
      assert.equal(md.ss_steps, String(e), 'one step per epoch');
    }
    // Every 2 epochs of 5: epochs 2 and 4.
    const r2 = await train(cfg({ output_name: 'ep2', max_train_epochs: 5, save_every_n_epochs: 2 }), { log: quiet });
    assert.deepEqual(epochFiles(path.dirname(r2.finalPath!), 'ep2'), ['ep2-000002.safetensors', 'ep2-000004.safetensors']);
  });

  it('save_last_n_epochs keeps only the newest n epoch files (older ones are removed, as sd-scripts does)', async () => {
    const r = await train(cfg({ output_name: 'keep', max_train_epochs: 5, save_every_n_epochs: 1, save_last_n_epochs: 2 }), { log: quiet });
    const dir = path.dirname(r.finalPath!);
    assert.deepEqual(epochFiles(dir, 'keep'), ['keep-000003.safetensors', 'keep-000004.safetensors']);
    assert.ok(existsSync(r.finalPath!), 'the final file stays');
    assert.deepEqual(r.saved.map((f) => path.basename(f)), ['keep-000001.safetensors', 'keep-000002.safetensors', 'keep-000003.safetensors', 'keep-000004.safetensors', 'keep.safetensors'], 'each epoch was saved before pruning');
  });

  it('sample_every_n_epochs samples at the end of every n-th epoch and wins over sample_every_n_steps; --ss picks a prompt line\'s sampler', async () => {
    const prompts = path.join(tmp, 'prompts.txt');
    writeFileSync(prompts, 'a red star --w 64 --h 64 --d 1 --s 2 --l 4 --ss euler_a\na blue star --w 64 --h 64 --d 2 --s 2 --l 4\n');
    const r = await train(cfg({ output_name: 'smp', max_train_epochs: 3, sample_prompts: prompts, sample_every_n_epochs: 2, sample_every_n_steps: 1, sample_sampler: 'dpmpp_2m' }), { log: quiet });
    assert.equal(r.steps, 3);
    const names = r.samples.map((f) => path.basename(f));
    assert.equal(names.length, 2, `one pass (epoch 2) of two prompts, no step samples: ${names.join(', ')}`);
    assert.ok(names.every((n) => n.startsWith('smp_e000002_')), names.join(', '));
    const infotext = r.samples.map((f) => decodePng(readFileSync(f)).text.parameters);
    assert.match(infotext[0], /^a red star\n.*Sampler: Euler a,/s, '--ss euler_a on its line');
    assert.match(infotext[1], /^a blue star\n.*Sampler: DPM\+\+ 2M,/s, 'a line without --ss takes sample_sampler');
  });

  it('an unknown --ss sampler is refused before training starts, naming the prompts file', async () => {
    const prompts = path.join(tmp, 'bad-prompts.txt');
    writeFileSync(prompts, 'a red star --w 64 --h 64 --ss no_such_sampler\n');
    const steps: StepInfo[] = [];
    await assert.rejects(train(cfg({ sample_prompts: prompts, sample_every_n_steps: 1 }), { log: quiet, onStep: (s) => steps.push(s) }),
      (e: Error) => e.message.includes(prompts) && /no_such_sampler/.test(e.message) && /euler_a/.test(e.message));
    assert.equal(steps.length, 0, 'no step ran');
  });

  it('max_grad_norm clips the global gradient norm to its value (SGD step of exactly lr·(1+m)·max_grad_norm); 0 does not clip', async () => {
    const lr = 1, m = 0.5, tiny = 1e-4;
    const step = (v: Record<string, unknown>) => train(cfg({ max_train_steps: 1, learning_rate: lr, ...SGD(m), ...v }), { log: quiet });
    const off = await step({ max_grad_norm: 0 }), huge = await step({ max_grad_norm: 1e9 }), clipped = await step({ max_grad_norm: tiny });
    const uOff = await ups(off.finalPath!), uHuge = await ups(huge.finalPath!), uClip = await ups(clipped.finalPath!);
    const rawNorm = norm(uOff.values()) / (lr * (1 + m));
    assert.ok(rawNorm > 20 * tiny, `the raw gradient norm ${rawNorm} is far above max_grad_norm ${tiny}`);
    for (const [k, v] of uOff) assert.deepEqual(uHuge.get(k), v, `0 disables clipping: ${k} as with a bound never reached`);
    const got = norm(uClip.values());
    assert.ok(Math.abs(got - lr * (1 + m) * tiny) <= 1e-4 * lr * (1 + m) * tiny, `clipped update norm ${got}, want ${lr * (1 + m) * tiny}`);
    // The same direction: every gradient scaled by max_grad_norm / ‖g‖.
    const k = tiny / rawNorm;
    const diff = [...uOff].map(([key, v]) => v.map((x, i) => uClip.get(key)![i] - k * x));
    assert.ok(norm(diff) <= 1e-4 * got, 'clipping scales the whole gradient by one factor');
  });

  it('unet_lr and text_encoder_lr set the step size of their own modules only (text_encoder_lr 0: the text encoder LoRA does not train)', async () => {
    const step = (v: Record<string, unknown>) => train(cfg({ max_train_steps: 1, max_grad_norm: 0, ...SGD(0.9), ...v }), { log: quiet });
    const base = await step({ learning_rate: 0.01 });
    const split = await step({ learning_rate: 0.5, unet_lr: 0.01, text_encoder_lr: 0.03 });
    const noTe = await step({ learning_rate: 0.5, unet_lr: 0.01, text_encoder_lr: 0 });
    const [bu, bt] = [await ups(base.finalPath!, 'lora_unet_'), await ups(base.finalPath!, 'lora_te_')];
    assert.ok(bu.size > 0 && bt.size > 0 && norm(bt.values()) > 0 && norm(bu.values()) > 0, 'both groups move in the base run');
    const [su, st] = [await ups(split.finalPath!, 'lora_unet_'), await ups(split.finalPath!, 'lora_te_')];
    for (const [k, v] of bu) assert.deepEqual(su.get(k), v, `unet_lr 0.01 (not learning_rate 0.5) moves ${k}`);
    for (const [k, v] of bt) {
      const d = norm([st.get(k)!.map((x, i) => x - 3 * v[i])]);
      assert.ok(d <= 1e-5 * norm([v]) * 3, `text_encoder_lr 0.03 moves ${k} 3 times as far as 0.01`);
    }
    const [nu, nt] = [await ups(noTe.finalPath!, 'lora_unet_'), await ups(noTe.finalPath!, 'lora_te_')];
    for (const [k, v] of bu) assert.deepEqual(nu.get(k), v, `unet ${k} with text_encoder_lr 0`);
    assert.equal(nt.size, bt.size, 'the text encoder modules are still written');
    assert.equal(norm(nt.values()), 0, 'text_encoder_lr 0: the text encoder LoRA stays at its start');
    const md = (await loadLoRA(split.finalPath!)).metadata;
    assert.equal(Number(md.ss_unet_lr), 0.01);
    assert.equal(Number(md.ss_text_encoder_lr), 0.03);
  });

  it('lr_warmup_steps below 1 is a fraction of max_train_steps (a TOML config read as the CLI reads it)', async () => {
    const lrsOf = async (toml: string) => {
      const file = path.join(tmp, `warmup-${runs}.toml`);
      writeFileSync(file, `${toml}\n[model]\npretrained_model_name_or_path = ${JSON.stringify(fx.model)}\ntrain_data_dir = ${JSON.stringify(fx.dataDir)}\noutput_dir = ${JSON.stringify(path.join(tmp, `warm${runs++}`))}\ncaption_extension = ".txt"\nresolution = 32\ntrain_batch_size = 2\nseed = 1\nlearning_rate = 0.01\nlr_scheduler = "constant_with_warmup"\n`);
      const steps: StepInfo[] = [];
      await train(resolveConfig([readConfigLayer(file)]), { log: quiet, onStep: (s) => steps.push(s) });
      return steps.map((s) => s.lr);
    };
    // 0.5 of 4 steps: 2 warm-up steps (transformers: lr·step/warmup before, lr after).
    assert.deepEqual(await lrsOf('lr_warmup_steps = 0.5\nmax_train_steps = 4'), [0, 0.005, 0.01, 0.01]);
    // With max_train_epochs the steps come from the epochs (4 here), as in sd-scripts, and so does the fraction.
    assert.deepEqual(await lrsOf('lr_warmup_steps = 0.25\nmax_train_epochs = 4'), [0, 0.01, 0.01, 0.01]);
  });

  it('min_timestep and max_timestep bound the sampled training timesteps ([min, max))', async () => {
    const timesteps = async (v: Record<string, unknown>) => {
      const ts: number[] = [];
      await train(cfg({ max_train_steps: 3, ...v }), { log: quiet, onMicroBatch: (mb: MicroBatchTrace) => ts.push(...mb.timesteps) });
      assert.equal(ts.length, 6);
      return ts;
    };
    const high = await timesteps({ min_timestep: 900 });
    assert.ok(high.every((t) => Number.isInteger(t) && t >= 900 && t < 1000), high.join(' '));
    const narrow = await timesteps({ min_timestep: 300, max_timestep: 302 });
    assert.ok(narrow.every((t) => t === 300 || t === 301), narrow.join(' '));
    assert.throws(() => cfg({ min_timestep: 500, max_timestep: 500 }), /"min_timestep" \(500\) must be below "max_timestep" \(500\)/);
  });

  it('prior_loss_weight weighs the regularization images\' loss by its value', async () => {
    // One training and one regularization image in one batch: loss = (l_train + w·l_reg) / 2.
    const first = async (w: number) => {
      const t: MicroBatchTrace[] = [];
      await train(cfg({ train_data_dir: oneDir, reg_data_dir: regDir, max_train_steps: 1, prior_loss_weight: w }), { log: quiet, onMicroBatch: (m) => t.push(m) });
      return t[0];
    };
    const [t0, t1, t3] = [await first(0), await first(1), await first(2.5)];
    assert.equal(t1.shape[0], 2);
    for (const t of [t0, t3]) { assert.deepEqual(t.pred, t1.pred); assert.deepEqual(t.noise, t1.noise); }
    const per = t1.shape.slice(1).reduce((a, b) => a * b, 1);
    const mse = [0, 1].map((b) => { let s = 0; for (let j = b * per; j < (b + 1) * per; j++) s += (t1.pred[j] - t1.noise[j]) ** 2; return s / per; });
    const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b), `${what}: ${a} vs ${b}`);
    close(t1.loss, (mse[0] + mse[1]) / 2, 'prior_loss_weight 1: the plain mean');
    // The regularization sample is the one whose weight prior_loss_weight 0 removes.
    const reg = Math.abs(t0.loss - mse[0] / 2) < Math.abs(t0.loss - mse[1] / 2) ? 1 : 0;
    close(t0.loss, mse[1 - reg] / 2, 'prior_loss_weight 0 drops the regularization image');
    close(t3.loss, (mse[1 - reg] + 2.5 * mse[reg]) / 2, 'prior_loss_weight 2.5');
  });

  it('learning_rate_te sets the DreamBooth text encoder\'s rate (default learning_rate); save_model_as diffusers_safetensors writes a diffusers folder', async () => {
    const db = (v: Record<string, unknown>) => trainDreamBooth(resolveConfig([{ source: 'test', values: {
      training_method: 'dreambooth', pretrained_model_name_or_path: fx.model, train_data_dir: fx.dataDir, caption_extension: '.txt',
      resolution: 32, train_batch_size: 2, max_train_steps: 1, seed: 3, learning_rate: 0.05, max_grad_norm: 0, ...SGD(0.9), output_dir: path.join(tmp, `db${runs++}`), ...v,
    } }]), { log: quiet });
    const start = loadSDModel(fx.model);
    const a = await db({}), b = await db({ learning_rate_te: 0.15, save_model_as: 'diffusers_safetensors' });
    const s = await start;
    const moves = (w: Weights, from: Weights) => [...from.tensors].map(([k, t]) => w.get(k).dataSync().map((x, i) => x - t.dataSync()[i]));
    const floor = (w: Weights) => 2 ** -22 * norm([...w.tensors.values()].map((t) => t.dataSync()));
    for (const [k, t] of a.model.unet.weights.tensors) assert.deepEqual(b.model.unet.weights.get(k).dataSync(), t.dataSync(), `the UNet keeps learning_rate: ${k}`);
    const ma = moves(a.model.textEncoder.weights, s.textEncoder.weights), mb = moves(b.model.textEncoder.weights, s.textEncoder.weights);
    assert.ok(norm(ma) > 1e3 * floor(s.textEncoder.weights), 'the text encoder trains at learning_rate by default');
    const off = norm(mb.map((v, j) => v.map((x, i) => x - 3 * ma[j][i])));
    assert.ok(off <= 1e-3 * norm(mb) + 4 * floor(s.textEncoder.weights), `learning_rate_te 0.15 moves the text encoder 3 times as far (off by ${off} of ${norm(mb)})`);
    // diffusers_safetensors: a diffusers folder with safetensors weights.
    assert.equal(b.finalPath, path.join(path.dirname(b.finalPath!), 'last'));
    for (const f of ['unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'model_index.json']) assert.ok(existsSync(path.join(b.finalPath!, f)), f);
    assert.ok(a.finalPath!.endsWith('last.safetensors'), 'safetensors: one file');
  });

  it('save_model_as: diffusers formats only for dreambooth; pickle formats (ckpt, pt) are refused naming the formats written', () => {
    assert.equal(cfg({}).save_model_as, 'safetensors');
    assert.equal(cfg({ save_model_as: 'safetensors' }).save_model_as, 'safetensors');
    for (const f of ['diffusers', 'diffusers_safetensors']) assert.throws(() => cfg({ save_model_as: f }), new RegExp(`"save_model_as" ${f} is for training_method dreambooth`));
    for (const f of ['ckpt', 'pt']) {
      assert.throws(() => cfg({ save_model_as: f }), (e: Error) => e instanceof ConfigError && e.message.includes(`"save_model_as" must be one of safetensors, diffusers, diffusers_safetensors, got "${f}"`));
    }
  });

  describe('a run that leaves the options out: sd-scripts defaults', () => {
    let dir: string, cwd: string;
    let r: Awaited<ReturnType<typeof train>>;
    const steps: StepInfo[] = [];
    const comment = 'first try, "quoted" and ünïcode';
    before(async () => {
      cwd = process.cwd();
      dir = path.join(tmp, 'cwd');
      mkdirSync(dir);
      process.chdir(dir);
      // No output_dir, learning_rate, network_dim or network_alpha; the old Lion switch.
      r = await train(trainConfig({ pretrained_model_name_or_path: fx.model, train_data_dir: fx.dataDir, caption_extension: '.txt', resolution: 32, train_batch_size: 2, max_train_steps: 2, seed: 4, training_comment: comment, use_lion_optimizer: true }), { log: quiet, onStep: (s) => steps.push(s) });
    });
    after(() => process.chdir(cwd));

    it('output_dir defaults to ./output', () => {
      assert.equal(path.resolve(r.finalPath!), path.join(dir, 'output', 'last.safetensors'));
      assert.ok(existsSync(path.join(dir, 'output', 'last-loss.jsonl')));
    });

    it('network_dim defaults to 4 and network_alpha to 1', async () => {
      const f = await loadLoRA(r.finalPath!);
      assert.ok(f.modules.size > 0);
      for (const m of f.modules.values()) { assert.equal(m.down.shape[0], 4); assert.equal(m.alpha, 1); }
      assert.equal(f.metadata.ss_network_dim, '4');
      assert.equal(f.metadata.ss_network_alpha, '1');
    });

    it('learning_rate defaults to 2e-6', async () => {
      assert.deepEqual(steps.map((s) => s.lr), [2e-6, 2e-6]);
      assert.equal(Number((await loadLoRA(r.finalPath!)).metadata.ss_learning_rate), 2e-6);
    });

    it('use_lion_optimizer trains with Lion, and ss_optimizer says so', async () => {
      assert.equal((await loadLoRA(r.finalPath!)).metadata.ss_optimizer, 'sdlora.optimizers.Lion');
      // Lion's first step moves each weight by exactly ±lr (the sign of the gradient): lora_up starts at 0.
      const moved = [...(await ups(r.finalPath!)).values()].flatMap((u) => [...u]);
      assert.ok(moved.some((x) => x !== 0));
      const lr = 2e-6, near = (x: number) => [0, lr, 2 * lr].some((v) => Math.abs(Math.abs(x) - v) <= 1e-6 * lr);
      const off = moved.filter((x) => !near(x));
      assert.deepEqual(off.slice(0, 5), [], 'two Lion steps: each weight moved by 0, ±lr or ±2lr');
    });

    it('training_comment is stored as ss_training_comment', async () => {
      assert.equal((await loadLoRA(r.finalPath!)).metadata.ss_training_comment, comment);
    });
  });

  it('use_lion_optimizer / use_8bit_adam with an optimizer_type, or both, are refused as sd-scripts refuses them', () => {
    assert.equal(cfg({ use_lion_optimizer: true }).optimizer_type, 'Lion');
    assert.equal(cfg({ use_8bit_adam: true }).optimizer_type, 'AdamW8bit');
    assert.throws(() => cfg({ use_lion_optimizer: true, optimizer_type: 'AdamW' }), /"use_lion_optimizer" and "optimizer_type"/);
    assert.throws(() => cfg({ use_8bit_adam: true, optimizer_type: 'AdamW8bit' }), /"use_8bit_adam" and "optimizer_type"/);
    assert.throws(() => cfg({ use_8bit_adam: true, use_lion_optimizer: true }), /"use_8bit_adam" and "use_lion_optimizer"/);
  });

  it('every option the schema marks as having no effect gets the "has no effect" note when given, and none when off', () => {
    const ignored = OPTIONS.filter((s) => s.ignored);
    assert.ok(ignored.length > 0);
    const on = (t: string): unknown => ({ boolean: true, integer: 2, number: 0.5, 'number?': 0.5, string: 'x', 'string[]': ['a=b'], resolution: 64 } as Record<string, unknown>)[t];
    const off = (t: string): unknown => ({ boolean: false, integer: 0, number: 0, 'number?': 0, string: '', 'string[]': [], resolution: null } as Record<string, unknown>)[t];
    const base = { pretrained_model_name_or_path: 'tiny', train_data_dir: '.' };
    for (const s of ignored) {
      const msgs = configMessages(resolveConfig([{ source: 'test', values: { ...base, [s.key]: on(s.type) } }]));
      assert.ok(msgs.includes(`note: "${s.key}" has no effect in sdlora (accepted for sd-scripts compatibility)`), `${s.key}: ${msgs.join(' | ')}`);
      assert.deepEqual(configMessages(resolveConfig([{ source: 'test', values: { ...base, [s.key]: off(s.type) } }])), [], `${s.key} off`);
    }
  });

  it('the README\'s "Every option" table and README-ja\'s 全オプション table are the one generated from the schema', () => {
    const want = optionsMarkdown();
    for (const file of ['README.md', 'README-ja.md']) {
      const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
      const start = lines.indexOf(want.split('\n')[0]);
      assert.ok(start >= 0, `${file}: the table header`);
      const end = lines.findIndex((l, i) => i > start && l.startsWith('Accepted so that sd-scripts configs load'));
      assert.ok(end > start, `${file}: the no-effect line after the table`);
      assert.equal(lines.slice(start, end + 1).join('\n'), want, `${file}: regenerate the table with npm run docs:config`);
    }
  });
});
