// The command line end to end: train from a TOML config, txt2img with a LoRA tag, dataset check,
// errors, and a short run of the demo on the bundled tiny model.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { decodePng } from '../../src/io/png.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-cli-'));
const run = (args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', cwd: tmp });
let model: string;

describe('command line', () => {
  before(async () => {
    model = await tinyModelFolder();
    writeShapeDataset(path.join(tmp, 'data'), { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 3 });
  });

  it('trains from a TOML config with flag overrides, then generates with the LoRA', () => {
    writeFileSync(path.join(tmp, 'cfg.toml'), `pretrained_model_name_or_path = "${model}"\ntrain_data_dir = "data"\nresolution = 32\ncaption_extension = ".txt"\nmax_train_steps = 5\noutput_dir = "out"\noutput_name = "sks"\nlearning_rate = 1e-3\n`);
    const r = run(['train', '--config', 'cfg.toml', '--max_train_steps', '2', '--network-dim', '2', '--seed', '4']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /out\/sks\.safetensors/);
    assert.match(r.stderr, /train \[/);
    const g = run(['txt2img', '--model', model, '-p', 'a red star <lora:sks:1>', '--lora-dir', 'out', '--width', '32', '--height', '32', '--steps', '2', '--seed', '3', '-o', 'img.png']);
    assert.equal(g.status, 0, g.stderr);
    const png = decodePng(readFileSync(path.join(tmp, 'img.png')));
    assert.equal(png.width, 32);
    assert.match(png.text.parameters, /Lora hashes: "sks: [0-9a-f]{12}"/);
  });

  it('explains bad configs and missing files with a non-zero exit', () => {
    const r = run(['train', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data', '--learnin_rate', '1']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown option "learnin_rate" \(did you mean "learning_rate"\?\)/);
    const m = run(['txt2img', '--model', 'nowhere', '-p', 'x']);
    assert.notEqual(m.status, 0);
    assert.match(m.stderr, /nowhere: no such model file or folder/);
  });

  it('checks a dataset as JSON', () => {
    const out = JSON.parse(execFileSync('node', [cli, 'dataset', 'check', 'data', '--json', '--resolution', '32'], { cwd: tmp, encoding: 'utf8' }));
    assert.equal(out.concepts[0].folder, '1_sks star');
    assert.equal(out.concepts[0].verdict, 'too few');
  });

  it('runs the demo end to end on the bundled tiny model (short)', () => {
    const r = run(['demo', '--out', 'demo', '--steps', '3', '--images', '2']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\n  base +cross in \d\/2 images/);
    assert.match(r.stdout, /\n  base \+ LoRA +cross in \d\/2 images/);
    for (const f of ['cross.safetensors', 'before-base.png', 'after-lora.png', 'cross-loss.svg']) assert.ok(existsSync(path.join(tmp, 'demo', f)), f);
  });
});
