// Textual Inversion (training_method textual_inversion): only the new rows train, the file is
// sd-scripts'/A1111's layout, it loads back through --embeddings-dir and reproduces the training-time
// conditioning, resume is exact, and the CLI runs, lists and generates with it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { encodeText } from '../../src/families/text.js';
import { EmbeddingLibrary, embeddingsUsed, tiHashes } from '../../src/infer/embeddings.js';
import { decodePng } from '../../src/io/png.js';
import { SafetensorsFile, loadSafetensors } from '../../src/io/safetensors.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { ConfigError, resolveConfig } from '../../src/train/config.js';
import { OBJECT_TEMPLATES, trainTextualInversion } from '../../src/train/textual-inversion.js';
import { trainFixture } from '../helpers/train-setup.js';

const fx = trainFixture('sdlora-ti-', {
  dataset: { name: 'star', repeats: 2, count: 3, size: 32, shapes: ['star'], seed: 1 },
  defaults: {
    training_method: 'textual_inversion', caption_extension: '.txt', resolution: 32, train_batch_size: 2, max_train_steps: 4, learning_rate: 5e-3, seed: 3,
    token_string: 'zqx', init_word: 'star', num_vectors_per_token: 2, use_object_template: true,
  },
});
const { tmp, dataDir, cfg } = fx;
const quiet = () => {};
const TOKEN = 'text_model.embeddings.token_embedding.weight';

