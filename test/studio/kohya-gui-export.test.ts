// The Train page's kohya_ss GUI export read back by the CLI's GUI reader gives the same resolved
// training configuration, for the presets and for LoCon, LyCORIS, unet-only, warm-up fractions,
// multires noise and optimizer arguments.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { readConfigLayer, resolveConfig } from '../../src/train/config.js';
import { toKohyaGui } from '../../src/studio/server/kohya-gui-export.js';
import { PRESETS } from '../../src/studio/server/train-routes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-gui-export-'));
const base = { pretrained_model_name_or_path: 'tiny', train_data_dir: dir, output_dir: dir, output_name: 'x' };
const resolved = (values: Record<string, unknown>) => {
  const c = resolveConfig([{ source: 'test', values }]) as Record<string, unknown>;
  for (const k of Object.keys(c)) if (k.startsWith('__')) delete c[k];
  // Same run, other spelling: unset part learning rates are the base rate; network_args are keyword arguments.
  c.unet_lr ??= c.learning_rate;
  c.text_encoder_lr ??= c.learning_rate;
  c.network_args = [...(c.network_args as string[])].sort();
  return c;
};

const CASES: [string, Record<string, unknown>][] = [
  ...PRESETS.map((p) => [`preset ${p.id}`, p.values] as [string, Record<string, unknown>]),
  ['kohya LoCon', { network_dim: 16, network_alpha: 8, network_args: ['conv_dim=8', 'conv_alpha=4'], resolution: '512,768' }],
  ['LyCORIS LoHa', { network_module: 'lycoris.kohya', network_dim: 8, network_alpha: 4, network_args: ['algo=loha', 'conv_dim=4', 'conv_alpha=2', 'preset=attn-mlp'] }],
  ['text encoder only, warm-up steps, multires noise, optimizer args', { network_train_text_encoder_only: true, text_encoder_lr: 5e-5, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 50, multires_noise_iterations: 6, multires_noise_discount: 0.3, optimizer_type: 'AdamW', optimizer_args: ['weight_decay=0.1', 'betas=0.9,0.99'], max_train_steps: 500 }],
  ['noise offset, separate learning rates', { unet_lr: 2e-4, text_encoder_lr: 1e-5, noise_offset: 0.05, lr_scheduler: 'cosine_with_restarts', lr_scheduler_num_cycles: 3, max_train_epochs: 4 }],
];

for (const [name, values] of CASES) {
  it(`round-trips ${name}`, () => {
    const { config, notes } = toKohyaGui({ ...base, ...values });
    assert.deepEqual(notes, []);
    assert.ok(typeof config.LoRA_type === 'string');
    const file = path.join(dir, `${name.replace(/\W+/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(config));
    const layer = readConfigLayer(file);
    assert.deepEqual(resolved(layer.values), resolved({ ...base, ...values }));
  });
}

it('names what the GUI cannot hold', () => {
  const { notes } = toKohyaGui({ ...base, network_args: ['something_new=1'] });
  assert.match(notes[0], /something_new/);
});
