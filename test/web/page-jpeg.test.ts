// README Web: a JPEG is decoded in the page by the browser (createImageBitmap on an OffscreenCanvas)
// and in Node by libvips (sharp), so it "may decode slightly differently". How slightly: JPEGs
// dropped on the page's dataset (4:2:0 and 4:4:4 chroma, odd sides, progressive, an EXIF rotation)
// train there, and the page's data pipeline (engine op "image": src/data/images.ts over the page's
// sharp) gives pixels within a small tolerance of Node's, at their own size and after the lanczos3
// resize to a bucket.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp, { type JpegOptions } from 'sharp';
import { imageSize, prepareImageRgb } from '../../src/data/images.js';
import { type PageSession, chromiumMissing, openPage, waitForBackend } from '../helpers/browser.js';

const skip = chromiumMissing() ?? undefined;
const engineCall = (s: PageSession, req: unknown) => s.page.evaluate((r) => (window as any).sdlora.engine.call(r), req);

/** Smooth shading, a disc and a block with hard edges, light noise: a photo's kinds of content. */
function photo(w: number, h: number, seed: number): Uint8Array {
  let s = seed;
  const r = () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff; };
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    let v = 128 + 100 * Math.sin(x / (6 + c) + y / 9) * Math.cos(y / (5 + c));
    if ((x - w / 2) ** 2 + (y - h / 3) ** 2 < (w / 5) ** 2) v = 230 - c * 70;
    if (x > w * 0.7 && y > h * 0.6) v = 20 + c * 40;
    d[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v + (r() - 0.5) * 16)));
  }
  return d;
}

// Measured here (Chromium 156 on Debian bookworm; sharp 0.35 with libvips 8.18 and mozjpeg): the
// page's pixels equal Node's for every file below, at their own size and resized (mean and max
// |diff| 0 of 255): both decoders are libjpeg-turbo derivatives with the same integer IDCT and
// chroma upsampling. The bounds leave room for another build's IDCT or upsampling (their
// differences are a level or two, at edges a few), while a wrong YCbCr matrix or range, swapped
// channels, a missed EXIF orientation or a shifted chroma plane moves the mean well past 1 and the
// worst pixel far past 4.
const MEAN_TOL = 1, MAX_TOL = 4; // of 255

function compare(a: ArrayLike<number>, b: ArrayLike<number>): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0, max = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); sum += d; max = Math.max(max, d); }
  return { mean: sum / a.length, max };
}

describe('JPEG in the page versus Node', { skip, timeout: 600_000 }, () => {
  let s: PageSession;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-web-jpeg-'));
  const files: { name: string; file: string }[] = [];

  before(async () => {
    const cases: [string, number, number, JpegOptions, number?][] = [
      ['q90-420', 64, 48, { quality: 90 }],
      ['q75-444', 64, 48, { quality: 75, chromaSubsampling: '4:4:4' }],
      ['q50-420-odd', 63, 47, { quality: 50 }],
      ['q85-progressive', 96, 80, { quality: 85, progressive: true }],
      ['q90-exif6', 64, 48, { quality: 90 }, 6],
    ];
    for (const [name, w, h, o, orientation] of cases) {
      const file = path.join(tmp, `${name}.jpg`);
      let img = sharp(photo(w, h, name.length * 7 + 1), { raw: { width: w, height: h, channels: 3 } }).jpeg(o);
      if (orientation) img = img.withMetadata({ orientation });
      await img.toFile(file);
      writeFileSync(path.join(tmp, `${name}.txt`), 'a photo of sks');
      files.push({ name, file });
    }
    s = await openPage({ query: 'device=cpu' });
    await waitForBackend(s.page);
  });
  after(async () => {
    await s?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('JPEGs dropped on the page train, and the page decodes them to Node\'s pixels within the tolerance', async (t) => {
    await s.page.setInputFiles('#data-files', files.flatMap((f) => [f.file, f.file.replace(/\.jpg$/, '.txt')]));
    assert.equal(await s.page.textContent('#data-status'), `${files.length} images, ${files.length} captions`);
    await s.page.fill('#steps', '1');
    await s.page.click('#train');
    await s.page.waitForFunction(() => /^done: 1 steps/.test(document.getElementById('train-status')!.textContent ?? '') || (window as any).sdlora.state().error, undefined, { timeout: 300_000, polling: 250 });
    const st = await s.page.evaluate(() => (window as any).sdlora.state());
    assert.equal(st.error, undefined);
    assert.ok(Number.isFinite(st.losses[0]?.loss), 'one step trained on the dropped JPEGs');
    // The files as the page's dataset holds them.
    const inPage = (await engineCall(s, { op: 'list', dir: '/user' }) as string[]).filter((p) => p.endsWith('.jpg'));
    assert.equal(inPage.length, files.length, inPage.join(', '));
    for (const f of files) {
      const pagePath = inPage.find((p) => p.endsWith(`/10_concept/${f.name}.jpg`));
      assert.ok(pagePath, `${f.name} in the page's dataset`);
      const original = await imageSize(f.file);
      for (const size of [original, [32, 32] as [number, number]]) {
        const page = await engineCall(s, { op: 'image', path: pagePath, size }) as { width: number; height: number; rgb: Record<string, number> };
        assert.deepEqual([page.width, page.height], size);
        const node = await prepareImageRgb(f.file, { resized: size, bucket: size, offset: [0, 0], flip: false }, original);
        const d = compare(Object.values(page.rgb), node);
        t.diagnostic(`${f.name} at ${size.join('x')}: mean |diff| ${d.mean.toFixed(3)}, max ${d.max} of 255`);
        assert.ok(d.mean <= MEAN_TOL, `${f.name} at ${size.join('x')}: mean |diff| ${d.mean} > ${MEAN_TOL}`);
        assert.ok(d.max <= MAX_TOL, `${f.name} at ${size.join('x')}: max |diff| ${d.max} > ${MAX_TOL}`);
      }
    }
  });
});
