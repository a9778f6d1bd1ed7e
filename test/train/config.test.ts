// Training configuration: the seed JSON verbatim, TOML files, CLI flags, and clear errors.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configFromArgs } from '../../src/cli/train-command.js';
import { ConfigError, optionsMarkdown, resolveConfig } from '../../src/train/config.js';
import { OPTIONS } from '../../src/train/config-schema.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-cfg-'));
const SEED = {
  pretrained_model_name_or_path: 'runwayml/stable-diffusion-v1-5', train_data_dir: './dataset/train',
  output_dir: './output', resolution: 768, train_batch_size: 2, max_train_steps: 2000,
  learning_rate: 1e-4, mixed_precision: 'fp16', gradient_checkpointing: true, enable_bucket: true,
  network_module: 'networks.lora', network_dim: 64, network_alpha: 64,
};

describe('training config', () => {
  it('accepts the seed config.json verbatim and fills sd-scripts defaults', () => {
    const f = path.join(tmp, 'seed.json');
    writeFileSync(f, JSON.stringify(SEED));
    const c = configFromArgs(['--config', f]);
    assert.deepEqual(c.resolution, [768, 768]);
    assert.equal(c.network_dim, 64);
    assert.equal(c.mixed_precision, 'fp16');
    assert.equal(c.caption_extension, '.caption');
    assert.equal(c.lr_scheduler, 'constant');
    assert.equal(c.max_grad_norm, 1);
    assert.equal(c.optimizer_type, 'AdamW');
  });

  it('reads TOML (sections flattened) and lets flags override the file', () => {
    const f = path.join(tmp, 'c.toml');
    writeFileSync(f, '[model]\npretrained_model_name_or_path = "tiny"\n[data]\ntrain_data_dir = "d"\nresolution = "512,768"\n[optim]\nlearning_rate = 1e-4\nnetwork_args = ["conv_dim=4", "conv_alpha=1"]\n');
    const c = configFromArgs(['--config', f, '--learning-rate', '5e-5', '--flip_aug', '--network_dim=8']);
    assert.deepEqual(c.resolution, [512, 768]);
    assert.equal(c.learning_rate, 5e-5);
    assert.equal(c.flip_aug, true);
    assert.equal(c.network_dim, 8);
    assert.deepEqual(c.network_args, ['conv_dim=4', 'conv_alpha=1']);
  });

  it('reports every problem: unknown keys with a suggestion, types, ranges and conflicts', () => {
    const bad = { ...SEED, learning_rat: 1, train_batch_size: 'two', network_dim: 0, resolution: 500, optimizer_type: 'Adam', cache_latents: true, color_aug: true, network_train_unet_only: true, network_train_text_encoder_only: true };
    try {
      resolveConfig([{ source: 'my.json', values: bad }]);
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      const m = e.message;
      assert.match(m, /my\.json: unknown option "learning_rat" \(did you mean "learning_rate"\?\)/);
      assert.match(m, /"train_batch_size" must be an integer, got "two"/);
      assert.match(m, /"network_dim" must be at least 1, got 0/);
      assert.match(m, /"resolution" 500x500 must be a multiple of 8/);
      assert.match(m, /"optimizer_type" must be one of AdamW, AdamW8bit, Lion, Prodigy, SGDNesterov, got "Adam"/);
      assert.match(m, /cache_latents" cannot be used with "color_aug"/);
      assert.match(m, /exclude each other/);
    }
    assert.throws(() => resolveConfig([{ source: 'x', values: { pretrained_model_name_or_path: 'tiny' } }]), /train_data_dir" or "dataset_config" is required/);
    const f = path.join(tmp, 'broken.toml');
    writeFileSync(f, 'a = ');
    assert.throws(() => configFromArgs(['--config', f]), /broken\.toml: not valid TOML/);
  });

  it('documents every option', () => {
    const md = optionsMarkdown();
    for (const o of OPTIONS) assert.ok(md.includes(`\`${o.key}\``), o.key);
  });
});
