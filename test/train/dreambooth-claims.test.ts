// README "DreamBooth" claims not covered by dreambooth.test.ts: is_reg subsets of a dataset_config
// are regularisation images (weighed by prior_loss_weight, not counted as train images), a negative
// stop_text_encoder_training never trains the text encoder, learning_rate_te sets its rate; and
// Textual Inversion and DreamBooth runs take the same output_dir lock as LoRA runs.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import type { Weights } from '../../src/models/weights.js';
import { resolveConfig } from '../../src/train/config.js';
import { trainDreamBooth } from '../../src/train/dreambooth.js';
import { LOCK_FILE } from '../../src/train/run-lock.js';
import { trainTextualInversion } from '../../src/train/textual-inversion.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-db-claims-'));
const trainDir = path.join(tmp, 'train'), regDir = path.join(tmp, 'reg');
let model: string;
let base: SDModel;
const quiet = () => {};
const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: Object.fromEntries(Object.entries({
  training_method: 'dreambooth', pretrained_model_name_or_path: model, train_data_dir: trainDir, caption_extension: '.txt',
  resolution: 32, train_batch_size: 1, max_train_steps: 1, learning_rate: 1e-3, seed: 11, ...v,
}).filter(([, x]) => x !== undefined)) }]);
const same = (a: Weights, b: Weights) => [...a.tensors].every(([k, t]) => { const x = b.get(k).dataSync(), y = t.dataSync(); return x.every((v, i) => v === y[i]); });
/** Per tensor element: the trained value minus the base value. */
const deltas = (trained: Weights, from: Weights) => [...from.tensors].flatMap(([k, t]) => { const x = trained.get(k).dataSync(), y = t.dataSync(); return Array.from(y, (v, i) => x[i] - v); });

