// The caption options of the README's option table, each checked on the caption text training
// uses: caption files are read from a kohya folder by the dataset code with the options as the
// training config gives them, then processed per draw by processCaption, as the training step
// (src/train/step.ts) calls it. Order of operations as sd-scripts' process_caption: prefix and
// suffix, caption dropout, wildcards / line choice, keep_tokens(_separator) split, shuffle, tag
// dropout, then secondary_separator replaced by caption_separator.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Rng } from '../../src/engine/index.js';
import { processCaption } from '../../src/data/captions.js';
import { type TrainImage, prepareData } from '../../src/data/dataset.js';
import { folderModeSpecs } from '../../src/data/specs.js';
import { encodePng } from '../../src/io/png.js';
import { resolveConfig } from '../../src/train/config.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-captions-'));
let n = 0;

/** One image with `caption` in a fresh kohya folder, read with the training options `opts`. */
async function captioned(caption: string, opts: Record<string, unknown> = {}): Promise<TrainImage> {
  const root = path.join(tmp, String(n++));
  const sub = path.join(root, '1_thing');
  mkdirSync(sub, { recursive: true });
  writeFileSync(path.join(sub, 'a.png'), encodePng(new Uint8Array(8 * 8 * 3), 8, 8));
  writeFileSync(path.join(sub, 'a.txt'), caption);
  const cfg = resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: root, caption_extension: '.txt', resolution: 64, ...opts } }]);
  const data = await prepareData(folderModeSpecs(cfg).specs);
  return data.datasets[0].images[0];
}

/** `count` captions as training draws them (epoch 1 unless given), from one seeded stream. */
function draws(img: TrainImage, count: number, seed = 1, epoch = 1): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => processCaption(img.caption, img.subset, epoch, rng));
}

const tags = (c: string) => c.split(', ');

