// README Every option: bucket_reso_steps must be a multiple of 64 for SD 1.x/2.x "except with
// bucket_no_upscale": on SD 1.x a step of 32 is refused without bucket_no_upscale and accepted with
// it (as a training option and in a dataset_config), and the images then land in buckets of that step.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { prepareData } from '../../src/data/dataset.js';
import { datasetConfigSpecs, folderModeSpecs } from '../../src/data/specs.js';
import { SD1, SDXL } from '../../src/families/index.js';
import { type TrainConfig, resolveConfig } from '../../src/train/config.js';
import { applyFamilyOptions } from '../../src/train/family-training.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-bucket-claims-'));
const root = path.join(tmp, 'train');
const cfg = (v: Record<string, unknown>): TrainConfig => resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', caption_extension: '.txt', ...(v.dataset_config ? {} : { train_data_dir: root }), resolution: 128, enable_bucket: true, min_bucket_reso: 64, ...v } }]);
const onSd1 = (c: TrainConfig) => () => applyFamilyOptions(c, SD1, 'epsilon');

describe('bucket_reso_steps except with bucket_no_upscale', () => {
  before(async () => {
    mkdirSync(path.join(root, '1_thing'), { recursive: true });
    // 96x160: under 128x128's area, so bucket_no_upscale keeps its size and cuts it to the step.
    await sharp({ create: { width: 96, height: 160, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toFile(path.join(root, '1_thing', 'a.png'));
    writeFileSync(path.join(root, '1_thing', 'a.txt'), 'a thing');
  });

  it('the README\'s option row says so', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    assert.match(readme, /\| `bucket_reso_steps` \|[^\n]*a multiple of 64 for SD 1\.x\/2\.x[^\n]*except with bucket_no_upscale/);
  });

  it('SD 1.x: bucket_reso_steps 32 is refused without bucket_no_upscale, accepted with it, and gives buckets of 32', async () => {
    assert.throws(onSd1(cfg({ bucket_reso_steps: 32 })), /"bucket_reso_steps" must be a multiple of 64 for SD 1\.x, got 32/);
    const c = cfg({ bucket_reso_steps: 32, bucket_no_upscale: true });
    assert.doesNotThrow(onSd1(c));
    assert.equal(c.bucket_reso_steps, 32, 'kept as given');
    const data = await prepareData(folderModeSpecs(c).specs);
    assert.deepEqual(data.datasets[0].images[0].placement.bucket, [96, 160], 'a 96 px side: a step of 32, not 64');
    // The same image with the family's step: its sides cut to multiples of 64.
    const c64 = cfg({ bucket_no_upscale: true });
    onSd1(c64)();
    assert.deepEqual((await prepareData(folderModeSpecs(c64).specs)).datasets[0].images[0].placement.bucket, [64, 128]);
    // Any step (not a multiple of 32 either) passes the config check with bucket_no_upscale only.
    assert.throws(() => cfg({ bucket_reso_steps: 40 }), /"bucket_reso_steps" must be a multiple of 64 for SD 1\.x\/2\.x or of 32 for SDXL, got 40/);
    assert.doesNotThrow(onSd1(cfg({ bucket_reso_steps: 40, bucket_no_upscale: true })));
    // SDXL (steps of 32): 48 passes only with bucket_no_upscale too.
    assert.throws(() => cfg({ bucket_reso_steps: 48, resolution: 1024 }), /got 48/);
    assert.doesNotThrow(() => applyFamilyOptions(cfg({ bucket_reso_steps: 48, resolution: 1024, bucket_no_upscale: true }), SDXL, 'epsilon'));
  });

  it('in a dataset_config: a [[datasets]] step of 32 on SD 1.x needs that dataset\'s bucket_no_upscale', async () => {
    const file = (noUpscale: boolean) => {
      const f = path.join(tmp, `steps-${noUpscale}.toml`);
      writeFileSync(f, `[[datasets]]\nresolution = 128\nenable_bucket = true\nmin_bucket_reso = 64\nbucket_reso_steps = 32\n${noUpscale ? 'bucket_no_upscale = true\n' : ''}  [[datasets.subsets]]\n  image_dir = "${path.join(root, '1_thing')}"\n  caption_extension = ".txt"\n`);
      return f;
    };
    const refused = file(false), accepted = file(true);
    assert.throws(onSd1(cfg({ dataset_config: refused})), /steps-false\.toml: \[\[datasets\]\] #1: "bucket_reso_steps" must be a multiple of 64 for SD 1\.x, got 32/);
    const c = cfg({ dataset_config: accepted});
    assert.doesNotThrow(onSd1(c));
    const data = await prepareData(datasetConfigSpecs(accepted, c));
    assert.deepEqual(data.datasets[0].images[0].placement.bucket, [96, 160]);
  });
});
