// Dataset config checking: every key's level, type and range as sd-scripts' config_util schema,
// all problems listed together under the file and the key's path; unimplemented keys named.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { datasetConfigSpecs } from '../../src/data/specs.js';
import { ConfigError, configMessages, resolveConfig } from '../../src/train/config.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-dscfg-'));
const write = (name: string, text: string) => { const f = path.join(tmp, name); writeFileSync(f, text); return f; };
const cfg = (file: string) => resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', resolution: 64, dataset_config: file } }]);
const problems = (file: string): string => {
  try { cfg(file); } catch (e) { assert.ok(e instanceof ConfigError, String(e)); return e.message; }
  return assert.fail('should throw');
};

describe('dataset config checks', () => {
  it('refuses num_repeats = -3 and batch_size = 0 (which hung or trained nothing) with the file and key path', () => {
    const f = write('bad.toml', '[general]\nbatch_size = 0\n\n[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = "a"\n  num_repeats = -3\n');
    const m = problems(f);
    assert.match(m, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\[general\\]: "batch_size" must be at least 1, got 0`));
    assert.match(m, /\[\[datasets\]\] #1 \[\[datasets\.subsets\]\] #1: "num_repeats" must be at least 1, got -3/);
    // datasetConfigSpecs (what the trainer calls) refuses the same file
    assert.throws(() => datasetConfigSpecs(f, resolveConfig([{ source: 't', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd' } }])), /"num_repeats" must be at least 1/);
  });

  it('checks types and ranges of every key strictly and lists all problems together', () => {
    const f = write('types.toml', [
      '[general]', 'shuffle_caption = "yes"', 'keep_tokens = 1.5', 'caption_dropout_rate = 2', 'enable_bucket = true',
      '[[datasets]]', 'resolution = [500, 64]', 'min_bucket_reso = 512', 'max_bucket_reso = 256', 'bucket_reso_steps = 4',
      '  [[datasets.subsets]]', '  image_dir = 5', '  num_repeats = "10"', '  flip_aug = 1', '  caption_tag_dropout_rate = -0.1',
      '  face_crop_aug_range = [3.0, 2.0]', '  resize_interpolation = "fancy"',
      '  [[datasets.subsets]]', '  class_tokens = "dog"', '  batch_sise = 2', '  caption_extention = ".txt"',
    ].join('\n'));
    const m = problems(f);
    for (const re of [
      /\[general\]: "shuffle_caption" must be true or false, got "yes"/,
      /\[general\]: "keep_tokens" must be an integer, got 1\.5/,
      /\[general\]: "caption_dropout_rate" must be at most 1, got 2/,
      /\[\[datasets\]\] #1: "resolution" must be a multiple of 8, got \[500,64\]/,
      /\[\[datasets\]\] #1: "bucket_reso_steps" must be at least 8, got 4/,
      /\[\[datasets\]\] #1: "min_bucket_reso" 512 must not exceed "max_bucket_reso" 256/,
      /#1 \[\[datasets\.subsets\]\] #1: "image_dir" must be a string, got 5/,
      /#1 \[\[datasets\.subsets\]\] #1: "num_repeats" must be an integer, got "10"/,
      /#1 \[\[datasets\.subsets\]\] #1: "flip_aug" must be true or false, got 1/,
      /"caption_tag_dropout_rate" must be at least 0, got -0\.1/,
      /"face_crop_aug_range" must be two numbers with 0 <= low <= high, got \[3,2\]/,
      /"resize_interpolation" must be one of lanczos, nearest/,
      /#1 \[\[datasets\.subsets\]\] #2: a subset needs "image_dir"/,
      /#1 \[\[datasets\.subsets\]\] #2: unknown key "batch_sise" \(did you mean "batch_size"\?\)/,
      /unknown key "caption_extention" \(did you mean "caption_extension"\?\)/,
    ]) assert.match(m, re);
  });

  it('names the keys sd-scripts accepts but sdlora does not implement as having no effect', () => {
    const img = path.join(tmp, 'img');
    const f = write('noeffect.toml', [
      '[general]', 'network_multiplier = 0.5', 'validation_split = 0.1', 'token_warmup_min = 1', 'cache_info = true',
      '[[datasets]]', 'resolution = 64', 'resize_interpolation = "lanczos"',
      '  [[datasets.subsets]]', `  image_dir = "${img}"`, '  alpha_mask = true', '  face_crop_aug_range = [2.0, 4.0]', '  token_warmup_step = 0.5',
      '  custom_attributes = { a = 1 }',
    ].join('\n'));
    const msgs = configMessages(cfg(f));
    for (const k of ['network_multiplier', 'validation_split', 'cache_info', 'resize_interpolation', 'alpha_mask', 'face_crop_aug_range', 'token_warmup_step', 'custom_attributes']) {
      assert.ok(msgs.some((m) => m.includes(`"${k}" has no effect in sdlora`)), `${k}: ${msgs.join('\n')}`);
    }
    // token_warmup_min = 1 is sd-scripts' default: nothing to say
    assert.ok(!msgs.some((m) => m.includes('token_warmup_min')));
    assert.ok(msgs.some((m) => m.startsWith(`note: ${f}: [[datasets]] #1 [[datasets.subsets]] #1: "alpha_mask"`)), msgs.join('\n'));
  });

  it('reports dataset config syntax errors with line and column, and an unreadable file', () => {
    const f = write('syntax.toml', '[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = "a\n');
    assert.match(problems(f), new RegExp(`dataset_config ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:\\d+: not valid TOML`));
    assert.match(problems(path.join(tmp, 'missing.toml')), /missing\.toml: cannot read the dataset config \(ENOENT\)/);
  });
});
