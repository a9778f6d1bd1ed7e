// The LoRA formats table's refusals and training column, through the commands themselves:
// `lora resize` and `lora merge-loras` refuse LoCon with a Tucker lora_mid, full diffs, IA3, GLoRA
// and OFT/BOFT files with a message naming the format (never dropping their modules); training
// refuses LyCORIS algo=full by name; a PEFT file given as network_weights is not a no-op: training
// continues from its weights (and saves them under kohya's names).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { registerLoRACommands } from '../../src/cli/lora-commands.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { TINY_MODEL_DIR } from '../../src/models/hub.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-refusals-'));
const cli = path.resolve('bin/sdlora.js');
const rng = new E.Rng(21);
const randn = (shape: number[], s = 0.3) => E.mulScalar(E.randn(shape, rng), s);

async function loraCommand(args: string[]): Promise<void> {
  const program = new Command().exitOverride();
  registerLoRACommands(program);
  const log = console.log, write = process.stderr.write;
  console.log = () => {};
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try { await program.parseAsync(['lora', ...args], { from: 'user' }); } finally { console.log = log; process.stderr.write = write; }
}

describe('LoRA formats: refusals and training', () => {
  before(() => {
    E.initCpuBackend();
    writeShapeDataset(path.join(tmp, 'data'), { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 3 });
  });

  // A plain LoRA module next to the module of the format, so that a tool dropping what it does not
  // understand would have something left to write.
  const conv = 'lora_unet_down_blocks_0_resnets_0_conv1', linear = 'lora_unet_down_blocks_0_attentions_0_proj_in';
  const plain: () => [string, Tensor][] = () => [[`${linear}.lora_down.weight`, randn([2, 8])], [`${linear}.lora_up.weight`, randn([8, 2])], [`${linear}.alpha`, E.tensor([1], [])]];
  const FORMATS: [string, RegExp, () => [string, Tensor][]][] = [
    ['locon-mid', /LoCon Tucker \(lora_mid\)/, () => [[`${conv}.lora_down.weight`, randn([2, 8, 1, 1])], [`${conv}.lora_mid.weight`, randn([2, 2, 3, 3])], [`${conv}.lora_up.weight`, randn([8, 2, 1, 1])], [`${conv}.alpha`, E.tensor([1], [])]]],
    ['full', /full/, () => [[`${conv}.diff`, randn([8, 8, 3, 3])], [`${conv}.diff_b`, randn([8])]]],
    ['ia3', /IA3/, () => [[`${conv}.weight`, randn([8])], [`${conv}.on_input`, E.tensor([0], [])]]],
    ['glora', /GLoRA/, () => [[`${conv}.a1.weight`, randn([2, 8])], [`${conv}.a2.weight`, randn([8, 2])], [`${conv}.b1.weight`, randn([2, 8])], [`${conv}.b2.weight`, randn([8, 2])]]],
    ['oft', /OFT/, () => [[`${conv}.oft_blocks`, randn([4, 2, 2])]]],
    ['boft', /OFT/, () => [[`${conv}.oft_blocks`, randn([2, 4, 2, 2])], [`${conv}.rescale`, randn([8, 1])]]],
  ];
  for (const [fmt, named, parts] of FORMATS) {
    it(`lora resize and merge-loras refuse ${fmt} files, naming the format`, async () => {
      const file = path.join(tmp, `${fmt}.safetensors`);
      await saveSafetensors(file, [...plain(), ...parts()]);
      const ok = path.join(tmp, 'plain.safetensors');
      await saveSafetensors(ok, plain());
      const refused = (tool: string) => (e: Error) => named.test(e.message) && e.message.includes(file) && e.message.includes(`${tool} works on LoRA/LoCon factors`);
      const out = path.join(tmp, `${fmt}-out.safetensors`);
      await assert.rejects(loraCommand(['resize', file, '--rank', '1', '--out', out]), refused('resize'));
      await assert.rejects(loraCommand(['merge-loras', '--lora', `${ok}:0.5`, `${file}:0.5`, '--out', out]), refused('merge-loras'));
      assert.ok(!existsSync(out), 'nothing written');
    });
  }

  it('training refuses LyCORIS algo=full by name', () => {
    const r = spawnSync(process.execPath, [cli, 'train', '--pretrained_model_name_or_path', TINY_MODEL_DIR, '--train_data_dir', 'data', '--resolution', '32',
      '--caption_extension', '.txt', '--max_train_steps', '1', '--output_dir', 'full-out', '--network_module', 'lycoris.kohya', '--network_args', 'algo=full'], { cwd: tmp, encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /algo=full is not implemented in sdlora's lycoris\.kohya \(it trains [a-z, ]+\)/);
    assert.ok(!existsSync(path.join(tmp, 'full-out')), 'refused before anything is written');
  });

  it('a PEFT file as network_weights is trained on from its weights, saved with kohya names; a LoHa file for networks.lora is refused', async () => {
    const peftFile = requireFile(goldenCase('lycoris'), 'peft.safetensors');
    const peft = await loadLoRA(peftFile);
    assert.deepEqual(peft.algorithms, ['peft']);
    const model = await tinyModelFolder();
    const r = spawnSync(process.execPath, [cli, 'train', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data', '--resolution', '32', '--caption_extension', '.txt',
      '--max_train_steps', '1', '--learning_rate', '1e-12', '--output_dir', 'peft-out', '--output_name', 'cont', '--network_weights', peftFile], { cwd: tmp, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = await loadLoRA(path.join(tmp, 'peft-out', 'cont.safetensors'));
    assert.deepEqual(got.algorithms.filter((a) => a !== 'lora' && a !== 'locon'), [], 'saved as kohya LoRA');
    assert.ok(peft.modules.size > 0);
    assert.match(r.stderr, new RegExp(`LoRA: ${peft.modules.size} modules \\(\\d+ text encoder\\), ranks and alphas of .*peft\\.safetensors`), 'the log says the file\'s ranks are used, not network_dim');
    assert.deepEqual([...got.modules.keys()].sort(), [...peft.modules.keys()].sort(), 'every module of the PEFT file, under its kohya name');
    // One step at a learning rate of 1e-12 leaves the factors where the file had them.
    for (const [name, m] of peft.modules) {
      const g = got.modules.get(name)!;
      assert.equal(g.alpha, m.alpha, name);
      assert.ok(maxAbsDiff(g.down.dataSync(), m.down.dataSync()) < 1e-5 && maxAbsDiff(g.up.dataSync(), m.up.dataSync()) < 1e-5, name);
    }
    // networks.lora with a LoHa file would continue none of its modules: refused, pointing at lycoris.kohya.
    const lohaFile = requireFile(goldenCase('lycoris'), 'loha.safetensors');
    const loha = spawnSync(process.execPath, [cli, 'train', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data', '--resolution', '32', '--caption_extension', '.txt',
      '--max_train_steps', '1', '--output_dir', 'loha-out', '--network_weights', lohaFile], { cwd: tmp, encoding: 'utf8' });
    assert.notEqual(loha.status, 0);
    assert.match(loha.stderr, /network_weights .*loha\.safetensors: networks\.lora continues plain LoRA \/ LoCon \/ PEFT files, and this one holds loha modules .*lycoris\.kohya/);
  });
});
