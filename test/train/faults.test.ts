// Faults during training, in process: NaN/Inf stops the run (or skips a few steps), a NaN LoRA is
// refused at generation time, a resume with another network is refused, an error saves the last
// step, a full disk at the final save falls back, symlinked data is followed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { listImages, scanRepeatFolders } from '../../src/data/folder-dataset.js';
import { prepareImageRgb } from '../../src/data/images.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { recoverState } from '../../src/train/state.js';
import { train } from '../../src/train/trainer.js';
import { TINY_LORA, trainFixture } from '../helpers/train-setup.js';

const fx = trainFixture('sdlora-faults-', {
  dataset: { name: 'star', repeats: 2, count: 3, size: 32, shapes: ['star'], seed: 1 },
  defaults: { ...TINY_LORA, seed: 3 },
});
const { tmp, cfg } = fx;
const logs = () => { const lines: string[] = []; return { lines, log: (m: string) => { lines.push(m); } }; };
const withEnv = async <T>(env: Record<string, string>, f: () => Promise<T>): Promise<T> => {
  Object.assign(process.env, env);
  try { return await f(); } finally { for (const k of Object.keys(env)) delete process.env[k]; }
};

describe('training faults', () => {
  before(fx.setup);

  it('stops at the first non-finite loss, keeps the last good save and says what to try', async () => {
    const out = path.join(tmp, 'nan');
    const l = logs();
    await assert.rejects(
      train(cfg({ output_dir: out, learning_rate: 1e30, save_every_n_steps: 1, save_state: true }), { log: l.log }),
      (e: Error) => {
        assert.match(e.message, /training diverged at step 2: the loss is (NaN|Infinity)/);
        assert.match(e.message, /last good save is kept: .*last-step00000001\.safetensors/);
        assert.match(e.message, /lower learning_rate \(now 1e\+30/);
        return true;
      });
    assert.ok(!existsSync(path.join(out, 'last.safetensors')), 'no final LoRA');
    assert.ok(!existsSync(path.join(out, 'last-step00000002.safetensors')), 'nothing saved after the bad step');
  });

  it('skip_nan_steps skips that many bad steps, then stops', async () => {
    const l = logs();
    await assert.rejects(train(cfg({ output_dir: path.join(tmp, 'nan-skip'), learning_rate: 1e30, skip_nan_steps: 1 }), { log: l.log }), /diverged at step 3/);
    assert.ok(l.lines.some((m) => /step 2: the loss is .*skipped \(1 of skip_nan_steps 1\)/.test(m)), l.lines.join('\n'));
  });

  it('refuses to generate with a LoRA holding NaN, naming the module', async () => {
    const r = await train(cfg({ output_dir: path.join(tmp, 'good'), max_train_steps: 1 }), { log: () => {} });
    const { tensors, metadata } = await loadSafetensors(r.finalPath!);
    const key = Object.keys(tensors).find((k) => k.endsWith('lora_up.weight'))!;
    const bad = tensors[key].dataSync().slice() as Float32Array;
    bad[0] = NaN;
    const libDir = path.join(tmp, 'loras');
    mkdirSync(libDir, { recursive: true });
    await saveSafetensors(path.join(libDir, 'broken.safetensors'), { ...tensors, [key]: E.tensor(bad, [...tensors[key].shape]) }, metadata);
    const m = await loadSDModel(fx.model);
    await assert.rejects(
      txt2img(m, { prompt: 'a star <lora:broken:1>', width: 32, height: 32, steps: 1, seed: 1 }, await LoRALibrary.scan(libDir)),
      new RegExp(`broken\\.safetensors: 1 LoRA module\\(s\\) hold NaN or Inf values \\(${key.split('.')[0]}\\)`));
  });

  it('refuses to resume with another network configuration, naming both', async () => {
    const out = path.join(tmp, 'resume-net');
    await train(cfg({ output_dir: out, save_state: true }), { log: () => {}, stopAfterSteps: 1 });
    const state = path.join(out, 'last-state');
    await assert.rejects(train(cfg({ output_dir: out, resume: state, network_alpha: 4 }), { log: () => {} }), /another network configuration:\n {2}network_alpha: saved 2, now 4/);
    await assert.rejects(train(cfg({ output_dir: out, resume: state, network_dim: 8 }), { log: () => {} }), /network_dim: saved 4, now 8[^]*changed shape/);
    await assert.rejects(train(cfg({ output_dir: out, resume: state, network_args: ['conv_dim=2'] }), { log: () => {} }), /network_args: saved \[\], now \[conv_dim=2\][^]*not in the saved state/);
    await assert.rejects(train(cfg({ output_dir: out, resume: state, network_train_unet_only: true }), { log: () => {} }), /network_train_unet_only: saved false, now true[^]*saved tensor\(s\) are not in this network/);
    const ok = await train(cfg({ output_dir: out, resume: state, network_args: ['rank_dropout=0.1'] }), { log: () => {} });
    assert.equal(ok.steps, 4, 'a dropout change is allowed');
  });

  it('an error mid-run saves the LoRA and state of the last step, and the resume ends where an unbroken run ends', async () => {
    const whole = await train(cfg({ output_dir: path.join(tmp, 'whole') }), { log: () => {} });
    const out = path.join(tmp, 'crash');
    const l = logs();
    await withEnv({ SDLORA_TEST_FAIL: 'step#2' }, () => assert.rejects(train(cfg({ output_dir: out }), { log: l.log }), /injected failure at step/));
    assert.ok(existsSync(path.join(out, 'last-step00000002.safetensors')));
    assert.ok(l.lines.some((m) => /error after step 2; its LoRA and state are saved/.test(m)), l.lines.join('\n'));
    const resumed = await train(cfg({ output_dir: out, resume: path.join(out, 'last-state') }), { log: () => {} });
    const a = (await loadSafetensors(whole.finalPath!)).tensors, b = (await loadSafetensors(resumed.finalPath!)).tensors;
    for (const k of Object.keys(a)) assert.deepEqual(b[k].dataSync(), a[k].dataSync(), k);
  });

  it('a full disk at the final save writes the LoRA to fallback_output_dir', async () => {
    const out = path.join(tmp, 'full'), fallback = path.join(tmp, 'elsewhere');
    const l = logs();
    const r = await withEnv({ SDLORA_TEST_FAULT: `ENOSPC:${out}${path.sep}last.safetensors` },
      () => train(cfg({ output_dir: out, fallback_output_dir: fallback, max_train_steps: 1 }), { log: l.log }));
    assert.equal(r.finalPath, path.join(fallback, 'last.safetensors'));
    assert.ok(existsSync(r.finalPath!) && !existsSync(path.join(out, 'last.safetensors')));
    assert.ok(l.lines.some((m) => /the disk is full while writing last\.safetensors: it needs about [\d.]+ MiB/.test(m)), l.lines.join('\n'));
  });

  it('a full disk at a periodic save is a warning: training goes on and the previous state is kept', async () => {
    const out = path.join(tmp, 'full-mid');
    const l = logs();
    const r = await withEnv({ SDLORA_TEST_FAULT: `ENOSPC:${path.join(out, 'last-state.new')}` },
      () => train(cfg({ output_dir: out, save_every_n_steps: 1, save_state: true, max_train_steps: 3 }), { log: l.log }));
    assert.equal(r.steps, 3);
    assert.ok(existsSync(r.finalPath!));
    assert.ok(l.lines.some((m) => /warning: the save at step 1 was skipped, the disk is full/.test(m)), l.lines.join('\n'));
    assert.ok(!existsSync(path.join(out, 'last-state.new')), 'the incomplete state is removed');
  });

  it('follows symlinked concept folders and images, and names broken links', () => {
    const root = path.join(tmp, 'links');
    const real = path.join(tmp, 'real');
    writeShapeDataset(real, { name: 'ring', repeats: 3, count: 2, size: 32, shapes: ['ring'], seed: 2 });
    mkdirSync(path.join(root, '1_own'), { recursive: true });
    symlinkSync(path.join(real, '3_ring'), path.join(root, '3_ring'));
    symlinkSync(path.join(real, '3_ring', readdirSync(path.join(real, '3_ring')).find((f) => f.endsWith('.png'))!), path.join(root, '1_own', 'linked.png'));
    symlinkSync(path.join(tmp, 'nowhere'), path.join(root, '2_gone'));
    const { subsets, skipped } = scanRepeatFolders(root);
    assert.deepEqual(subsets.map((s) => s.dirName), ['1_own', '3_ring']);
    assert.match(skipped.join('\n'), /2_gone: ignored, a symbolic link to something that does not exist/);
    assert.equal(listImages(path.join(root, '3_ring')).length, 2);
    assert.deepEqual(listImages(path.join(root, '1_own')), [path.join(root, '1_own', 'linked.png')]);
  });

  it('refuses an image too small for its bucket by name, before libvips sees a zero size', async () => {
    const file = path.join(tmp, 'one.png');
    writeFileSync(file, Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108020000009077533de00000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082', 'hex'));
    await assert.rejects(prepareImageRgb(file, { resized: [1, 1], bucket: [0, 0], offset: [0, 0], flip: false }, [1, 1]), /one\.png: the image is 1x1, too small for training/);
  });

  it('a truncated image is named before step 1, not mid-run', async () => {
    const dir = path.join(tmp, 'trunc-data');
    writeShapeDataset(dir, { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 4 });
    const png = readFileSync(path.join(dir, '1_star', readdirSync(path.join(dir, '1_star')).find((f) => f.endsWith('.png'))!));
    const bad = path.join(dir, '1_star', 'zz-truncated.png');
    writeFileSync(bad, png.subarray(0, Math.floor(png.length * 0.6)));
    writeFileSync(bad.replace(/png$/, 'txt'), 'a star');
    const out = path.join(tmp, 'trunc-out');
    await assert.rejects(train(cfg({ output_dir: out, train_data_dir: dir }), { log: () => {} }), (e: Error) => {
      assert.match(e.message, /zz-truncated\.png: cannot read the image/);
      assert.doesNotMatch(e.message, /\n.*\n.*VipsPng|GLib/);
      return true;
    });
    assert.ok(!existsSync(path.join(out, 'last-loss.jsonl')), 'no step ran');
  });

  it('recovers a state folder from an interrupted swap', () => {
    const dir = path.join(tmp, 'swap', 'last-state');
    const fill = (d: string, step: number) => { mkdirSync(d, { recursive: true }); writeFileSync(path.join(d, 'state.safetensors'), ''); writeFileSync(path.join(d, 'train_state.json'), String(step)); };
    fill(`${dir}.old`, 1); fill(`${dir}.new`, 2);
    assert.match(recoverState(dir)!, /completed a save/);
    assert.ok(existsSync(dir) && !existsSync(`${dir}.new`) && !existsSync(`${dir}.old`));
  });
});
