// README claims about training data: the image types read (png, jpg, jpeg, webp, bmp), dataset
// configs in JSON, the dataset check's small-image and aspect-ratio/bucket report, dataset_repeats,
// resolution as a list, bucket_reso_steps' multiple per family, flip_aug's effect and
// random_crop / color_aug refused with cache_latents (sd-scripts' is_latent_cacheable).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import * as E from '../../src/engine/index.js';
import { cropOffsets } from '../../src/data/buckets.js';
import { checkDataset, formatCheckReport } from '../../src/data/dataset-check.js';
import { DatasetError, type TrainImage, prepareData } from '../../src/data/dataset.js';
import { prepareImageRgb, rgbToTensorData } from '../../src/data/images.js';
import { datasetConfigSpecs, folderModeSpecs } from '../../src/data/specs.js';
import { SD1, SDXL } from '../../src/families/index.js';
import { encodePng } from '../../src/io/png.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import { type TrainConfig, readConfigLayer, resolveConfig } from '../../src/train/config.js';
import { applyFamilyOptions } from '../../src/train/family-training.js';
import { latentSource } from '../../src/train/latent-cache.js';
import { typed } from '../../src/train/options.js';
import { microStepper } from '../../src/train/step.js';
import type { TextConditioner } from '../../src/train/text-conditioning.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-data-claims-'));
const cfg = (v: Record<string, unknown>): TrainConfig => resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: 'tiny', caption_extension: '.txt', resolution: 64, ...v } }]);

/** An RGB test pattern with a different value in every channel and position (smooth, for JPEG). */
function pattern(w: number, h: number, seed: number): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    px[i] = (x * 4 + seed * 16) % 256; px[i + 1] = (y * 4 + 32) % 256; px[i + 2] = ((x + y) * 2 + seed * 8) % 256;
  }
  return px;
}

/** A 24-bit bottom-up BMP (rows padded to 4 bytes), written by hand. */
function bmp24(rgb: Uint8Array, w: number, h: number): Buffer {
  const row = Math.ceil((w * 3) / 4) * 4, size = 54 + row * h, b = Buffer.alloc(size);
  b.write('BM', 0); b.writeUInt32LE(size, 2); b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14); b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(24, 28); b.writeUInt32LE(row * h, 34);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = 54 + (h - 1 - y) * row + x * 3, i = (y * w + x) * 3;
    b[o] = rgb[i + 2]; b[o + 1] = rgb[i + 1]; b[o + 2] = rgb[i];
  }
  return b;
}

/** An 8-bit palette BMP (top-down) of `idx` into `palette` (RGB triples). */
function bmp8(idx: Uint8Array, w: number, h: number, palette: number[][]): Buffer {
  const row = Math.ceil(w / 4) * 4, off = 54 + 4 * palette.length, b = Buffer.alloc(off + row * h);
  b.write('BM', 0); b.writeUInt32LE(b.length, 2); b.writeUInt32LE(off, 10);
  b.writeUInt32LE(40, 14); b.writeInt32LE(w, 18); b.writeInt32LE(-h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(8, 28); b.writeUInt32LE(palette.length, 46);
  palette.forEach(([r, g, bl], i) => { b[54 + 4 * i] = bl; b[55 + 4 * i] = g; b[56 + 4 * i] = r; });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b[off + y * row + x] = idx[y * w + x];
  return b;
}

/** A 32-bit BI_BITFIELDS BMP (bottom-up) with masks R 0xff00, G 0xff0000, B 0xff000000. */
function bmp32(rgb: Uint8Array, w: number, h: number): Buffer {
  const off = 54 + 12, b = Buffer.alloc(off + 4 * w * h);
  b.write('BM', 0); b.writeUInt32LE(b.length, 2); b.writeUInt32LE(off, 10);
  b.writeUInt32LE(40, 14); b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(32, 28); b.writeUInt32LE(3, 30);
  b.writeUInt32LE(0xff00, 54); b.writeUInt32LE(0xff0000, 58); b.writeUInt32LE(0xff000000, 62);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3, o = off + ((h - 1 - y) * w + x) * 4;
    b.writeUInt32LE(((rgb[i] << 8) | (rgb[i + 1] << 16) | (rgb[i + 2] << 24)) >>> 0, o);
  }
  return b;
}

