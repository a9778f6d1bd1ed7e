// Bucketing against the worked examples of sd-scripts (../shared/docs/sd-lora-spec.md §2), and a
// differential run against sd-scripts' rules (library/train_util.py BucketManager.select_bucket,
// round_to_steps; library/model_util.py make_bucket_resolutions; the min/max adjustment of
// BaseDataset.adjust_min_max_bucket_reso_by_steps), written out independently below in sd-scripts'
// own terms (Python's int(), %, argmin) over a few thousand random images.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BucketError, type Size, bucketList, cropOffsets, placeInBuckets, placeNoUpscale } from '../../src/data/buckets.js';
import { stepPlan } from '../../src/data/batches.js';

// ---- sd-scripts, restated ----
const pyInt = (x: number) => Math.trunc(x);
const pyMod = (a: number, b: number) => ((a % b) + b) % b;

function sdMakeBucketResolutions(maxReso: Size, minSize: number, maxSize: number, divisible: number): Size[] {
  const maxArea = maxReso[0] * maxReso[1];
  const resos = new Map<string, Size>();
  const add = (r: Size) => resos.set(r.join(','), r);
  const width0 = pyInt(Math.floor(Math.sqrt(maxArea) / divisible)) * divisible;
  add([width0, width0]);
  for (let width = minSize; width <= maxSize; width += divisible) {
    const height = Math.min(maxSize, pyInt(Math.floor(Math.floor(maxArea / width) / divisible)) * divisible);
    if (height >= minSize) { add([width, height]); add([height, width]); }
  }
  return [...resos.values()].sort((a, b) => (a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1]));
}

/** sd-scripts' select_bucket: the bucket, the resized size and the ar error, or 'ZeroDivisionError'. */
function sdSelectBucket(noUpscale: boolean, maxReso: Size, resos: Size[], steps: number, w: number, h: number): { reso: Size; resized: Size; arError: number } | 'ZeroDivisionError' {
  const ar = w / h;
  let reso: Size, resized: Size;
  if (!noUpscale) {
    const exact = resos.find((r) => r[0] === w && r[1] === h);
    if (exact) reso = exact;
    else {
      const errs = resos.map((r) => Math.abs(r[0] / r[1] - ar));
      reso = resos[errs.indexOf(Math.min(...errs))]; // np.argmin: the first minimum
    }
    const scale = ar > reso[0] / reso[1] ? reso[1] / h : reso[0] / w;
    resized = [pyInt(w * scale + 0.5), pyInt(h * scale + 0.5)];
  } else {
    const maxArea = maxReso[0] * maxReso[1];
    const roundToSteps = (x: number) => { const i = pyInt(x + 0.5); return i - pyMod(i, steps); };
    if (w * h > maxArea) {
      const rw = Math.sqrt(maxArea * ar), rh = maxArea / rw;
      const bWr = roundToSteps(rw), bHinWr = roundToSteps(bWr / ar);
      if (bHinWr === 0) return 'ZeroDivisionError';
      const arWr = bWr / bHinWr;
      const bHr = roundToSteps(rh), bWinHr = roundToSteps(bHr * ar);
      if (bHr === 0) return 'ZeroDivisionError';
      const arHr = bWinHr / bHr;
      resized = Math.abs(arWr - ar) < Math.abs(arHr - ar) ? [bWr, pyInt(bWr / ar + 0.5)] : [pyInt(bHr * ar + 0.5), bHr];
    } else resized = [w, h];
    reso = [resized[0] - pyMod(resized[0], steps), resized[1] - pyMod(resized[1], steps)];
  }
  if (reso[1] === 0) return 'ZeroDivisionError'; // ar_error = reso[0] / reso[1] - aspect_ratio
  return { reso, resized, arError: reso[0] / reso[1] - ar };
}

/** mulberry32: a small seeded generator, so a failing case can be rerun. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case { w: number; h: number; res: Size; steps: number; minReso: number; maxReso: number }

function randomCase(r: () => number): Case {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const steps = pick([8, 16, 32, 64, 24]);
  const res: Size = [pick([256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 1024, 500]), pick([256, 320, 384, 448, 512, 576, 640, 768, 1024, 600])];
  // Mostly ordinary photos, sometimes extreme strips and tiny images.
  const long = Math.floor(64 + r() * 4000);
  const ratio = r() < 0.1 ? 10 + r() * 200 : 1 + r() * 3;
  const short = Math.max(1, Math.round(long / ratio));
  const [w, h] = r() < 0.5 ? [long, short] : [short, long];
  return { w, h, res, steps, minReso: pick([64, 128, 200, 256]), maxReso: pick([1024, 1100, 2048]) };
}

function sdlora(noUpscale: boolean, c: Case) {
  if (noUpscale) return placeNoUpscale(c.w, c.h, c.res, c.steps);
  return placeInBuckets(c.w, c.h, bucketList(c.res, c.minReso, c.maxReso, c.steps));
}

function reference(noUpscale: boolean, c: Case) {
  // BaseDataset adjusts min down and max up to multiples of the step before make_buckets.
  const min = c.minReso - pyMod(c.minReso, c.steps), max = pyMod(c.maxReso, c.steps) ? c.maxReso + c.steps - pyMod(c.maxReso, c.steps) : c.maxReso;
  return sdSelectBucket(noUpscale, c.res, noUpscale ? [] : sdMakeBucketResolutions(c.res, min, max, c.steps), c.steps, c.w, c.h);
}

/** Describes how sdlora and sd-scripts differ on a case, or null when they agree. */
function mismatch(noUpscale: boolean, c: Case): string | null {
  const want = reference(noUpscale, c);
  let got: ReturnType<typeof sdlora>;
  try { got = sdlora(noUpscale, c); } catch (e) {
    if (!(e instanceof BucketError)) throw e;
    // sdlora refuses what sd-scripts divides by zero on, and the empty buckets sd-scripts would try to train.
    const refusable = want === 'ZeroDivisionError' || want.reso[0] === 0 || want.reso[1] === 0;
    return refusable ? null : `sdlora refused (${e.message}), sd-scripts placed it`;
  }
  if (want === 'ZeroDivisionError') return `sd-scripts divides by zero, sdlora placed it at ${got.bucket}`;
  if (want.reso[0] === 0) return `sd-scripts gives an empty bucket ${want.reso}, sdlora accepted it`;
  const same = got.bucket.join() === want.reso.join() && got.resized.join() === want.resized.join() && got.arError === want.arError;
  return same ? null : `sdlora ${got.bucket} (resized ${got.resized}), sd-scripts ${want.reso} (resized ${want.resized})`;
}

