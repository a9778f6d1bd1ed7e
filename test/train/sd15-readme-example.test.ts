// The README's SD 1.5 `train` example trains: the command line of README.md's Set-up section, read
// from the README itself (so the test breaks when the example does), run through the real CLI
// (`node bin/sdlora.js train ...`) with only the model, data and output paths swapped for the
// bundled tiny model and a tiny dataset, and the run cut to one step at 32 px (flags appended, the
// later value of a flag winning). The LoRA it writes must record the example's options.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors } from '../../src/io/safetensors.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TINY = path.join(ROOT, 'assets', 'tiny-sd');

/** The `node bin/sdlora.js train ...` command of README.md's Set-up section whose model is a single SD 1.5 file, as argv after `train`. */
export function readmeSd15TrainArgs(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('## Set-up');
  assert.ok(at >= 0, 'README.md has a Set-up section');
  const section = readme.slice(at, readme.indexOf('\n## ', at + 1));
  // Join the shell's continued lines, then take the train command on an SD 1.5 checkpoint.
  const lines = section.replace(/\\\n\s*/g, ' ').split('\n');
  const line = lines.find((l) => /^node bin\/sdlora\.js train .*--pretrained_model_name_or_path \S*sd15\S*\.safetensors/.test(l));
  assert.ok(line, 'a `node bin/sdlora.js train` line on an SD 1.5 .safetensors file');
  const words = line.replace(/#.*$/, '').trim().split(/\s+/);
  assert.deepEqual(words.slice(0, 3), ['node', 'bin/sdlora.js', 'train']);
  return words.slice(3);
}

/** The value following `flag` in argv (the last one when repeated). */
const valueOf = (args: string[], flag: string): string | undefined => {
  const i = args.lastIndexOf(flag);
  return i >= 0 && i + 1 < args.length && !args[i + 1].startsWith('--') ? args[i + 1] : undefined;
};

describe('README SD 1.5 train example', () => {
  it('the README SD 1.5 command line trains through the CLI and its LoRA records the example\'s options', async () => {
    const args = readmeSd15TrainArgs();
    // What the example sets (the claim): rank 32, fp16, gradient checkpointing, 1500 steps.
    assert.equal(valueOf(args, '--network_dim'), '32');
    assert.equal(valueOf(args, '--mixed_precision'), 'fp16');
    assert.ok(args.includes('--gradient_checkpointing'));
    assert.equal(valueOf(args, '--max_train_steps'), '1500');
    assert.match(valueOf(args, '--pretrained_model_name_or_path')!, /\.safetensors$/, 'a single-file model');

    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-sd15-readme-'));
    const data = path.join(tmp, 'dataset', 'train');
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 5 });
    const out = path.join(tmp, 'out');
    // Swap only the paths; every other word is the README's.
    const swaps: Record<string, string> = { '--pretrained_model_name_or_path': TINY, '--train_data_dir': data, '--output_dir': out };
    const swapped = args.map((a, i) => (i > 0 && swaps[args[i - 1]] !== undefined ? swaps[args[i - 1]] : a));
    for (const flag of Object.keys(swaps)) assert.equal(valueOf(swapped, flag), swaps[flag], `${flag} swapped`);
    assert.equal(swapped.filter((a, i) => a !== args[i]).length, 3, 'three words changed');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/sdlora.js'), 'train', ...swapped, '--max_train_steps', '1', '--resolution', '32', '--seed', '3'],
      { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}`);

    const name = valueOf(args, '--output_name')!;
    const file = path.join(out, `${name}.safetensors`);
    assert.ok(existsSync(file), `${file} written`);
    const { tensors, metadata: md } = await loadSafetensors(file);
    assert.equal(md.ss_output_name, name);
    assert.equal(md.ss_network_dim, valueOf(args, '--network_dim'));
    assert.equal(md.ss_mixed_precision, valueOf(args, '--mixed_precision'));
    assert.equal(md.ss_gradient_checkpointing, 'True');
    assert.equal(md.ss_max_train_steps, '1', 'cut to one step');
    assert.equal(md.ss_steps, '1');
    assert.equal(md.ss_base_model_version, 'sd_v1');
    // Rank 32 modules on the UNet and the text encoder (not network_train_unet_only).
    const downs = Object.entries(tensors).filter(([k]) => k.endsWith('.lora_down.weight'));
    assert.ok(downs.length > 0 && downs.every(([, t]) => t.shape[0] === Number(valueOf(args, '--network_dim'))), 'every lora_down has network_dim rows');
    assert.ok(downs.some(([k]) => k.startsWith('lora_unet_')) && downs.some(([k]) => k.startsWith('lora_te_')), 'UNet and text-encoder modules');
  });
});
