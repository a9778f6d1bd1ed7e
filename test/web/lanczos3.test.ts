// The page's image resizing (src/platform/browser/resize.ts, pure TypeScript) against sharp itself:
// resize(w, h, { kernel: 'lanczos3', fit: 'fill' }) on random and photo-like 8-bit RGB images,
// shrinking (below and above the 4x factor where libvips box-averages first), enlarging, and one
// axis each way; then the data pipeline's resize().extract().flop() chain.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { applyPixelOps, resizeLanczos3 } from '../../src/platform/browser/resize.js';

const TOL = 2; // of 255

function rng(seed: number): () => number {
  let s = seed;
  return () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff; };
}

const random = (w: number, h: number, r: () => number) => Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));

/** Smooth shading, a disc and a block with hard edges, light noise: what photos have. */
function photo(w: number, h: number, r: () => number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 128 + 100 * Math.sin(x / (7 + c) + y / 11) * Math.cos(y / (5 + c));
        if ((x - w / 2) ** 2 + (y - h / 3) ** 2 < (w / 5) ** 2) v = 240 - c * 60;
        if (x > w * 0.7 && y > h * 0.6) v = 20 + c * 30;
        d[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v + (r() - 0.5) * 12)));
      }
    }
  }
  return d;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const sharpRaw = (img: Uint8Array, w: number, h: number) => sharp(img, { raw: { width: w, height: h, channels: 3 } });

describe('the page\'s lanczos3 resize matches sharp', () => {
  const cases: { name: string; from: [number, number]; to: [number, number] }[] = [
    { name: 'shrink x2', from: [64, 64], to: [32, 32] },
    { name: 'shrink x1.5', from: [48, 48], to: [32, 32] },
    { name: 'shrink x3 by x2.5 (uneven)', from: [96, 80], to: [32, 32] },
    { name: 'shrink x6 by x5 (box average first)', from: [300, 200], to: [48, 40] },
    { name: 'shrink x15.6 by x1.9 (one axis boxed)', from: [1000, 30], to: [64, 16] },
    { name: 'enlarge x2', from: [16, 16], to: [32, 32] },
    { name: 'enlarge x1.6 by x1.33', from: [20, 24], to: [32, 32] },
    { name: 'enlarge x3.3 by x3.15', from: [10, 13], to: [33, 41] },
    { name: 'shrink x, enlarge y', from: [40, 20], to: [32, 32] },
    { name: 'enlarge x, shrink y', from: [51, 77], to: [64, 64] },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.from.join('x')} -> ${c.to.join('x')}, random and photo-like, within ${TOL}/255`, async (t) => {
      const r = rng(c.from[0] * 31 + c.to[1]);
      for (const [kind, img] of [['random', random(...c.from, r)], ['photo-like', photo(...c.from, r)]] as const) {
        const want = await sharpRaw(img, ...c.from).resize(...c.to, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
        const got = resizeLanczos3(img, ...c.from, 3, ...c.to);
        const d = maxDiff(got, want);
        t.diagnostic(`${kind}: max |diff| ${d}`);
        assert.ok(d <= TOL, `${kind}: max |diff| ${d} > ${TOL}`);
      }
    });
  }

  it('resize().extract().flop(), as the data pipeline calls it, gives sharp\'s pixels (mirror, then the area)', async () => {
    const [w, h] = [50, 40];
    const img = photo(w, h, rng(3));
    const png = await sharpRaw(img, w, h).png().toBuffer();
    const area = { left: 3, top: 5, width: 30, height: 20 };
    for (const mirror of [false, true]) {
      let p = sharp(png).rotate().removeAlpha().toColourspace('srgb').resize(40, 32, { fit: 'fill', kernel: 'lanczos3' }).extract(area);
      if (mirror) p = p.flop();
      const want = await p.raw().toBuffer();
      const got = applyPixelOps(img, w, h, 3, { size: [40, 32], crop: area, mirror });
      assert.deepEqual([got.width, got.height], [area.width, area.height]);
      assert.ok(maxDiff(got.data, want) <= TOL, `mirror ${mirror}: max |diff| ${maxDiff(got.data, want)}`);
    }
  });
});
