// The README's Commands and Environment claims that need the command line itself: smoke, the
// progress bar's rate and ETA, txt2img --vae / --embeddings-dir (nested) / default size, embeddings
// list --json with the files it cannot use, lora list's base model / resolution / tags columns,
// merge-loras --no-clamp, lora extract's defaults, doctor's kernels and threads (SDLORA_THREADS,
// SDLORA_WASM=0), web's defaults, SDLORA_DEBUG=1. Commands run as child processes of bin/sdlora.js
// on the bundled tiny model (assets/tiny-sd), or, for the lora tools, through the same commander
// registration in this process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SD1, SDXL } from '../../src/families/index.js';
import { decodePng } from '../../src/io/png.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { registerLoRACommands } from '../../src/cli/lora-commands.js';
import { ProgressBar } from '../../src/cli/progress.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { TINY_MODEL_DIR } from '../../src/models/hub.js';
import { parsePromptLine } from '../../src/train/sample-prompts.js';
import { spawnCli } from '../helpers/cli-child.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-claims-'));
const run = (args: string[], env: Record<string, string | undefined> = {}) => {
  const full = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k];
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: tmp, env: full });
};
const rng = new E.Rng(5);
const randn = (shape: number[], s = 0.3) => E.mulScalar(E.randn(shape, rng), s);
const STACK = /\n\s+at .+:\d+:\d+/;

/** Runs `sdlora lora ...` through the command's own registration, with its console output captured. */
async function loraCommand(args: string[]): Promise<{ out: string; err: string }> {
  const program = new Command().exitOverride();
  registerLoRACommands(program);
  let out = '', err = '';
  const log = console.log, error = console.error, write = process.stderr.write;
  console.log = (...a: unknown[]) => { out += `${a.join(' ')}\n`; };
  console.error = (...a: unknown[]) => { err += `${a.join(' ')}\n`; };
  process.stderr.write = (() => true) as typeof process.stderr.write; // the progress bars
  try {
    await program.parseAsync(['lora', ...args], { from: 'user' });
  } finally {
    console.log = log; console.error = error; process.stderr.write = write;
  }
  return { out, err };
}

/** up @ down * alpha / rank of a plain LoRA module, flattened. */
function delta(m: { down: Tensor; up: Tensor; alpha: number }): Float64Array {
  const [r] = m.down.shape, o = m.up.shape[0], i = m.down.size / r;
  const d = m.down.dataSync(), u = m.up.dataSync(), out = new Float64Array(o * i);
  for (let a = 0; a < o; a++) for (let k = 0; k < r; k++) for (let b = 0; b < i; b++) out[a * i + b] += u[a * r + k] * d[k * i + b] * m.alpha / r;
  return out;
}