describe('caption options', () => {
  it('caption_separator: tags split on the separator given, shuffled after the kept ones and joined with ", "', async () => {
    const img = await captioned('sks; red; blue; green; tall', { caption_separator: ';', shuffle_caption: true, keep_tokens: 1 });
    assert.equal(img.subset.captionSeparator, ';');
    const out = draws(img, 40);
    for (const c of out) {
      assert.equal(tags(c)[0], 'sks', c);
      assert.deepEqual(tags(c).sort(), ['blue', 'green', 'red', 'sks', 'tall'], c);
    }
    assert.ok(new Set(out).size > 5, 'the other tags are shuffled');
    // With the default "," the same text is one tag, left as it is.
    const plain = await captioned('sks; red; blue; green; tall', { shuffle_caption: true, keep_tokens: 1 });
    assert.deepEqual(new Set(draws(plain, 10)), new Set(['sks; red; blue; green; tall']));
  });

  it('keep_tokens_separator: the part before it stays first, a part after a second one stays last, the middle shuffles (instead of keep_tokens)', async () => {
    const caption = 'sks, 1girl ||| red, blue, green, yellow ||| masterpiece, best';
    const img = await captioned(caption, { keep_tokens_separator: '|||', shuffle_caption: true, keep_tokens: 3 });
    const out = draws(img, 40);
    for (const c of out) {
      const t = tags(c);
      assert.deepEqual(t.slice(0, 2), ['sks', '1girl'], c);
      assert.deepEqual(t.slice(-2), ['masterpiece', 'best'], c);
      assert.deepEqual(t.slice(2, -2).sort(), ['blue', 'green', 'red', 'yellow'], c);
    }
    assert.ok(new Set(out).size > 5, 'the middle is shuffled');
    assert.ok(out.some((c) => tags(c)[2] !== 'red'), 'keep_tokens 3 does not also pin "red"');
    // Tag dropout leaves the kept parts alone.
    const drop = await captioned(caption, { keep_tokens_separator: '|||', caption_tag_dropout_rate: 1 });
    assert.deepEqual(new Set(draws(drop, 5)), new Set(['sks, 1girl, masterpiece, best']));
    // A third separator stays in the kept suffix's text, as sd-scripts splits twice at most.
    const three = await captioned('a ||| b, c ||| d ||| e', { keep_tokens_separator: '|||', shuffle_caption: true });
    for (const c of draws(three, 10)) assert.ok(c.startsWith('a, ') && c.endsWith(', d ||| e'), c);
  });

  it('secondary_separator: joined tags shuffle and drop as one tag, then take caption_separator', async () => {
    const img = await captioned('sks, red hair;;;long hair, blue eyes, smile, hat', { secondary_separator: ';;;', shuffle_caption: true, keep_tokens: 1, caption_tag_dropout_rate: 0.5 });
    const out = draws(img, 200);
    let withGroup = 0;
    for (const c of out) {
      assert.ok(!c.includes(';;;'), c);
      assert.ok(c.startsWith('sks'), c);
      const has = c.includes('red hair'), hasLong = c.includes('long hair');
      assert.equal(has, hasLong, `the group is kept or dropped whole: ${c}`);
      if (has) { withGroup++; assert.ok(c.includes('red hair,long hair'), c); }
    }
    assert.ok(withGroup > 50 && withGroup < 150, `dropped about half of the time (${withGroup}/200)`);
    assert.ok(out.some((c) => /^sks, (blue eyes|smile|hat)/.test(c) && c.includes('red hair')), 'the group moves');
    // Without shuffling or dropout the separator is replaced all the same.
    const still = await captioned('red hair;;;long hair, smile', { secondary_separator: ';;;' });
    assert.deepEqual(draws(still, 1), ['red hair,long hair, smile']);
  });

  it('enable_wildcard: {a|b} picks one option per draw, a multi-line caption file one line; off: the first line as written', async () => {
    const img = await captioned('a {red|blue|green} star, {{literal}}', { enable_wildcard: true });
    const out = draws(img, 60);
    assert.deepEqual(new Set(out), new Set(['red', 'blue', 'green'].map((c) => `a ${c} star, {literal}`)));
    const lines = await captioned('first line\nsecond line\n\n  third line  \n', { enable_wildcard: true });
    assert.deepEqual(new Set(draws(lines, 60)), new Set(['first line', 'second line', 'third line']));
    // Wildcards are chosen before the tags are shuffled.
    const shuffled = await captioned('sks, {a|b}, c, d', { enable_wildcard: true, shuffle_caption: true, keep_tokens: 1 });
    for (const c of draws(shuffled, 30)) {
      const t = tags(c);
      assert.equal(t[0], 'sks');
      assert.ok(t.includes('a') !== t.includes('b'), c);
      assert.ok(t.includes('c') && t.includes('d') && t.length === 4, c);
    }
    const off = await captioned('a {red|blue} star\nsecond line');
    assert.deepEqual(new Set(draws(off, 10)), new Set(['a {red|blue} star']));
  });

  it('caption_dropout_rate: the whole caption is empty at that rate; 0 never drops', async () => {
    const img = await captioned('sks, red, star', { caption_dropout_rate: 0.25 });
    const out = draws(img, 4000, 7);
    for (const c of out) assert.ok(c === '' || c === 'sks, red, star', c);
    const rate = out.filter((c) => c === '').length / out.length;
    assert.ok(Math.abs(rate - 0.25) < 0.03, `dropped ${rate}`);
    const never = await captioned('sks, red, star', { caption_dropout_rate: 0 });
    assert.ok(draws(never, 2000, 7).every((c) => c === 'sks, red, star'));
    // Prefix and suffix are part of what is dropped.
    const pre = await captioned('body', { caption_dropout_rate: 1, caption_prefix: 'pre', caption_suffix: 'post' });
    assert.deepEqual(new Set(draws(pre, 5)), new Set(['']));
  });

  it('caption_dropout_every_n_epochs and caption_tag_dropout_rate: every n-th epoch empty; each free tag dropped at its rate', async () => {
    const img = await captioned('sks, red, star', { caption_dropout_every_n_epochs: 3 });
    const rng = new Rng(2);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((e) => processCaption(img.caption, img.subset, e, rng)),
      ['sks, red, star', 'sks, red, star', '', 'sks, red, star', 'sks, red, star', '', 'sks, red, star']);
    const tagImg = await captioned('sks, t1, t2, t3, t4, t5, t6, t7, t8', { caption_tag_dropout_rate: 0.3, keep_tokens: 1 });
    let kept = 0, total = 0;
    for (const c of draws(tagImg, 500, 3)) {
      const t = tags(c);
      assert.equal(t[0], 'sks', 'kept tags are never dropped');
      assert.deepEqual(t.slice(1), [...t.slice(1)].sort(), 'no shuffling without shuffle_caption');
      kept += t.length - 1; total += 8;
    }
    assert.ok(Math.abs(1 - kept / total - 0.3) < 0.03, `dropped ${1 - kept / total}`);
  });
});
