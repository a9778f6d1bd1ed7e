// Datasets from disk: the kohya folder rule, caption pairing and class tokens, regularization
// balancing, TOML dataset configs, caption processing, epoch plans, and bad-file reporting.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Rng } from '../../src/engine/index.js';
import { epochBatches } from '../../src/data/batches.js';
import { processCaption, tagFrequency } from '../../src/data/captions.js';
import { SUBSET_DEFAULTS } from '../../src/data/dataset-spec.js';
import { DatasetError, prepareData } from '../../src/data/dataset.js';
import { captionCandidates } from '../../src/data/folder-dataset.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { datasetConfigSpecs, folderModeSpecs } from '../../src/data/specs.js';
import { resolveConfig } from '../../src/train/config.js';
import { encodePng } from '../../src/io/png.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-data-'));
const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', caption_extension: '.txt', resolution: 64, ...v } }]);

describe('datasets', () => {
  it('reads <repeats>_<name> folders, captions and class tokens, and skips other folders', async () => {
    const root = path.join(tmp, 'a', 'train');
    writeShapeDataset(root, { name: 'sks star', repeats: 3, count: 4, size: 64, shapes: ['star'], seed: 1 });
    const noCap = path.join(root, '2_red circle');
    mkdirSync(noCap);
    writeFileSync(path.join(noCap, 'x.png'), encodePng(new Uint8Array(32 * 48 * 3), 48, 32));
    mkdirSync(path.join(root, 'notes'));
    const { specs, warnings } = folderModeSpecs(cfg({ train_data_dir: root }));
    assert.equal(specs[0].subsets.length, 2);
    assert.ok(warnings.some((w) => w.includes('notes')));
    const data = await prepareData(specs);
    assert.equal(data.numTrainImages, 3 * 4 + 2);
    const x = data.datasets[0].images.find((i) => i.path.endsWith('x.png'))!;
    assert.equal(x.caption, 'red circle');
    assert.equal(x.hasCaptionFile, false);
    assert.deepEqual(x.size, [48, 32]);
    assert.match(data.datasets[0].images.find((i) => i.path.includes('sks star'))!.caption, /^a \w+ star on a \w+ background$/);
    assert.deepEqual(data.datasetDirs['3_sks star'], { n_repeats: 3, img_count: 4 });
    assert.equal(data.tagFrequency['2_red circle']['red circle'], 1);
  });

  it('balances regularization images to the number of training entries', async () => {
    const root = path.join(tmp, 'b');
    writeShapeDataset(path.join(root, 'train'), { name: 'star', repeats: 5, count: 2, size: 64, shapes: ['star'], seed: 2 });
    writeShapeDataset(path.join(root, 'reg'), { name: 'shape', repeats: 1, count: 3, size: 64, shapes: ['circle'], seed: 3 });
    const data = await prepareData(folderModeSpecs(cfg({ train_data_dir: path.join(root, 'train'), reg_data_dir: path.join(root, 'reg') })).specs);
    const reg = data.datasets[0].images.filter((i) => i.subset.isReg);
    assert.equal(reg.reduce((a, i) => a + i.repeats, 0), 10, 'as many reg entries as training entries');
    assert.equal(data.numRegImages, 3);
  });

  it('lists every bad file in one error, or skips them with skip_bad', async () => {
    const root = path.join(tmp, 'c', 'train');
    writeShapeDataset(root, { name: 'ok', repeats: 1, count: 2, size: 64, shapes: ['square'], seed: 4 });
    const sub = path.join(root, '1_ok');
    writeFileSync(path.join(sub, 'broken.png'), 'not an image');
    writeFileSync(path.join(sub, '002.txt'), Buffer.from([0xff, 0xfe, 0x41]));
    const specs = folderModeSpecs(cfg({ train_data_dir: root })).specs;
    await assert.rejects(prepareData(specs), (e: Error) => e instanceof DatasetError && e.message.includes('broken.png') && e.message.includes('002.txt: the caption is not valid UTF-8'));
    const data = await prepareData(specs, { skipBad: true });
    assert.equal(data.numTrainImages, 1);
    assert.equal(data.warnings.filter((w) => w.startsWith('skipped')).length, 2);
  });

  it('reads a TOML dataset config with [general] < [[datasets]] < subset precedence', () => {
    const toml = path.join(tmp, 'ds.toml');
    writeFileSync(toml, `[general]\nshuffle_caption = true\ncaption_extension = "txt"\nkeep_tokens = 1\n\n[[datasets]]\nresolution = [64, 96]\nbatch_size = 4\nenable_bucket = true\n\n  [[datasets.subsets]]\n  image_dir = "${path.join(tmp, 'a/train/3_sks star')}"\n  class_tokens = "sks star"\n  num_repeats = 10\n  keep_tokens = 2\n`);
    const [d] = datasetConfigSpecs(toml, cfg({ dataset_config: toml }));
    assert.deepEqual(d.resolution, [64, 96]);
    assert.equal(d.batchSize, 4);
    assert.equal(d.subsets[0].numRepeats, 10);
    assert.equal(d.subsets[0].keepTokens, 2);
    assert.equal(d.subsets[0].shuffleCaption, true);
    assert.equal(d.subsets[0].captionExtension, '.txt');
    writeFileSync(toml, '[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = "x"\n  num_repeat = 3\n');
    assert.throws(() => datasetConfigSpecs(toml, cfg({ dataset_config: toml })), /unknown key "num_repeat" \(did you mean "num_repeats"\?\)/);
    writeFileSync(toml, '[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = "x"\n  batch_size = 3\n');
    assert.throws(() => datasetConfigSpecs(toml, cfg({ dataset_config: toml })), /"batch_size" belongs in \[general\] or \[\[datasets\]\]/);
  });

  it('processes captions: keep_tokens, shuffle, tag dropout, dropout, prefix', () => {
    const s = { ...SUBSET_DEFAULTS, imageDir: '', shuffleCaption: true, keepTokens: 1 };
    const rng = new Rng(1);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const c = processCaption('sks, a, b, c, d', s, 1, rng);
      assert.ok(c.startsWith('sks, '));
      assert.deepEqual(c.split(', ').sort(), ['a', 'b', 'c', 'd', 'sks']);
      seen.add(c);
    }
    assert.ok(seen.size > 5, 'tags are shuffled');
    const dropped = processCaption('sks, a, b, c', { ...s, shuffleCaption: false, captionTagDropoutRate: 1 }, 1, rng);
    assert.equal(dropped, 'sks');
    assert.equal(processCaption('x', { ...s, captionDropoutEveryNEpochs: 2 }, 4, rng), '');
    assert.equal(processCaption('body', { ...s, shuffleCaption: false, keepTokens: 0, captionPrefix: 'pre', captionSuffix: 'post' }, 1, rng), 'pre body post');
    assert.deepEqual(tagFrequency(['A, b', 'a, , c']), { a: 2, b: 1, c: 1 });
    assert.deepEqual(captionCandidates('/d/img_1_2_3_4.png', 'txt'), ['/d/img_1_2_3_4.txt', '/d/img.txt']);
  });

  it('plans epochs deterministically from the seed, one bucket per batch', async () => {
    const root = path.join(tmp, 'e', 'train');
    writeShapeDataset(root, { name: 'a', repeats: 3, count: 5, size: 64, shapes: ['circle'], seed: 5 });
    const data = await prepareData(folderModeSpecs(cfg({ train_data_dir: root, train_batch_size: 4 })).specs);
    const e1 = epochBatches(data.datasets, 7, 1), again = epochBatches(data.datasets, 7, 1), e2 = epochBatches(data.datasets, 7, 2);
    assert.equal(e1.length, Math.ceil(15 / 4));
    assert.deepEqual(e1.map((b) => b.map((i) => i.path)), again.map((b) => b.map((i) => i.path)));
    assert.notDeepEqual(e1.map((b) => b.map((i) => i.path)), e2.map((b) => b.map((i) => i.path)));
    assert.equal(e1.flat().length, 15);
  });
});

describe('color augmentation', () => {
  it('changes colours a little, sometimes, and never the geometry', async () => {
    const { colorAugment } = await import('../../src/data/images.js');
    const rng = new Rng(3);
    const base = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) % 256);
    let changed = 0;
    for (let t = 0; t < 60; t++) {
      const img = Uint8Array.from(base);
      colorAugment(img, () => rng.uniform());
      const d = img.reduce((m, v, i) => Math.max(m, Math.abs(v - base[i])), 0);
      if (d > 0) changed++;
      assert.ok(d < 80, `a weak change, got ${d}`);
    }
    assert.ok(changed > 5 && changed < 40, `about a third of the draws change the image (${changed}/60)`);
  });
});
