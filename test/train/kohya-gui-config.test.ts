// kohya_ss GUI presets (LoRA, Kohya LoCon, LyCORIS LoCon/LoHa/LoKr, modelled on bmaltais/kohya_ss
// presets/lora/*.json) read as sdlora options: GUI keys mapped as lora_gui.py maps them, GUI-only
// keys named as having no effect, none refused as unknown.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configFromArgs } from '../../src/cli/train-command.js';
import { ConfigError, configMessages, readConfigLayer } from '../../src/train/config.js';
import { NETWORK_MODULES } from '../../src/train/network-args.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'kohya-gui');
const preset = (name: string) => path.join(dir, `${name}.json`);
const REQUIRED = ['--pretrained_model_name_or_path', 'tiny', '--train_data_dir', 'd'];
const load = (name: string) => configFromArgs(['--config', preset(name), ...REQUIRED]);
const refusal = (name: string): ConfigError => {
  try { load(name); } catch (e) { assert.ok(e instanceof ConfigError, String(e)); return e; }
  return assert.fail('should throw');
};

describe('kohya_ss GUI presets', () => {
  it('reads a Standard LoRA preset: epoch, max_resolution, optimizer, lr_warmup %, GUI strings and zeros', () => {
    const c = load('lora-standard');
    assert.equal(c.network_module, 'networks.lora');
    assert.deepEqual(c.network_args, []);
    assert.equal(c.max_train_epochs, 8);
    assert.deepEqual(c.resolution, [512, 640]);
    assert.equal(c.optimizer_type, 'AdamW8bit');
    assert.deepEqual(c.optimizer_args, ['weight_decay=0.05', 'betas=0.9,0.99']);
    assert.equal(c.lr_warmup_steps, 0.1);
    assert.equal(c.learning_rate, 1e-4);
    assert.equal(c.unet_lr, 1e-4);
    assert.equal(c.text_encoder_lr, 5e-5);
    assert.equal(c.seed, 31337);
    assert.equal(c.keep_tokens, 1);
    assert.equal(c.noise_offset, 0.05);
    assert.equal(c.multires_noise_iterations, undefined, 'noise_offset_type Original: multires keys are not passed');
    assert.equal(c.save_every_n_steps, undefined, '0 means unset');
    assert.equal(c.scale_weight_norms, undefined);
    const msgs = configMessages(c);
    assert.ok(!msgs.some((m) => m.includes('unknown option')), msgs.join('\n'));
    assert.ok(msgs.some((m) => /kohya_ss GUI settings with no effect in sdlora: .*model_list.*num_cpu_threads_per_process/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => /LoRA_type "Standard".*: conv_dim, conv_alpha, multires_noise_iterations$/.test(m)), msgs.join('\n'));
  });

  it('reads a Kohya LoCon preset: conv_dim/conv_alpha and dropouts as network_args, additional_parameters, TE lr 0', () => {
    const c = load('locon-kohya');
    assert.equal(c.network_module, 'networks.lora');
    assert.deepEqual(c.network_args, ['conv_dim=8', 'conv_alpha=4', 'rank_dropout=0.1']);
    assert.equal(c.network_train_unet_only, true, 'text_encoder_lr 0 trains the UNet only, as the GUI decides');
    assert.equal(c.max_grad_norm, 0.5, 'from additional_parameters');
    assert.ok(!configMessages(c).some((m) => m.includes('unknown option')));
  });

  for (const [name, algo] of [['locon-lycoris', 'locon'], ['loha-lycoris', 'loha'], ['lokr-lycoris', 'lokr']]) {
    it(`maps a LyCORIS ${algo} preset to lycoris.kohya with its network_args, which sdlora trains`, () => {
      const { values } = readConfigLayer(preset(name));
      assert.equal(values.network_module, 'lycoris.kohya');
      const args = values.network_args as string[];
      assert.ok(args.includes(`algo=${algo}`) && args.includes('preset=full'), args.join(' '));
      assert.ok(args.some((a) => a.startsWith('conv_dim=')));
      if (algo === 'lokr') {
        assert.ok(args.includes('factor=8'));
        assert.equal(values.optimizer_type, 'Prodigy');
        assert.equal(values.lr_scheduler_type, 'CosineAnnealingLR', 'from additional_parameters');
      }
      if (algo === 'locon') assert.equal(values.multires_noise_iterations, 6, 'noise_offset_type Multires');
      // Every key is understood and the network arguments are ones sdlora trains with.
      assert.ok(NETWORK_MODULES['lycoris.kohya'].implemented);
      assert.ok(!configMessages(load(name)).some((m) => m.includes('unknown option')));
    });
  }

  it('still suggests a fix for a misspelt key in a GUI preset, and refuses an unknown LoRA_type', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-gui-'));
    const raw = JSON.parse(readFileSync(preset('lora-standard'), 'utf8'));
    const f = path.join(tmp, 'typo.json');
    writeFileSync(f, JSON.stringify({ ...raw, learning_rte: '1e-4' }));
    const msgs = configMessages(configFromArgs(['--config', f, ...REQUIRED]));
    assert.ok(msgs.some((m) => /unknown option "learning_rte" \(did you mean "learning_rate"\?\)/.test(m)), msgs.join('\n'));
    // the GUI keeps the prompts' text itself in sample_prompts; sdlora reads prompts from a file
    writeFileSync(f, JSON.stringify({ ...raw, sample_prompts: 'zkz, a red cross --w 512 --h 512 --d 42', sample_every_n_steps: 100 }));
    const sp = configFromArgs(['--config', f, ...REQUIRED]);
    assert.equal(readFileSync(String(sp.sample_prompts), 'utf8'), 'zkz, a red cross --w 512 --h 512 --d 42\n');
    assert.equal(sp.sample_every_n_steps, 100);
    writeFileSync(f, JSON.stringify({ ...raw, LoRA_type: 'Magic' }));
    assert.throws(() => configFromArgs(['--config', f, ...REQUIRED]), /"LoRA_type" "Magic" is not a kohya_ss LoRA type/);
  });
});
