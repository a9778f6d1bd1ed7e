// README "When things go wrong" claims not covered by kill.test.ts, against the real command line:
// Ctrl-C while a final save waits for disk space gives that save up and exits; SIGTERM acts as the
// first Ctrl-C (finishes the step, saves the LoRA and the state, exits 130).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadState } from '../../src/train/state.js';
import { type CliChild, spawnCli, waitForFile } from '../helpers/cli-child.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-fault-claims-'));
const dataDir = path.join(tmp, 'data');
let model: string;
const children: CliChild[] = [];
const trainCli = (out: string, v: Record<string, unknown>, env: Record<string, string> = {}) => {
  const run = spawnCli(['train', ...Object.entries({
    pretrained_model_name_or_path: model, train_data_dir: dataDir, caption_extension: '.txt', resolution: 32, train_batch_size: 2,
    learning_rate: 1e-3, network_dim: 4, network_alpha: 2, seed: 5, output_dir: out, ...v,
  }).flatMap(([k, x]) => [`--${k}`, String(x)])], env);
  children.push(run);
  return run;
};

describe('faults: README claims (child processes)', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    writeShapeDataset(dataDir, { name: 'star', repeats: 2, count: 3, size: 32, shapes: ['star'], seed: 1 });
  });
  // A child that did not exit as it should (a failed test) must not keep the test run waiting.
  after(() => { for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL'); });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} while the final save waits for disk space gives that save up and exits`, async () => {
      const out = path.join(tmp, `enospc-${signal}`);
      const final = path.join(out, 'last.safetensors');
      const run = trainCli(out, { max_train_steps: 1 }, { SDLORA_TEST_FAULT: `ENOSPC:${final}#1` });
      await run.waitForStderr(/send SIGUSR1 to retry.*Ctrl-C gives up/);
      run.child.kill(signal);
      const code = await run.exit(30_000);
      assert.equal(code, 1, run.stderr());
      assert.match(run.stderr(), /last\.safetensors: not saved, the disk is full/);
      assert.ok(!existsSync(final), 'nothing written');
      assert.doesNotMatch(run.stderr(), /\n\s+at /, 'one line, no stack trace');
    });
  }

  it('SIGTERM acts as the first Ctrl-C: the step finishes, the LoRA and the state are saved, exit 130', async () => {
    const out = path.join(tmp, 'sigterm');
    const run = trainCli(out, { max_train_steps: 100000 });
    await waitForFile(path.join(out, 'last-loss.jsonl'), (t) => t.trim().length > 0);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit(), 130, run.stderr());
    assert.match(run.stderr(), /SIGTERM: finishing the current step/);
    const m = /interrupted at step (\d+): saved (\S+) and the state (\S+); continue with --resume/.exec(run.stderr());
    assert.ok(m, run.stderr());
    assert.equal(path.basename(m[2]), `last-step${m[1].padStart(8, '0')}.safetensors`);
    assert.ok(Object.keys((await loadSafetensors(m[2])).tensors).some((k) => k.startsWith('lora_unet_')));
    assert.equal((await loadState(m[3])).state.globalStep, Number(m[1]));
  });
});
