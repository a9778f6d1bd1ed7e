// Kill, signal and two-run tests against the real command line: `sdlora train` in a child process,
// stopped at exact moments by SDLORA_TEST_PAUSE (src/train/test-hooks.ts) and killed with SIGKILL,
// or sent SIGINT / SIGUSR1. Every wait is on a condition (a line, a file, the exit), bounded.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { resolveConfig } from '../../src/train/config.js';
import { LOCK_FILE } from '../../src/train/run-lock.js';
import { loadState } from '../../src/train/state.js';
import { train } from '../../src/train/trainer.js';
import { spawnCli, waitForFile } from '../helpers/cli-child.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-kill-'));
const dataDir = path.join(tmp, 'data');
let model: string;
const opts = (out: string, v: Record<string, unknown> = {}) => ({
  pretrained_model_name_or_path: model, train_data_dir: dataDir, caption_extension: '.txt', resolution: 32, train_batch_size: 2,
  max_train_steps: 4, learning_rate: 1e-3, network_dim: 4, network_alpha: 2, seed: 5, output_dir: out, ...v,
});
const flags = (o: Record<string, unknown>) => Object.entries(o).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]));
const trainCli = (out: string, v: Record<string, unknown> = {}, env: Record<string, string> = {}) => spawnCli(['train', ...flags(opts(out, v))], env);
const tensors = async (f: string) => (await loadSafetensors(f)).tensors;

describe('kills and signals during training (child processes)', () => {
  let reference: Record<string, E.Tensor>;
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    writeShapeDataset(dataDir, { name: 'star', repeats: 2, count: 3, size: 32, shapes: ['star'], seed: 1 });
    const r = await train(resolveConfig([{ source: 'test', values: opts(path.join(tmp, 'reference')) }]), { log: () => {} });
    reference = await tensors(r.finalPath!);
  });

  for (const point of ['state-written', 'state-aside', 'state-swapped']) {
    it(`kill -9 at ${point} during a state save: the resume finds a complete state and ends as an unbroken run`, async () => {
      const out = path.join(tmp, `kill-${point}`);
      const run = trainCli(out, { save_state: true, save_every_n_steps: 1 }, { SDLORA_TEST_PAUSE: `${point}#2` });
      await run.waitForStderr(new RegExp(`sdlora-test-paused: ${point}`));
      run.child.kill('SIGKILL');
      assert.equal(await run.exit(), 'SIGKILL');
      const state = path.join(out, 'last-state');
      // At the old rmSync-then-rename swap, a kill here left no state at all.
      if (point === 'state-aside') assert.ok(!existsSync(state) && existsSync(`${state}.new`), 'killed between the two renames');
      const resumed = trainCli(out, { save_state: true, save_every_n_steps: 1, resume: state });
      assert.equal(await resumed.exit(), 0, resumed.stderr());
      assert.match(resumed.stderr(), /resumed at step 2/);
      const got = await tensors(path.join(out, 'last.safetensors'));
      for (const k of Object.keys(reference)) assert.deepEqual(got[k].dataSync(), reference[k].dataSync(), k);
      assert.ok(!existsSync(`${state}.new`) && !existsSync(`${state}.old`), 'no leftovers');
    });
  }

  it('a second run into the same output_dir is refused; a lock left by a killed run is cleaned up', async () => {
    const out = path.join(tmp, 'locked');
    const first = trainCli(out, {}, { SDLORA_TEST_PAUSE: 'step#1' });
    await first.waitForStderr(/sdlora-test-paused: step/);
    const second = trainCli(out);
    assert.equal(await second.exit(), 1);
    assert.match(second.stderr(), new RegExp(`another sdlora training run is using this output_dir \\(pid ${first.child.pid} on ${os.hostname()}`));
    assert.doesNotMatch(second.stderr(), /\n\s+at /, 'no stack trace');
    first.child.kill('SIGKILL');
    await first.exit();
    assert.ok(existsSync(path.join(out, LOCK_FILE)), 'the killed run left its lock');
    const third = trainCli(out);
    assert.equal(await third.exit(), 0, third.stderr());
    assert.match(third.stderr(), /removed a stale lock/);
    assert.ok(!existsSync(path.join(out, LOCK_FILE)), 'released at the end');
  });

  it('the first Ctrl-C saves a LoRA and the state, then exits with a message', async () => {
    const out = path.join(tmp, 'sigint');
    const run = trainCli(out, { max_train_steps: 100000 });
    await waitForFile(path.join(out, 'last-loss.jsonl'), (t) => t.trim().length > 0);
    run.child.kill('SIGINT');
    assert.equal(await run.exit(), 130);
    const m = /interrupted at step (\d+): saved (\S+) and the state (\S+); continue with --resume/.exec(run.stderr());
    assert.ok(m, run.stderr());
    assert.ok(existsSync(m[2]));
    assert.equal((await loadState(m[3])).state.globalStep, Number(m[1]));
  });

  it('a second Ctrl-C exits at once', async () => {
    const out = path.join(tmp, 'sigint2');
    const run = trainCli(out, { max_train_steps: 100000 }, { SDLORA_TEST_PAUSE: 'interrupt-save' });
    await waitForFile(path.join(out, 'last-loss.jsonl'), (t) => t.trim().length > 0);
    run.child.kill('SIGINT');
    await run.waitForStderr(/sdlora-test-paused: interrupt-save/);
    run.child.kill('SIGINT');
    assert.equal(await run.exit(), 130);
    assert.match(run.stderr(), /SIGINT again: exiting now without saving/);
  });

  it('a full disk at the final save keeps the LoRA in memory and writes it after SIGUSR1', async () => {
    const out = path.join(tmp, 'enospc');
    const run = trainCli(out, { max_train_steps: 1 }, { SDLORA_TEST_FAULT: `ENOSPC:${path.join(out, 'last.safetensors')}#1` });
    await run.waitForStderr(/send SIGUSR1 to retry/);
    assert.match(run.stderr(), /the disk is full while writing last\.safetensors: it needs about [\d.]+ MiB.*kept in memory/);
    assert.ok(!existsSync(path.join(out, 'last.safetensors')));
    run.child.kill('SIGUSR1');
    assert.equal(await run.exit(), 0, run.stderr());
    assert.ok(existsSync(path.join(out, 'last.safetensors')));
  });

  it('an injected error mid-run leaves the last step saved and exits 1 with one line, no stack trace', async () => {
    const out = path.join(tmp, 'crash');
    const run = trainCli(out, {}, { SDLORA_TEST_FAIL: 'step#3' });
    assert.equal(await run.exit(), 1);
    assert.match(run.stderr(), /error after step 3; its LoRA and state are saved/);
    assert.match(run.stderr(), /sdlora: injected failure at step/);
    assert.doesNotMatch(run.stderr(), /\n\s+at /);
    assert.ok(existsSync(path.join(out, 'last-step00000003.safetensors')));
    assert.equal((await loadState(path.join(out, 'last-state'))).state.globalStep, 3);
  });
});
