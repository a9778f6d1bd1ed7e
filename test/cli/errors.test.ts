// How the command line fails: one "sdlora: ..." line and no stack trace (unless --debug), a quiet
// exit when stdout's reader goes away (| head), and txt2img accepting "tiny" as train does.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { spawnCli } from '../helpers/cli-child.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-errors-'));
const STACK = /\n\s+at .+:\d+:\d+/;
let model: string;

/** The command with its stdout closed before it writes anything, as `sdlora ... | head -0` does. */
async function withClosedStdout(args: string[]) {
  const run = spawnCli(args);
  run.child.stdout!.destroy();
  return { code: await run.exit(), stderr: run.stderr() };
}

describe('command-line errors', () => {
  before(async () => { model = await tinyModelFolder(); });

  it('inspect into a closed pipe exits quietly', async () => {
    const r = await withClosedStdout(['inspect', path.join(model, 'unet', 'diffusion_pytorch_model.safetensors'), '--limit', '100000']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  it('lora list into a closed pipe exits quietly', async () => {
    const r = await withClosedStdout(['lora', 'list', path.join(model, 'unet')]);
    assert.doesNotMatch(r.stderr, /EPIPE/);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(r.code, 0, r.stderr);
  });

  it('errors are one line without --debug and come with the stack with --debug', async () => {
    const missing = path.join(tmp, 'missing.safetensors');
    const plain = spawnCli(['inspect', missing]);
    assert.equal(await plain.exit(), 1);
    assert.match(plain.stderr(), /^sdlora: .*missing\.safetensors/);
    assert.doesNotMatch(plain.stderr(), STACK);
    const debug = spawnCli(['inspect', missing, '--debug']);
    assert.equal(await debug.exit(), 1);
    assert.match(debug.stderr(), STACK);
    const train = spawnCli(['train', '--debug', '--pretrained_model_name_or_path', model, '--train_data_dir', path.join(tmp, 'nope'), '--output_dir', path.join(tmp, 'out')]);
    assert.equal(await train.exit(), 1);
    assert.match(train.stderr(), /nope: not a folder[^]*\n\s+at /, 'train takes --debug too');
  });

  it('txt2img accepts --model tiny like train', async () => {
    const out = path.join(tmp, 'tiny.png');
    const r = spawnCli(['txt2img', '--model', 'tiny', '-p', 'a red circle', '--width', '32', '--height', '32', '--steps', '1', '--seed', '1', '-o', out]);
    assert.equal(await r.exit(), 0, r.stderr());
    assert.ok(existsSync(out), readdirSync(tmp).join());
  });
});