/** The pixels training takes from an image (its bucket-sized RGB bytes, no flip). */
const pixelsOf = (img: TrainImage) => prepareImageRgb(img.path, {
  resized: img.placement.resized, bucket: img.placement.bucket, flip: false,
  offset: cropOffsets(img.placement.resized, img.placement.bucket, () => 0, false),
}, img.size);

const meanAbs = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

function writeDataset(root: string, files: Record<string, Buffer>, folder = '2_thing'): string {
  const sub = path.join(root, folder);
  mkdirSync(sub, { recursive: true });
  for (const [name, buf] of Object.entries(files)) { writeFileSync(path.join(sub, name), buf); writeFileSync(path.join(sub, `${path.parse(name).name}.txt`), `caption of ${name}`); }
  return sub;
}

describe('data claims', () => {
  it('reads png, jpg, jpeg, webp and bmp images with their pixels (lossless ones exactly)', async () => {
    const root = path.join(tmp, 'types');
    const raw = (s: number) => ({ raw: { width: 64, height: 64, channels: 3 as const } , s });
    const px = [1, 2, 3, 4, 5, 6].map((s) => pattern(64, 64, s));
    const enc = (i: number) => sharp(Buffer.from(px[i]), { raw: raw(i).raw });
    writeDataset(root, {
      'a.png': encodePng(px[0], 64, 64),
      'b.jpg': await enc(1).jpeg({ quality: 95 }).toBuffer(),
      'c.JPEG': await enc(2).jpeg({ quality: 95 }).toBuffer(),
      'd.webp': await enc(3).webp({ lossless: true }).toBuffer(),
      'e.bmp': bmp24(px[4], 64, 64),
      'f.BMP': bmp24(px[5], 64, 64),
    });
    const data = await prepareData(folderModeSpecs(cfg({ train_data_dir: root })).specs);
    const images = data.datasets[0].images;
    assert.deepEqual(images.map((i) => path.basename(i.path)), ['a.png', 'b.jpg', 'c.JPEG', 'd.webp', 'e.bmp', 'f.BMP']);
    assert.equal(data.numTrainImages, 2 * 6);
    for (const [k, img] of images.entries()) {
      assert.deepEqual(img.size, [64, 64]);
      assert.equal(img.caption, `caption of ${path.basename(img.path)}`);
      const got = await pixelsOf(img);
      if (/\.jpe?g$/i.test(img.path)) assert.ok(meanAbs(got, px[k]) < 3, `${img.path}: ${meanAbs(got, px[k])}`);
      else assert.deepEqual(got, px[k], img.path);
    }
  });

  it('decodes BMP variants (padded rows, palettes, top-down, bit fields) and names what it cannot read', async () => {
    const root = path.join(tmp, 'bmp');
    const w = 5, h = 3;
    const px = pattern(w, h, 7);
    const palette = [[255, 0, 0], [0, 128, 255], [10, 20, 30]];
    const idx = Uint8Array.from({ length: w * h }, (_, i) => i % 3);
    const rle = bmp24(px, w, h);
    rle.writeUInt32LE(1, 30);
    const sub = writeDataset(root, { 'a.bmp': bmp24(px, w, h), 'b.bmp': bmp8(idx, w, h, palette), 'c.bmp': bmp32(px, w, h), 'd.bmp': rle, 'e.bmp': bmp24(px, w, h).subarray(0, 70) });
    const err = await prepareData(folderModeSpecs(cfg({ train_data_dir: root })).specs).catch((e) => e);
    assert.ok(err instanceof DatasetError);
    assert.match(err.message, /d\.bmp: cannot read the image \(RLE8-compressed BMP is not read; save the image as PNG\)/);
    assert.match(err.message, /e\.bmp: cannot read the image \(the BMP pixel data is truncated/);
    const data = await prepareData(folderModeSpecs(cfg({ train_data_dir: root, skip_bad: true })).specs, { skipBad: true });
    const byName = (n: string) => data.datasets[0].images.find((i) => i.path === path.join(sub, n))!;
    const at = (img: TrainImage) => prepareImageRgb(img.path, { resized: img.size, bucket: img.size, offset: [0, 0], flip: false }, img.size);
    assert.deepEqual(await at(byName('a.bmp')), px);
    assert.deepEqual(await at(byName('b.bmp')), Uint8Array.from([...idx].flatMap((i) => palette[i])));
    assert.deepEqual(await at(byName('c.bmp')), px);
    assert.deepEqual(byName('a.bmp').size, [w, h]);
    // The dataset check reads them too.
    const r = await checkDataset(root, { resolution: 64 });
    assert.deepEqual(r.concepts[0].unreadable.map((u) => u.split(' ')[0]), ['d.bmp', 'e.bmp']);
  });

  it('reads a dataset_config written as JSON like the same config in TOML', async () => {
    const root = path.join(tmp, 'json');
    const sub = writeDataset(root, { 'a.png': encodePng(pattern(64, 96, 1), 64, 96) }, '3_x');
    const json = path.join(tmp, 'ds.json'), toml = path.join(tmp, 'ds2.toml');
    writeFileSync(json, JSON.stringify({
      general: { shuffle_caption: true, caption_extension: '.txt', keep_tokens: 1 },
      datasets: [{ resolution: [64, 96], batch_size: 2, enable_bucket: true, subsets: [{ image_dir: sub, class_tokens: 'x', num_repeats: 4, keep_tokens: 2 }] }],
    }));
    writeFileSync(toml, `[general]\nshuffle_caption = true\ncaption_extension = ".txt"\nkeep_tokens = 1\n\n[[datasets]]\nresolution = [64, 96]\nbatch_size = 2\nenable_bucket = true\n\n  [[datasets.subsets]]\n  image_dir = ${JSON.stringify(sub)}\n  class_tokens = "x"\n  num_repeats = 4\n  keep_tokens = 2\n`);
    const fromJson = datasetConfigSpecs(json, cfg({ dataset_config: json }));
    assert.deepEqual(fromJson, datasetConfigSpecs(toml, cfg({ dataset_config: toml })));
    assert.deepEqual(fromJson[0].resolution, [64, 96]);
    assert.equal(fromJson[0].subsets[0].numRepeats, 4);
    assert.equal(fromJson[0].subsets[0].keepTokens, 2);
    const data = await prepareData(fromJson);
    assert.equal(data.numTrainImages, 4);
    // The same checks as for TOML.
    writeFileSync(json, JSON.stringify({ datasets: [{ resolution: 64, subsets: [{ image_dir: sub, num_repeat: 3 }] }] }));
    assert.throws(() => datasetConfigSpecs(json, cfg({ dataset_config: json })), /ds\.json: \[\[datasets\]\] #1 \[\[datasets\.subsets\]\] #1: unknown key "num_repeat" \(did you mean "num_repeats"\?\)/);
  });

  it('dataset check: reports images small for the resolution, aspect ratios and the buckets they fill', async () => {
    const root = path.join(tmp, 'check');
    const png = (w: number, h: number) => encodePng(pattern(w, h, w % 7), w, h);
    writeDataset(root, { 'square.png': png(512, 512), 'tiny.png': png(200, 200), 'edge.png': png(256, 256), 'wide.png': png(768, 256), 'tall.png': png(256, 768) }, '3_mix');
    const r = await checkDataset(root, { resolution: 512, batchSize: 4 });
    const c = r.concepts[0];
    assert.deepEqual(c.tiny, ['tiny.png (200x200)']);
    assert.deepEqual({ ...c.aspectRatios }, { min: 1 / 3, max: 3, portrait: 1, landscape: 1, square: 3 });
    // sd-scripts' buckets for 512x512 (256..1024, step 64): 3:1 images fill 832x256 and 256x832; repeats count.
    assert.deepEqual(c.buckets, { '512x512': 9, '832x256': 3, '256x832': 3 });
    assert.deepEqual(c.smallBuckets.sort(), ['256x832', '832x256']);
    const text = formatCheckReport(r);
    assert.match(text, /small images \(< 256 px\): tiny\.png \(200x200\)/);
    assert.match(text, /aspect ratios: 0\.33\.\.3\.00 \(1 portrait, 3 square, 1 landscape\)/);
    assert.match(text, /buckets \(with repeats\): 512x512:9 {2}256x832:3 {2}832x256:3/);
    assert.match(text, /3_mix: buckets 256x832, 832x256 hold fewer images than the batch size/);
  });

  it('dataset_repeats: 1 for a dataset_config subset without num_repeats, else its value; num_repeats wins', async () => {
    const root = path.join(tmp, 'repeats');
    const sub = writeDataset(root, { 'a.png': encodePng(pattern(64, 64, 1), 64, 64), 'b.png': encodePng(pattern(64, 64, 2), 64, 64) }, 'plain');
    const file = path.join(tmp, 'repeats.toml');
    writeFileSync(file, `[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = ${JSON.stringify(sub)}\n`);
    const count = async (c: TrainConfig) => (await prepareData(datasetConfigSpecs(file, c))).numTrainImages;
    assert.equal(cfg({ train_data_dir: root }).dataset_repeats, 1);
    assert.equal(await count(cfg({ dataset_config: file })), 2);
    assert.equal(await count(cfg({ dataset_config: file, dataset_repeats: 3 })), 6);
    writeFileSync(file, `[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = ${JSON.stringify(sub)}\n  num_repeats = 5\n`);
    assert.equal(await count(cfg({ dataset_config: file, dataset_repeats: 3 })), 10);
  });

  it('resolution: 64, "64,96" and [64, 96] from TOML and JSON files; width first', async () => {
    const toml = path.join(tmp, 'res.toml'), json = path.join(tmp, 'res.json');
    writeFileSync(toml, 'resolution = [64, 96]\n');
    writeFileSync(json, '{"resolution": [64, 96]}');
    const root = path.join(tmp, 'res');
    writeDataset(root, { 'a.png': encodePng(pattern(64, 96, 1), 64, 96), 'b.png': encodePng(pattern(96, 64, 1), 96, 64) });
    const base = { source: 'test', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: root, caption_extension: '.txt' } };
    for (const layer of [readConfigLayer(toml), readConfigLayer(json), { source: 'flags', values: { resolution: '64,96' } }]) {
      const c = resolveConfig([base, layer]);
      assert.deepEqual(c.resolution, [64, 96], layer.source);
      const data = await prepareData(folderModeSpecs(c).specs);
      assert.deepEqual([...data.datasets[0].buckets.keys()], ['64x96'], layer.source);
      const [tall, wide] = data.datasets[0].images;
      assert.deepEqual(tall.placement.resized, [64, 96]);
      assert.deepEqual(wide.placement.resized, [144, 96], 'a landscape image is resized to cover the 64 wide, 96 high bucket');
    }
    assert.deepEqual(resolveConfig([base, { source: 'flags', values: { resolution: 64 } }]).resolution, [64, 64]);
  });

  it('bucket_reso_steps: a multiple of 64 for SD 1.x/2.x and of 32 for SDXL (training option and dataset_config)', () => {
    const root = path.join(tmp, 'types');
    const family = (c: TrainConfig, f: typeof SD1) => () => applyFamilyOptions(c, f, 'epsilon');
    const bucketed = (v: Record<string, unknown>) => cfg({ train_data_dir: root, enable_bucket: true, min_bucket_reso: 64, ...v });
    assert.throws(family(bucketed({ bucket_reso_steps: 96 }), SD1), /"bucket_reso_steps" must be a multiple of 64 for SD 1\.x, got 96/);
    assert.doesNotThrow(family(bucketed({ bucket_reso_steps: 128 }), SD1));
    assert.doesNotThrow(family(bucketed({ bucket_reso_steps: 32, resolution: 1024 }), SDXL));
    assert.doesNotThrow(family(bucketed({ bucket_reso_steps: 96, resolution: 1024 }), SDXL));
    assert.throws(() => cfg({ train_data_dir: root, bucket_reso_steps: 40 }), /"bucket_reso_steps" must be a multiple of 64 for SD 1\.x\/2\.x or of 32 for SDXL, got 40/);
    const file = path.join(tmp, 'steps.toml');
    writeFileSync(file, `[[datasets]]\nresolution = 64\nenable_bucket = true\nbucket_reso_steps = 32\n  [[datasets.subsets]]\n  image_dir = "${path.join(root, '2_thing')}"\n`);
    assert.throws(family(cfg({ dataset_config: file }), SD1), /steps\.toml: \[\[datasets\]\] #1: "bucket_reso_steps" must be a multiple of 64 for SD 1\.x, got 32/);
    assert.doesNotThrow(family(cfg({ dataset_config: file, resolution: 1024 }), SDXL));
  });

  it('random_crop and color_aug are refused with cache_latents, as flags and in a dataset_config subset', () => {
    assert.throws(() => cfg({ train_data_dir: tmp, cache_latents: true, random_crop: true }), /"cache_latents" cannot be used with "color_aug" or "random_crop"/);
    assert.throws(() => cfg({ train_data_dir: tmp, cache_latents_to_disk: true, color_aug: true }), /"cache_latents" cannot be used/);
    const file = path.join(tmp, 'crop.toml');
    writeFileSync(file, `[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = "${path.join(tmp, 'types', '2_thing')}"\n  random_crop = true\n`);
    assert.throws(() => datasetConfigSpecs(file, cfg({ dataset_config: file, cache_latents: true })), /crop\.toml: \[\[datasets\]\] #1 \[\[datasets\.subsets\]\] #1: "random_crop" cannot be used with "cache_latents"/);
    assert.equal(datasetConfigSpecs(file, cfg({ dataset_config: file }))[0].subsets[0].randomCrop, true);
  });
});

describe('flip_aug', () => {
  let model: SDModel;
  before(async () => {
    await E.initCpuBackend();
    model = await loadSDModel(await tinyModelFolder());
  });

  /** A left-right asymmetric image and its mirror image, as a dataset read with `opts`. */
  async function mirrored(name: string, opts: Record<string, unknown>, caption?: string) {
    const root = path.join(tmp, name);
    // Dark on the left, light on the right, with a pattern on top.
    const px = pattern(32, 32, 3).map((v, i) => (Math.floor(i / 3) % 32 < 16 ? v >> 2 : 255 - (v >> 2)));
    const mirror = new Uint8Array(px.length);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) mirror[(y * 32 + x) * 3 + c] = px[(y * 32 + 31 - x) * 3 + c];
    const sub = writeDataset(root, { 'a.png': encodePng(px, 32, 32), 'm.png': encodePng(mirror, 32, 32) });
    if (caption !== undefined) writeFileSync(path.join(sub, 'a.txt'), caption);
    const conf = (more: Record<string, unknown> = {}) => cfg({ train_data_dir: root, resolution: 32, seed: 3, ...opts, ...more });
    const c = conf();
    const data = await prepareData(folderModeSpecs(c).specs);
    const [a, m] = data.datasets[0].images;
    return { c, conf, data, a, m };
  }

  it('a flipped sample is encoded from the mirrored pixels, per step and from the latent cache', async () => {
    const { c, conf, data, a, m } = await mirrored('flip-latents', { flip_aug: true });
    const src = await latentSource({ model, data, c: typed(c), device: E.cpuBackend, seed: 3, vaeSource: 'tiny', log: () => {} });
    const lat = async (img: TrainImage, flip: boolean) => (await src.latent(img, flip, new E.Rng(11))).dataSync() as Float32Array;
    assert.deepEqual(await lat(a, true), await lat(m, false), 'a flipped = its mirror image');
    assert.notDeepEqual(await lat(a, true), await lat(a, false));
    // The cache samples with its own noise stream; with an identity VAE (mean = the pixels, no
    // noise) its latents are the pixels it encoded: the mirror image's for the flipped entry.
    const identity = { ...model, vae: { config: model.vae.config, encode: (x: E.Tensor) => ({ mean: x, std: E.zeros([...x.shape]) }) } } as unknown as SDModel;
    const cached = await latentSource({ model: identity, data, c: typed(conf({ cache_latents: true })), device: E.cpuBackend, seed: 3, vaeSource: 'tiny', log: () => {} });
    const pixels = async (img: TrainImage) => rgbToTensorData(await prepareImageRgb(img.path, { resized: img.size, bucket: img.size, offset: [0, 0], flip: false }, img.size), 32, 32);
    const cachedOf = async (img: TrainImage, flip: boolean) => Float32Array.from((await cached.latent(img, flip, new E.Rng(1))).dataSync() as Float32Array);
    assert.deepEqual(await cachedOf(a, true), await pixels(m));
    assert.deepEqual(await cachedOf(a, false), await pixels(a));
    assert.deepEqual(await cachedOf(m, true), await pixels(a));
  });

  it('the training step flips about half of the samples with flip_aug, none without; its captions are processed per sample', async () => {
    for (const flipAug of [true, false]) {
      const { c, data, a } = await mirrored(`flip-step-${flipAug}`, { flip_aug: flipAug, enable_wildcard: true, shuffle_caption: true, keep_tokens: 1 }, 'sks, a {red|blue} star, tall, {{x}}');
      const captions: string[] = [];
      const o = typed(c);
      const real = await latentSource({ model, data, c: o, device: E.cpuBackend, seed: 3, vaeSource: 'tiny', log: () => {} });
      const flips: boolean[] = [];
      const dim = model.unet.config.cross_attention_dim as number;
      // Zero text conditioning that takes a gradient, so the step's backward has something to reach.
      const text = { encode: (caps: string[]) => { captions.push(...caps); const context = E.zeros([caps.length, 77, dim]); context.requireGrad(); return { context }; } } as unknown as TextConditioner;
      const step = microStepper({ c: o, model, device: E.cpuBackend, rng: new E.Rng(5), text, latents: { latent: (img, flip, rng) => { flips.push(flip); return real.latent(img, flip, rng); } } });
      const count = flipAug ? 16 : 6;
      await step(Array.from({ length: count }, () => a), 1, { textGrad: false });
      assert.equal(flips.length, count);
      const n = flips.filter(Boolean).length;
      if (flipAug) assert.ok(n >= 4 && n <= 12, `${n}/16 flipped`); else assert.equal(n, 0);
      // What the text encoder gets: one wildcard choice, the kept tag first, the rest shuffled.
      assert.equal(captions.length, count);
      for (const cap of captions) {
        assert.equal(cap.split(', ')[0], 'sks', cap);
        assert.ok(/^(a red star|a blue star)$/.test(cap.split(', ').find((t) => t.endsWith('star'))!), cap);
        assert.deepEqual(cap.split(', ').filter((t) => !t.endsWith('star')).sort(), ['sks', 'tall', '{x}'], cap);
      }
      if (flipAug) assert.ok(new Set(captions).size > 2, 'captions vary per sample');
    }
  });
});