describe('dreambooth: README claims', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    base = await loadSDModel(model);
    writeShapeDataset(trainDir, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 1 });
    writeShapeDataset(regDir, { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 2 });
  });

  it('is_reg subsets of a dataset_config are regularisation images: not train images, loss weighed by prior_loss_weight', async () => {
    const toml = path.join(tmp, 'dataset.toml');
    writeFileSync(toml, [
      '[general]', 'caption_extension = ".txt"', 'resolution = 32', '',
      '[[datasets]]', 'batch_size = 1', '',
      '[[datasets.subsets]]', `image_dir = ${JSON.stringify(path.join(trainDir, '1_sks star'))}`, 'num_repeats = 2', '',
      '[[datasets.subsets]]', `image_dir = ${JSON.stringify(path.join(regDir, '1_star'))}`, 'is_reg = true', 'num_repeats = 1', '',
    ].join('\n'));
    // Learning rate 0: the weights stay, so with one seed each step sees the same image, noise and
    // timestep in both runs, and only the weight of a regularisation image's loss differs.
    const run = (w: number) => trainDreamBooth(cfg({ train_data_dir: undefined, dataset_config: toml, output_dir: path.join(tmp, `reg-${w}`), prior_loss_weight: w, learning_rate: 0, max_train_steps: 8 }), { log: quiet });
    const a = await run(1), b = await run(0.5);
    assert.equal(a.data.numTrainImages, 4, 'the train subset only: 2 images x 2 repeats');
    assert.equal(a.data.numRegImages, 2, 'the is_reg subset');
    assert.deepEqual(Object.keys(a.data.regDatasetDirs).map((d) => path.basename(d)), ['1_star']);
    const ratios = a.losses.map((l, i) => b.losses[i].loss / l.loss);
    for (const r of ratios) assert.ok(Math.abs(r - 1) < 1e-6 || Math.abs(r - 0.5) < 1e-6, `loss ratio ${r}`);
    const regSteps = ratios.filter((r) => Math.abs(r - 0.5) < 1e-6).length;
    // sd-scripts repeats the regularisation images up to the number of train images: half of each epoch.
    assert.equal(regSteps, a.losses.length / 2, `${regSteps} of ${a.losses.length} steps saw a regularisation image`);
  });

  it('a negative stop_text_encoder_training never trains the text encoder (bit-identical)', async () => {
    const logs: string[] = [];
    const r = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'stop-neg'), stop_text_encoder_training: -1, max_train_steps: 2 }), { log: (m) => logs.push(m) });
    assert.ok(same(base.textEncoder.weights, r.model.textEncoder.weights), 'the text encoder is the base one');
    assert.ok(!same(base.unet.weights, r.model.unet.weights), 'the UNet trained');
    assert.ok(logs.some((l) => /text encoder frozen/.test(l)), logs.join('\n'));
    assert.deepEqual([...r.method.groups.keys()], ['unet']);
  });

  it('learning_rate_te sets the text encoder\'s learning rate (the UNet keeps learning_rate)', async () => {
    // One AdamW step moves each value by about lr (its first update is lr * g / |g|), so the text
    // encoder's change scales with learning_rate_te; the UNet's step does not depend on it.
    const dflt = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'lrte-default') }), { log: quiet });
    const zero = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'lrte-0'), learning_rate_te: 0 }), { log: quiet });
    const triple = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'lrte-3x'), learning_rate_te: 3e-3 }), { log: quiet });
    assert.ok(same(base.textEncoder.weights, zero.model.textEncoder.weights), 'learning_rate_te 0: the text encoder does not move');
    assert.ok(!same(base.textEncoder.weights, dflt.model.textEncoder.weights), 'without it the text encoder trains at learning_rate');
    assert.ok(same(dflt.model.unet.weights, zero.model.unet.weights) && same(dflt.model.unet.weights, triple.model.unet.weights), 'the UNet step is the same');
    const d1 = deltas(dflt.model.textEncoder.weights, base.textEncoder.weights), d3 = deltas(triple.model.textEncoder.weights, base.textEncoder.weights);
    const big = d1.map((v, i) => [Math.abs(v), i]).filter(([v]) => v > 5e-4).map(([, i]) => i);
    assert.ok(big.length > 100, `${big.length} values moved by about learning_rate`);
    const ratios = big.map((i) => d3[i] / d1[i]).sort((x, y) => x - y);
    const median = ratios[Math.floor(ratios.length / 2)];
    assert.ok(Math.abs(median - 3) < 0.05, `the text encoder moved ${median}x as far with learning_rate_te = 3 x learning_rate`);
  });

  for (const method of ['dreambooth', 'textual_inversion'] as const) {
    it(`a ${method} run takes the output_dir lock of LoRA runs: refused while another run holds it, held while it trains, released after`, async () => {
      const run = (out: string, hooks: Parameters<typeof trainDreamBooth>[1]) => method === 'dreambooth'
        ? trainDreamBooth(cfg({ output_dir: out }), hooks)
        : trainTextualInversion(cfg({ training_method: 'textual_inversion', token_string: 'zqx', init_word: 'star', output_dir: out }), hooks);
      const locked = path.join(tmp, `locked-${method}`);
      mkdirSync(locked, { recursive: true });
      // A live run on this host (this process) holds the folder.
      writeFileSync(path.join(locked, LOCK_FILE), JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }));
      await assert.rejects(run(locked, { log: quiet }), new RegExp(`another sdlora training run is using this output_dir \\(pid ${process.pid} on `));
      const free = path.join(tmp, `free-${method}`);
      let held: string | null = null;
      const r = await run(free, { log: quiet, onStep: () => { held = readFileSync(path.join(free, LOCK_FILE), 'utf8'); } });
      assert.equal(r.steps, 1);
      assert.equal(JSON.parse(held!).pid, process.pid, 'the lock holds this run\'s pid while it trains');
      assert.ok(!existsSync(path.join(free, LOCK_FILE)), 'released at the end');
    });
  }
});
