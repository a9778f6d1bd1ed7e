// README Every option: max_token_length 150/225 "for long captions", through training: the trainer
// encodes a caption of more than 75 tokens in 75-token chunks stitched as sd-scripts does, so the
// context the UNet sees in a training step has 2 + 75k positions (152 for 150, 227 for 225) and
// tokens past the 75th change it; without max_token_length the caption is cut at 75 tokens. The
// UNet's forward is watched during real one-step runs; the expected context is the text stack's
// own encoding (src/families/text.ts, checked against sd-scripts' chunking in the tokenizer tests).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { encodeText } from '../../src/families/text.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-max-token-length-'));

// The test model's tokenizer has one token per byte: "ab" is two tokens, spaces none.
const words = (n: number, last: string) => [...Array(n - 1).fill('ab'), last].join(' ');

/** Contexts the UNet received during `fn` (host copies), with their shapes. */
async function watchUNet(fn: () => Promise<unknown>): Promise<{ shape: number[]; data: Float32Array }[]> {
  const seen: { shape: number[]; data: Float32Array }[] = [];
  const forward = UNet2DConditionModel.prototype.forward;
  UNet2DConditionModel.prototype.forward = function (this: UNet2DConditionModel, sample, timesteps, context, added) {
    seen.push({ shape: [...context.shape], data: Float32Array.from(context.dataSync() as Float32Array) });
    return forward.call(this, sample, timesteps, context, added);
  };
  try { await fn(); } finally { UNet2DConditionModel.prototype.forward = forward; }
  return seen;
}

const maxDiff = (a: Float32Array, b: Float32Array) => { assert.equal(a.length, b.length); let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])); return d; };

describe('max_token_length through training', () => {
  let model: string;
  let sd: SDModel;
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    sd = await loadSDModel(model);
  });

  /** One training step of batch 2 on two images captioned `a` and `b`; the UNet's context rows and the expected encodings. */
  async function run(name: string, a: string, b: string, maxTokenLength?: number) {
    const data = path.join(tmp, name);
    const sub = writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 4 });
    const txt = readdirSync(sub).filter((f) => f.endsWith('.txt')).sort();
    assert.equal(txt.length, 2);
    writeFileSync(path.join(sub, txt[0]), a);
    writeFileSync(path.join(sub, txt[1]), b);
    const values: Record<string, unknown> = { pretrained_model_name_or_path: model, train_data_dir: data, output_dir: path.join(tmp, `${name}-out`), caption_extension: '.txt',
      resolution: 32, train_batch_size: 2, max_train_steps: 1, network_dim: 2, seed: 1, ...(maxTokenLength ? { max_token_length: maxTokenLength } : {}) };
    const seen = await watchUNet(() => train(resolveConfig([{ source: 'test', values }]), { log: () => undefined }));
    assert.equal(seen.length, 1, 'one UNet forward: one step, one micro-batch');
    const [B, L, d] = seen[0].shape;
    assert.equal(B, 2);
    const rows = [0, 1].map((i) => seen[0].data.subarray(i * L * d, (i + 1) * L * d));
    const want = E.noGrad(() => encodeText(sd, [a, b], { maxTokenLength }).context);
    assert.deepEqual(want.shape, [2, L, d], 'the trainer\'s context has the text stack\'s shape');
    const w = want.dataSync() as Float32Array;
    const exp = [0, 1].map((i) => w.subarray(i * L * d, (i + 1) * L * d));
    return { L, rows, exp };
  }

  /** Each trained row is one of the two expected encodings, and both are there (batch order is the trainer's). */
  function sameRows(rows: Float32Array[], exp: Float32Array[]) {
    const tol = 1e-4;
    const direct = Math.max(maxDiff(rows[0], exp[0]), maxDiff(rows[1], exp[1])), swapped = Math.max(maxDiff(rows[0], exp[1]), maxDiff(rows[1], exp[0]));
    assert.ok(Math.min(direct, swapped) <= tol, `the UNet's context rows are the captions' encodings (max |diff| ${Math.min(direct, swapped)})`);
  }

  it('150: a caption of 90 tokens gives the UNet 152 positions, and its tokens past the 75th count', async () => {
    const a = words(45, 'ab'), b = words(45, 'cd'); // 90 tokens each, differing at tokens 89-90
    const { L, rows, exp } = await run('t150', a, b, 150);
    assert.equal(L, 152, '2 chunks of 75 tokens plus BOS and the last EOS');
    sameRows(rows, exp);
    assert.ok(maxDiff(rows[0], rows[1]) > 1e-3, 'captions differing only past token 75 give different contexts');
  });

  it('225: a caption of 170 tokens gives the UNet 227 positions, and its tokens past the 150th count', async () => {
    const a = words(85, 'ab'), b = words(85, 'cd'); // 170 tokens, differing at tokens 169-170
    const { L, rows, exp } = await run('t225', a, b, 225);
    assert.equal(L, 227);
    sameRows(rows, exp);
    assert.ok(maxDiff(rows[0], rows[1]) > 1e-3, 'captions differing only past token 150 give different contexts');
  });

  it('without max_token_length the caption is cut at 75 tokens: 77 positions, nothing past the 75th token counts', async () => {
    const a = words(45, 'ab'), b = words(45, 'cd');
    const { L, rows, exp } = await run('t75', a, b);
    assert.equal(L, 77);
    sameRows(rows, exp);
    assert.equal(maxDiff(rows[0], rows[1]), 0, 'the same context for both captions');
    // Within the first 75 tokens a difference does count (the watch sees the captions at all).
    const early = await run('t75-early', words(45, 'ab'), `cd ${words(44, 'ab')}`);
    assert.ok(maxDiff(early.rows[0], early.rows[1]) > 1e-3);
  });
});
