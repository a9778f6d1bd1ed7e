// The webgpu side of the command line: `sdlora doctor`, txt2img and train with --device webgpu,
// and a clear error (no crash) when no adapter exists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { decodePng } from '../../src/io/png.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-webgpu-cli-'));
// Dawn's OpenGL backend finds no adapter on these machines: a stand-in for "no GPU driver".
const NO_ADAPTER = { SDLORA_DAWN_OPTIONS: 'backend=opengl' };
const run = (args: string[], env: Record<string, string> = {}) => spawnSync('node', [cli, ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, ...env } });
let model: string;

describe('command line on webgpu', () => {
  before(async () => {
    model = await tinyModelFolder();
    writeShapeDataset(path.join(tmp, 'data'), { name: 'dot', repeats: 1, count: 2, size: 32, shapes: ['circle'], seed: 4 });
  });

  it('doctor reports the adapter with its features and limits', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const r = run(['doctor', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.webgpu.found, true);
    assert.ok(rep.webgpu.features.length > 0);
    assert.ok(rep.webgpu.limits.maxStorageBufferBindingSize > 0);
    assert.ok(rep.cpu.cores >= 1);
    assert.match(run(['doctor']).stdout, /features used by sdlora: shader-f16 (yes|no)/);
  });

  it('without an adapter: doctor says why, train and txt2img fail with that reason', () => {
    const d = run(['doctor'], NO_ADAPTER);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /webgpu backend\n {2}not available: no WebGPU adapter\. .*Mesa >= 25/);
    const g = run(['txt2img', '--model', model, '-p', 'x', '--width', '32', '--height', '32', '--steps', '1', '--device', 'webgpu'], NO_ADAPTER);
    assert.notEqual(g.status, 0);
    assert.match(g.stderr, /WebGPU: no adapter found/);
    assert.doesNotMatch(g.stderr, /\n\s+at /, 'an error message, not a stack trace');
    const tr = run(['train', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data', '--resolution', '32', '--max_train_steps', '1', '--output_dir', 'o', '--device', 'webgpu'], NO_ADAPTER);
    assert.notEqual(tr.status, 0);
    assert.match(tr.stderr, /WebGPU: no adapter found/);
  });

  it('txt2img --device webgpu writes an image', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const g = run(['txt2img', '--model', model, '-p', 'a dot', '--width', '32', '--height', '32', '--steps', '2', '--seed', '1', '--device', 'webgpu', '-o', 'gpu.png']);
    assert.equal(g.status, 0, g.stderr);
    const png = decodePng(readFileSync(path.join(tmp, 'gpu.png')));
    assert.equal(png.width, 32);
    assert.match(png.text.parameters, /Steps: 2/);
  });
});