describe('aspect-ratio buckets', () => {
  it('lists the 17 buckets of 512x512 with 256/1024/64', () => {
    const b = bucketList([512, 512], 256, 1024, 64).map(([w, h]) => `${w}x${h}`);
    assert.deepEqual(b, ['256x832', '256x896', '256x960', '256x1024', '320x704', '320x768', '384x640', '448x576', '512x512', '576x448', '640x384', '704x320', '768x320', '832x256', '896x256', '960x256', '1024x256']);
  });

  it('assigns, resizes and crops like sd-scripts', () => {
    const buckets = bucketList([512, 512], 256, 1024, 64);
    const a = placeInBuckets(1000, 750, buckets);
    assert.deepEqual(a.bucket, [576, 448]);
    assert.deepEqual(a.resized, [597, 448]);
    assert.deepEqual(cropOffsets(a.resized, a.bucket, () => 0.99, false), [10, 0]);
    const b = placeInBuckets(3000, 2000, buckets);
    assert.deepEqual(b.bucket, [640, 384]);
    assert.deepEqual(b.resized, [640, 427]);
    assert.deepEqual(placeInBuckets(512, 512, buckets).resized, [512, 512]);
    const r = cropOffsets([597, 448], [576, 448], () => 0.5, true);
    assert.ok(r[0] >= 0 && r[0] <= 21 && r[1] === 0);
  });

  it('bucket_no_upscale keeps small images and shrinks large ones', () => {
    const a = placeNoUpscale(1000, 750, [512, 512], 64);
    assert.deepEqual(a.resized, [512, 384]);
    assert.deepEqual(a.bucket, [512, 384]);
    const b = placeNoUpscale(400, 300, [512, 512], 64);
    assert.deepEqual(b.resized, [400, 300]);
    assert.deepEqual(b.bucket, [384, 256]);
  });

  it('matches sd-scripts on the bucket_no_upscale tie of issue 16 (strict comparison)', () => {
    // 768x512 at 640x448, steps 32: width-rounded 640x416 and height-rounded 608x416 err equally.
    const p = placeNoUpscale(768, 512, [640, 448], 32);
    assert.deepEqual(p.bucket, [608, 416]);
    assert.deepEqual(p.resized, [624, 416]);
    assert.equal(mismatch(true, { w: 768, h: 512, res: [640, 448], steps: 32, minReso: 256, maxReso: 1024 }), null);
  });

  it('refuses, naming the size, an aspect ratio sd-scripts divides by zero on', () => {
    assert.equal(reference(true, { w: 4000, h: 20, res: [512, 512], steps: 64, minReso: 256, maxReso: 1024 }), 'ZeroDivisionError');
    assert.throws(() => placeNoUpscale(4000, 20, [512, 512], 64), (e: Error) => e instanceof BucketError && /4000x20 .*bucket_no_upscale/.test(e.message));
    assert.throws(() => placeNoUpscale(20, 4000, [512, 512], 64), BucketError);
    assert.throws(() => placeNoUpscale(40, 300, [512, 512], 64), /empty 0x256 bucket/);
  });

  for (const noUpscale of [true, false]) {
    it(`agrees with sd-scripts on 3000 random images (bucket_no_upscale ${noUpscale})`, () => {
      const r = rng(noUpscale ? 16 : 61);
      const bad: string[] = [];
      const N = 3000;
      for (let i = 0; i < N; i++) {
        const c = randomCase(r);
        const m = mismatch(noUpscale, c);
        if (m) bad.push(`${c.w}x${c.h} at ${c.res.join('x')} steps ${c.steps}: ${m}`);
      }
      assert.equal(bad.length, 0, `${bad.length} of ${N} images differ from sd-scripts:\n${bad.slice(0, 10).join('\n')}`);
    });
  }

  it('computes steps and epochs from batches, accumulation and limits', () => {
    assert.deepEqual(stepPlan(10, 1, 1600), { maxTrainSteps: 1600, epochs: 160, stepsPerEpoch: 10 });
    assert.deepEqual(stepPlan(10, 3, 25), { maxTrainSteps: 25, epochs: 7, stepsPerEpoch: 4 });
    assert.deepEqual(stepPlan(10, 1, 1600, 5), { maxTrainSteps: 50, epochs: 5, stepsPerEpoch: 10 });
  });
});