describe('command claims', () => {
  before(() => { E.initCpuBackend(); });

  it('sdlora smoke runs a forward/backward and its gradient matches the finite difference', () => {
    const r = run(['smoke']);
    assert.equal(r.status, 0, r.stderr);
    const m = /autograd (\S+), finite difference (\S+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const [g, fd] = [Number(m[1]), Number(m[2])];
    assert.ok(Number.isFinite(g) && g !== 0, `a real gradient: ${m[1]}`);
    assert.ok(Math.abs(g - fd) <= 1e-2 * Math.abs(fd) + 1e-5, `${g} vs ${fd}`);
    assert.match(r.stdout, /^loss \d+\.\d+$/m);
  });

  it('the progress bar shows the rate (it/s, or s/it below one a second), elapsed time and ETA', () => {
    const lines: string[] = [];
    const write = process.stderr.write, tty = process.stderr.isTTY;
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    process.stderr.write = ((s: string) => { lines.push(String(s)); return true; }) as typeof process.stderr.write;
    try {
      // Begun 10 s ago: 20 of 100 steps is 2 steps/s, 80 left is 40 s.
      const fast = new ProgressBar('train', 100, 'step', performance.now() - 10_000);
      fast.update(20, 'loss 0.1');
      // 100 s for 4 steps: 25 s a step; 16 left is 400 s = 6:40.
      const slow = new ProgressBar('train', 20, 'step', performance.now() - 100_000);
      slow.update(4);
      // Off a terminal it prints at every tenth: 21..29 of 100 print nothing more.
      for (let i = 21; i < 30; i++) fast.update(i);
      fast.update(100);
    } finally {
      process.stderr.write = write;
      Object.defineProperty(process.stderr, 'isTTY', { value: tty, configurable: true });
    }
    assert.equal(lines.length, 3, lines.join(''));
    assert.equal(lines[0], `train [${'#'.repeat(5)}${'.'.repeat(19)}] 20/100 2.00 step/s elapsed 0:10 eta 0:40 loss 0.1\n`);
    assert.equal(lines[1], `train [${'#'.repeat(5)}${'.'.repeat(19)}] 4/20 25.00 s/step elapsed 1:40 eta 6:40\n`);
    assert.match(lines[2], /^train \[#{24}\] 100\/100 \d+\.\d\d step\/s elapsed 0:1\d eta 0:00\n$/);
  });

  it('train prints its progress bar with the rate and ETA; lora list shows the run\'s base model, resolution and top tags', async () => {
    writeShapeDataset(path.join(tmp, 'data'), { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 3 });
    const r = run(['train', '--pretrained_model_name_or_path', TINY_MODEL_DIR, '--train_data_dir', 'data', '--resolution', '32', '--caption_extension', '.txt',
      '--max_train_steps', '2', '--network_dim', '2', '--output_dir', 'lib/run', '--output_name', 'sks', '--learning_rate', '1e-3', '--seed', '1']);
    assert.equal(r.status, 0, r.stderr);
    // The last step of the run: 24 #, 2/2, a rate in step/s or s/step, elapsed and eta 0:00, then the losses.
    assert.match(r.stderr, /^train \[#{24}\] 2\/2 \d+\.\d\d (step\/s|s\/step) elapsed \d+:\d\d eta 0:00 epoch 1\/\d+ loss \d/m);

    // A second file with known metadata: tags summed over the folders, the most frequent first.
    const a = await loadSafetensors(path.join(tmp, 'lib/run/sks.safetensors'));
    await saveSafetensors(path.join(tmp, 'lib/made.safetensors'), Object.entries(a.tensors), {
      ss_sd_model_name: 'my-base-v1.safetensors', ss_resolution: '(768, 640)',
      ss_tag_frequency: JSON.stringify({ '1_a': { red: 3, star: 5 }, '2_b': { red: 4, blue: 1 } }),
    });
    const list = await loraCommand(['list', path.join(tmp, 'lib')]);
    const block = (name: string) => list.out.split(/\n(?=\S)/).find((b) => b.startsWith(name)) ?? '';
    assert.match(block('made'), /base: my-base-v1\.safetensors {2}resolution: \(768, 640\)/);
    assert.match(block('made'), /\n {4}tags: red\(7\) star\(5\) blue\(1\)/);
    // The trained file: what training wrote (sd-scripts' ss_* keys) is what the list shows.
    const md = a.metadata, freq = JSON.parse(md.ss_tag_frequency) as Record<string, Record<string, number>>;
    const top = Object.entries(Object.values(freq)[0]).sort((x, y) => y[1] - x[1])[0];
    assert.match(block(path.join('run', 'sks')), new RegExp(`base: ${md.ss_sd_model_name.replace(/[.]/g, '\\.')} {2}resolution: ${md.ss_resolution.replace(/[()]/g, '\\$&')}`));
    assert.match(block(path.join('run', 'sks')), /\n {4}tags: \S/);
    assert.ok(block(path.join('run', 'sks')).includes(`${top[0]}(${top[1]})`), list.out);
    const json = JSON.parse((await loraCommand(['list', path.join(tmp, 'lib'), '--json'])).out) as { loras: { name: string; base: string; resolution: string; tags: string }[] };
    const made = json.loras.find((l) => l.name === 'made')!;
    assert.deepEqual([made.base, made.resolution, made.tags], ['my-base-v1.safetensors', '(768, 640)', 'red(7) star(5) blue(1)']);
  });

  it('txt2img --vae decodes with the file given and names it; --embeddings-dir finds embeddings in nested folders by file stem', async () => {
    const vaeFile = path.join(tmp, 'bright-vae.safetensors');
    const v = await loadSafetensors(path.join(TINY_MODEL_DIR, 'vae', 'diffusion_pytorch_model.safetensors'));
    const bias = v.tensors['decoder.conv_out.bias'];
    assert.ok(bias, 'the tiny VAE has decoder.conv_out.bias');
    v.tensors['decoder.conv_out.bias'] = E.tensor(Float32Array.from(bias.dataSync(), (x) => x + 0.5), bias.shape);
    await saveSafetensors(vaeFile, v.tensors);
    const width = (JSON.parse(readFileSync(path.join(TINY_MODEL_DIR, 'text_encoder', 'config.json'), 'utf8')) as { hidden_size: number }).hidden_size;
    const embDir = path.join(tmp, 'emb'), embFile = path.join(embDir, 'styles', 'deep', 'zq.safetensors');
    mkdirSync(path.dirname(embFile), { recursive: true });
    await saveSafetensors(embFile, [['emb_params', randn([2, width])]]);
    const hash = createHash('sha256').update(readFileSync(embFile)).digest('hex').slice(0, 12);
    const gen = (out: string, extra: string[]) => {
      const r = run(['txt2img', '--model', 'tiny', '-p', 'a zq star', '--width', '32', '--height', '32', '--steps', '1', '--seed', '3', '-o', out, ...extra]);
      assert.equal(r.status, 0, r.stderr);
      return decodePng(readFileSync(path.join(tmp, out)));
    };
    const own = gen('own.png', ['--embeddings-dir', 'emb']);
    const ext = gen('ext.png', ['--embeddings-dir', 'emb', '--vae', vaeFile]);
    assert.match(own.text.parameters, new RegExp(`TI hashes: "zq: ${hash}"`));
    assert.doesNotMatch(own.text.parameters, /VAE:/);
    assert.match(ext.text.parameters, /, VAE: bright-vae\.safetensors(,|$)/);
    const mean = (p: { rgb?: Uint8Array }) => p.rgb!.reduce((s, x) => s + x, 0) / p.rgb!.length;
    assert.ok(mean(ext) > mean(own) + 5, `the external VAE (conv_out bias + 0.5) decoded the image: mean ${mean(ext)} vs ${mean(own)}`);
  });

  it('embeddings list --json lists the usable embeddings and the files it cannot use, with the reason', async () => {
    const dir = path.join(tmp, 'emb-list');
    mkdirSync(path.join(dir, 'a'), { recursive: true }); mkdirSync(path.join(dir, 'b'), { recursive: true });
    await saveSafetensors(path.join(dir, 'a', 'zq.safetensors'), [['emb_params', randn([3, 32])]]);
    await saveSafetensors(path.join(dir, 'b', 'zq.safetensors'), [['emb_params', randn([1, 32])]]);
    writeFileSync(path.join(dir, 'b', 'old.pt'), 'not unpickled');
    writeFileSync(path.join(dir, 'b', 'old2.bin'), 'not unpickled');
    const r = run(['embeddings', 'list', dir, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { embeddings: { name: string; path: string; hash: string; shapes: Record<string, number[]> }[]; skipped: { path: string; reason: string }[] };
    assert.deepEqual(j.embeddings.map((e) => [e.name, e.path, e.shapes]), [['zq', path.join(dir, 'a', 'zq.safetensors'), { emb_params: [3, 32] }]]);
    assert.equal(j.embeddings[0].hash, createHash('sha256').update(readFileSync(path.join(dir, 'a', 'zq.safetensors'))).digest('hex').slice(0, 12));
    const reason = (f: string) => j.skipped.find((s) => s.path === path.join(dir, 'b', f))?.reason ?? '';
    assert.match(reason('zq.safetensors'), /another embedding has the name "zq"/);
    assert.match(reason('old.pt'), /pickle/);
    assert.match(reason('old2.bin'), /pickle/);
    // Without --json the same reasons go to stderr.
    const plain = run(['embeddings', 'list', dir]);
    assert.match(plain.stderr, /skipped .*old\.pt: pickle/);
    assert.match(plain.stdout, /^zq\t3 vectors\t/m);
  });

  it('lora merge-loras --no-clamp gives the exact weighted sum when the rank allows it; without it the factors are clamped', async () => {
    const names = ['lora_unet_down_blocks_0_attentions_0_proj_in', 'lora_te_text_model_encoder_layers_0_mlp_fc1'];
    const make = async (file: string) => {
      const t: [string, Tensor][] = names.flatMap((n): [string, Tensor][] => [[`${n}.lora_down.weight`, randn([1, 12])], [`${n}.lora_up.weight`, randn([10, 1])], [`${n}.alpha`, E.tensor([0.5], [])]]);
      await saveSafetensors(path.join(tmp, file), t);
      return loadLoRA(path.join(tmp, file));
    };
    const [a, b] = [await make('ma.safetensors'), await make('mb.safetensors')];
    const exact = await loraCommand(['merge-loras', '--lora', path.join(tmp, 'ma.safetensors:0.7'), path.join(tmp, 'mb.safetensors:0.3'), '--rank', '2', '--no-clamp', '--out', path.join(tmp, 'm-exact.safetensors')]);
    assert.match(exact.out, /unclamped/);
    await loraCommand(['merge-loras', '--lora', path.join(tmp, 'ma.safetensors:0.7'), path.join(tmp, 'mb.safetensors:0.3'), '--rank', '2', '--out', path.join(tmp, 'm-clamped.safetensors')]);
    const got = await loadLoRA(path.join(tmp, 'm-exact.safetensors')), clamped = await loadLoRA(path.join(tmp, 'm-clamped.safetensors'));
    for (const n of names) {
      const da = delta(a.modules.get(n)!), db = delta(b.modules.get(n)!), want = da.map((x, i) => 0.7 * x + 0.3 * db[i]);
      assert.ok(maxAbsDiff(delta(got.modules.get(n)!), want) < 1e-5, `${n}: --no-clamp is the exact sum`);
      assert.ok(maxAbsDiff(delta(clamped.modules.get(n)!), want) > 1e-4, `${n}: the default clamps`);
    }
  });

  it('lora extract defaults: --dim 4, no 3x3 conv modules unless --conv-dim, --clamp-quantile 0.99, --min-diff 0.01', async () => {
    const tuned = path.join(tmp, 'tuned');
    cpSync(TINY_MODEL_DIR, tuned, { recursive: true });
    const bump = async (file: string, f: (k: string, x: Float32Array) => Float32Array) => {
      const { tensors, metadata } = await loadSafetensors(file);
      for (const [k, t] of Object.entries(tensors)) if (t.rank >= 2) tensors[k] = E.tensor(f(k, Float32Array.from(t.dataSync())), t.shape);
      await saveSafetensors(file, tensors, metadata);
    };
    // The UNet moves by a full-rank change; the text encoder by at most 0.005 (under the default min-diff).
    await bump(path.join(tuned, 'unet', 'diffusion_pytorch_model.safetensors'), (_, x) => { const n = randn([x.length], 0.02).dataSync(); return x.map((v, i) => v + n[i]); });
    await bump(path.join(tuned, 'text_encoder', 'model.safetensors'), (_, x) => x.map((v, i) => v + 0.005 * Math.sin(i)));
    const extract = async (out: string, flags: string[]) => {
      await loraCommand(['extract', '--base', TINY_MODEL_DIR, '--tuned', tuned, ...flags, '--out', path.join(tmp, out)]);
      return loadSafetensors(path.join(tmp, out));
    };
    const def = await extract('x-default.safetensors', []);
    const explicit = await extract('x-explicit.safetensors', ['--dim', '4', '--clamp-quantile', '0.99', '--min-diff', '0.01']);
    assert.equal(def.metadata.ss_network_dim, '4');
    assert.deepEqual(Object.keys(def.tensors).sort(), Object.keys(explicit.tensors).sort());
    for (const [k, t] of Object.entries(def.tensors)) assert.deepEqual([...t.dataSync()], [...explicit.tensors[k].dataSync()], k);
    const downs = Object.entries(def.tensors).filter(([k]) => k.endsWith('.lora_down.weight'));
    assert.ok(downs.length > 0);
    assert.ok(downs.every(([, t]) => t.shape[0] <= 4), 'rank 4 at most');
    assert.ok(downs.some(([, t]) => t.shape[0] === 4), 'rank 4 where the layer allows it');
    assert.ok(downs.every(([k, t]) => k.startsWith('lora_unet_') && !(t.rank === 4 && t.shape[2] === 3)), 'no text encoder (below min-diff), no 3x3 convs (conv-dim off)');
    // Each default is in use: another value of each gives another file.
    for (const flags of [['--dim', '3'], ['--clamp-quantile', '1'], ['--min-diff', '0.001'], ['--conv-dim', '8']]) {
      const other = await extract(`x-${flags[0].slice(2)}.safetensors`, flags);
      const same = Object.keys(other.tensors).length === Object.keys(def.tensors).length
        && Object.entries(def.tensors).every(([k, t]) => other.tensors[k] && maxAbsDiff(t.dataSync(), other.tensors[k].dataSync()) === 0);
      assert.ok(!same, `${flags.join(' ')} changes the result`);
    }
  });

  it('txt2img sizes default to the family\'s: 512 on SD 1.x, 1024 on SDXL', async () => {
    assert.equal(SD1.defaults('epsilon').resolution, 512);
    assert.equal(SDXL.defaults('epsilon').resolution, 1024);
    const r = run(['txt2img', '--model', 'tiny', '-p', 'a star', '--width', '32', '--steps', '1', '--seed', '1', '-o', 'tall.png']);
    assert.equal(r.status, 0, r.stderr);
    const png = decodePng(readFileSync(path.join(tmp, 'tall.png')));
    assert.deepEqual([png.width, png.height], [32, 512]);
    assert.match(png.text.parameters, /Size: 32x512/);
    // SDXL: the size is checked before any sampling, so a bad height shows the width it defaulted to.
    const xl = run(['txt2img', '--model', await tinySdxlFolder(), '-p', 'a star', '--height', '31', '--steps', '1', '--seed', '1', '-o', 'xl.png']);
    assert.notEqual(xl.status, 0);
    assert.match(xl.stderr, /got 1024x31/);
    const sd = run(['txt2img', '--model', 'tiny', '-p', 'a star', '--width', '31', '--steps', '1', '-o', 'bad.png']);
    assert.match(sd.stderr, /got 31x512/);
    // Training samples default to 512x512 for every family, as sd-scripts' sample prompts do.
    assert.deepEqual([parsePromptLine('a star').width, parsePromptLine('a star').height], [512, 512]);
    assert.deepEqual([parsePromptLine('a star --w 1024 --h 768').width, parsePromptLine('a star --w 1024 --h 768').height], [1024, 768]);
  });

  it('doctor reports the kernels and the threads they run on: SDLORA_THREADS sets them (default all cores), SDLORA_WASM=0 runs plain JS', () => {
    const doctor = (env: Record<string, string | undefined>) => {
      const r = run(['doctor', '--json'], env);
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as { cpu: { threads: number; cores: number; kernels: string } }).cpu;
    };
    const all = doctor({ SDLORA_THREADS: undefined, SDLORA_WASM: undefined });
    assert.equal(all.threads, os.availableParallelism());
    assert.match(all.kernels, /WebAssembly SIMD GEMM/);
    assert.equal(doctor({ SDLORA_THREADS: '1', SDLORA_WASM: undefined }).threads, 1);
    assert.equal(doctor({ SDLORA_THREADS: '3', SDLORA_WASM: undefined }).threads, 3);
    const js = doctor({ SDLORA_THREADS: '3', SDLORA_WASM: '0' });
    assert.equal(js.threads, 1);
    assert.match(js.kernels, /^plain JS \(SDLORA_WASM=0\)$/);
    const text = run(['doctor'], { SDLORA_THREADS: '1', SDLORA_WASM: undefined });
    assert.match(text.stdout, /kernels: WebAssembly SIMD GEMM \((relaxed-simd|simd128)\) \+ softmax on 1 thread \(SDLORA_THREADS\)/);
    // A value that is not a thread count is named, not replaced by every core: doctor reports it,
    // a command that computes stops on it.
    for (const bad of ['abc', '0', '1.5']) {
      const msg = new RegExp(`SDLORA_THREADS=${bad.replace('.', '\\.')}: expected a positive whole number`);
      assert.match(run(['doctor'], { SDLORA_THREADS: bad, SDLORA_WASM: undefined }).stdout, msg);
      const smoke = run(['smoke'], { SDLORA_THREADS: bad, SDLORA_WASM: undefined });
      assert.notEqual(smoke.status, 0, `smoke ran with SDLORA_THREADS=${bad}`);
      assert.match(smoke.stderr, msg);
    }
  });

  it('web listens on 127.0.0.1:8788 unless told otherwise', async () => {
    const help = run(['web', '--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--port <n>.*\(default: 8788\)/);
    assert.match(help.stdout, /--host <addr>.*\(default: "127\.0\.0\.1"\)/);
    // Started without --host (and on a free port, as 8788 may be taken here): it serves on 127.0.0.1.
    const web = spawnCli(['web', '--port', '0']);
    try {
      const end = Date.now() + 60_000;
      while (!/open http:\/\/[^ ]+/.test(web.stdout()) && Date.now() < end && web.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      const url = /open (http:\/\/[^ ]+)/.exec(web.stdout())?.[1];
      assert.ok(url, `no URL printed:\n${web.stdout()}\n${web.stderr()}`);
      assert.equal(new URL(url).hostname, '127.0.0.1');
      assert.equal((await fetch(url)).status, 200);
    } finally {
      web.child.kill('SIGTERM');
      await web.exit(10_000).catch(() => web.child.kill('SIGKILL'));
    }
  });

  it('SDLORA_DEBUG=1 adds the stack trace to an error; without it the error is one line', () => {
    const missing = path.join(tmp, 'missing.safetensors');
    const plain = run(['inspect', missing], { SDLORA_DEBUG: undefined });
    assert.equal(plain.status, 1);
    assert.match(plain.stderr, /^sdlora: .*missing\.safetensors/);
    assert.doesNotMatch(plain.stderr, STACK);
    const debug = run(['inspect', missing], { SDLORA_DEBUG: '1' });
    assert.equal(debug.status, 1);
    assert.match(debug.stderr, /^sdlora: .*missing\.safetensors/);
    assert.match(debug.stderr, STACK);
  });
});
