// `sdlora dataset check` on generated datasets with planted problems.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { checkDataset, countVerdict, formatCheckReport } from '../../src/data/dataset-check.js';
import { writeShapeDataset } from '../../src/data/procedural.js';

describe('dataset check', () => {
  it('grades image counts against the guidance', () => {
    assert.deepEqual([5, 10, 20, 21, 40, 41, 100, 101].map(countVerdict), ['too few', 'minimum', 'minimum', 'recommended', 'recommended', 'ideal', 'ideal', 'more than needed']);
  });

  it('finds missing and empty captions, unreadable files, duplicates, plain backgrounds and tags', async () => {
    const root = path.join(mkdtempSync(path.join(os.tmpdir(), 'sdlora-check-')), 'train');
    const sub = writeShapeDataset(root, { name: 'sks star', repeats: 10, count: 12, size: 64, shapes: ['star'], seed: 9 });
    rmSync(path.join(sub, '003.txt'));
    writeFileSync(path.join(sub, '004.txt'), '');
    copyFileSync(path.join(sub, '001.png'), path.join(sub, '013.png'));
    writeFileSync(path.join(sub, '013.txt'), 'a copy');
    writeFileSync(path.join(sub, '014.png'), 'garbage');
    const few = path.join(root, '2_few');
    mkdirSync(few);
    copyFileSync(path.join(sub, '002.png'), path.join(few, 'a.png'));
    const r = await checkDataset(root, { resolution: 64, batchSize: 2 });
    const star = r.concepts.find((c) => c.folder === '10_sks star')!;
    assert.equal(star.images, 14);
    assert.equal(star.verdict, 'minimum');
    assert.deepEqual(star.missingCaptions, ['003.png', '014.png']);
    assert.ok(star.emptyCaptions.some((e) => e.startsWith('004.png')));
    assert.equal(star.unreadable.length, 1);
    assert.ok(star.unreadable[0].startsWith('014.png'));
    assert.ok(star.duplicates.some(([a, b]) => a === '001.png' && b === '013.png'));
    assert.ok(star.uniformBackgrounds >= 10, 'procedural images have plain backgrounds');
    assert.ok(star.topTags.some(([t]) => t.includes('star')));
    assert.match(star.flipAdvice, /flip_aug would double/);
    const fewC = r.concepts.find((c) => c.folder === '2_few')!;
    assert.equal(fewC.verdict, 'too few');
    assert.deepEqual(fewC.smallBuckets, []);
    const text = formatCheckReport(r);
    assert.match(text, /10_sks star: 14 images x 10 repeats = 140 per epoch {2}\[minimum\]/);
    assert.match(text, /2_few: 1 images; collect at least 10-20/);
    assert.match(text, /near-duplicate pairs/);
  });
});