describe('textual inversion', () => {
  before(fx.setup);

  it('trains only the new rows and writes emb_params with sd-scripts\' metadata', async () => {
    const base = await loadSDModel(fx.model);
    const out = path.join(tmp, 'run');
    const prompts = path.join(tmp, 'prompts.txt');
    writeFileSync(prompts, 'a zqx on white --w 32 --h 32 --d 2 --s 2\n');
    const r = await trainTextualInversion(cfg({ output_dir: out, save_every_n_steps: 2, sample_prompts: prompts, sample_every_n_steps: 4 }), { log: quiet });
    assert.equal(r.steps, 4);
    assert.equal(r.samples.length, 1, 'samples with the word as it trains');
    assert.match(decodePng(readFileSync(r.samples[0])).text.parameters, /^a zqx on white\nSteps: 2/);
    assert.equal(r.finalPath, path.join(out, 'zqx.safetensors'), 'output_name defaults to token_string');
    assert.deepEqual(r.saved, [path.join(out, 'zqx-step00000002.safetensors'), r.finalPath]);
    const { tensors, metadata } = await loadSafetensors(r.finalPath!);
    assert.deepEqual(Object.keys(tensors), ['emb_params']);
    const W = base.textEncoder.config.hidden_size;
    assert.deepEqual(tensors.emb_params.shape, [2, W]);
    assert.equal(metadata['modelspec.architecture'], 'stable-diffusion-v1/textual-inversion');
    assert.equal(metadata['modelspec.title'], 'zqx');
    assert.ok(!Object.keys(metadata).some((k) => k.startsWith('ss_')), 'sd-scripts writes only modelspec keys with an embedding');
    // Every weight of the model, the whole token table included, is bit-identical to the base.
    for (const [a, b] of [[base.unet.weights, r.model.unet.weights], [base.textEncoder.weights, r.model.textEncoder.weights], [base.vae.weights, r.model.vae.weights]] as const) {
      for (const [k, t] of a.tensors) assert.deepEqual(b.tensors.get(k)!.dataSync(), t.dataSync(), k);
    }
    // The vectors started at init_word's token rows (4 byte tokens: vectors take the first two) and moved.
    const ids = base.tokenizer.encode('star');
    const table = base.textEncoder.weights.get(TOKEN).dataSync();
    const init = Float32Array.from([...table.subarray(ids[0] * W, (ids[0] + 1) * W), ...table.subarray(ids[1] * W, (ids[1] + 1) * W)]);
    const zero = await trainTextualInversion(cfg({ output_dir: path.join(tmp, 'lr0'), learning_rate: 0, max_train_steps: 1 }), { log: quiet });
    assert.deepEqual((await loadSafetensors(zero.finalPath!)).tensors.emb_params.dataSync(), init);
    assert.notDeepEqual(tensors.emb_params.dataSync(), init);

    // Loaded back as A1111 does (folder, file stem = word), the word gives the training-time conditioning.
    const embDir = path.join(tmp, 'emb', 'nested');
    mkdirSync(embDir, { recursive: true });
    copyFileSync(r.finalPath!, path.join(embDir, 'zqx.safetensors'));
    const fresh = await loadSDModel(fx.model);
    const lib = await EmbeddingLibrary.scan(path.join(tmp, 'emb'));
    assert.deepEqual((await lib.applyTo(fresh)).map((e) => e.name), ['zqx']);
    const prompt = OBJECT_TEMPLATES[0].replace('{}', 'zqx');
    const want = E.noGrad(() => encodeText(r.model, [prompt]).context.dataSync());
    const got = E.noGrad(() => encodeText(fresh, [prompt]).context.dataSync());
    assert.deepEqual(got, want);
    assert.notDeepEqual(E.noGrad(() => encodeText(base, [prompt]).context.dataSync()), want);
    const sha = createHash('sha256').update(readFileSync(r.finalPath!)).digest('hex');
    assert.equal(tiHashes(embeddingsUsed(lib.entries, 'a zqx photo', '')), `TI hashes: "zqx: ${sha.slice(0, 12)}"`);
    assert.deepEqual(embeddingsUsed(lib.entries, 'zqxs and azqx', ''), [], 'whole words only');
  });

  it('resumes exactly', async () => {
    const a = await trainTextualInversion(cfg({ output_dir: path.join(tmp, 'a'), optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine' }), { log: quiet });
    const outB = path.join(tmp, 'b');
    const first = await trainTextualInversion(cfg({ output_dir: outB, save_state: true, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine' }), { log: quiet, stopAfterSteps: 2 });
    assert.equal(first.finalPath, null);
    const b = await trainTextualInversion(cfg({ output_dir: outB, save_state: true, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', resume: path.join(outB, 'zqx-state') }), { log: quiet });
    assert.equal(b.steps, 4);
    assert.deepEqual((await loadSafetensors(b.finalPath!)).tensors.emb_params.dataSync(), (await loadSafetensors(a.finalPath!)).tensors.emb_params.dataSync());
    assert.deepEqual(b.losses.map((l) => l.loss), a.losses.map((l) => l.loss));
    await assert.rejects(trainTextualInversion(cfg({ output_dir: outB, num_vectors_per_token: 3, resume: path.join(outB, 'zqx-state') }), { log: quiet }), /another training setup/);
  });

  it('the tokenizer matches an added word as a whole word, before BPE, and refuses it twice', async () => {
    const m = await loadSDModel(fx.model);
    const tok = m.tokenizer;
    const plain = tok.encode('a zqx, zqxs');
    tok.addWord('zqx', [900, 901]);
    assert.deepEqual(tok.encode('a ZQX, zqxs'), [...tok.encode('a'), 900, 901, ...tok.encode(', zqxs')]);
    assert.notDeepEqual(tok.encode('a zqx, zqxs'), plain);
    assert.throws(() => tok.addWord('zqx', [902]), /already/);
    assert.throws(() => tok.addWord('two words', [902]), /one word/);
  });

  it('writes save_precision fp16 / bf16', async () => {
    for (const [p, dt] of [['fp16', 'F16'], ['bf16', 'BF16']] as const) {
      const r = await trainTextualInversion(cfg({ output_dir: path.join(tmp, `prec-${p}`), save_precision: p, max_train_steps: 1 }), { log: quiet });
      const f = await SafetensorsFile.open(r.finalPath!);
      assert.equal(f.entries.get('emb_params')!.dtype, dt);
      await f.close();
    }
  });

  it('refuses options of other methods and a missing token_string', () => {
    assert.throws(() => cfg({ network_dim: 8 }), (e: Error) => e instanceof ConfigError && /"network_dim" is for training_method lora/.test(e.message));
    assert.throws(() => cfg({ token_string: undefined }), /needs "token_string"/);
    assert.throws(() => cfg({ use_style_template: true }), /exclude each other/);
    assert.throws(() => resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: dataDir, token_string: 'zqx' } }]), /"token_string" is for training_method textual_inversion, not lora/);
  });

  it('runs from the CLI on the bundled tiny model; txt2img --embeddings-dir names it in TI hashes; embeddings list shows it', () => {
    const out = path.join(tmp, 'cli');
    const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    cli('train', '--training_method', 'textual_inversion', '--pretrained_model_name_or_path', 'tiny', '--train_data_dir', dataDir, '--caption_extension', '.txt',
      '--resolution', '32', '--max_train_steps', '2', '--learning_rate', '1e-3', '--seed', '1', '--token_string', 'zqx', '--init_word', 'star', '--output_dir', out);
    const file = path.join(out, 'zqx.safetensors');
    const list = cli('embeddings', 'list', out);
    assert.match(list, /^zqx\t1 vector\twidth 64 \(emb_params \[1, 64\]\)\t[0-9a-f]{12}\t/m);
    assert.match(cli('lora', 'list', out), /^zqx .*\n {4}textual-inversion embedding \(txt2img --embeddings-dir/m, 'lora list says what the file is');
    const png = path.join(tmp, 'ti.png');
    cli('txt2img', '--model', 'tiny', '-p', 'a zqx star', '--width', '32', '--height', '32', '--steps', '2', '--seed', '1', '--embeddings-dir', out, '-o', png);
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 12);
    assert.match(decodePng(readFileSync(png)).text.parameters, new RegExp(`TI hashes: "zqx: ${sha}", Version`));
  });
});
