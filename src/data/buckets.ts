// Aspect-ratio bucketing exactly as sd-scripts (§2): the bucket list, assigning an image to a
// bucket, the covering resize and the crop, and bucket_no_upscale's per-image buckets.
export type Size = [number, number]; // [width, height]

export function bucketList(res: Size, minSize: number, maxSize: number, step: number): Size[] {
  const maxArea = res[0] * res[1];
  const mn = Math.floor(minSize / step) * step, mx = Math.ceil(maxSize / step) * step;
  const set = new Map<string, Size>();
  const add = (w: number, h: number) => set.set(`${w}x${h}`, [w, h]);
  const s = Math.floor(Math.sqrt(maxArea) / step) * step;
  add(s, s);
  for (let w = mn; w <= mx; w += step) {
    const h = Math.min(mx, Math.floor(Math.floor(maxArea / w) / step) * step);
    if (h >= mn) { add(w, h); add(h, w); }
  }
  return [...set.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

export interface Placement {
  bucket: Size;
  /** Size after the (covering) resize, before cropping. */
  resized: Size;
  arError: number;
}

/** Nearest bucket by aspect ratio (ties: first in sorted order), then the size that covers it. */
export function placeInBuckets(w: number, h: number, buckets: Size[]): Placement {
  const ar = w / h;
  let bucket = buckets.find((b) => b[0] === w && b[1] === h);
  if (!bucket) {
    let best = Infinity;
    for (const b of buckets) { const d = Math.abs(b[0] / b[1] - ar); if (d < best) { best = d; bucket = b; } }
  }
  const b = bucket!;
  const scale = ar > b[0] / b[1] ? b[1] / h : b[0] / w;
  return { bucket: b, resized: [Math.floor(w * scale + 0.5), Math.floor(h * scale + 0.5)], arError: b[0] / b[1] - ar };
}

/** An image that bucket_no_upscale cannot place (sd-scripts divides by zero on it). */
export class BucketError extends Error {}

/** sd-scripts' round_to_steps: round half up to an integer, then down to a multiple of step. */
const roundToSteps = (x: number, step: number) => {
  const r = Math.floor(x + 0.5);
  return r - (r % step);
};

/**
 * bucket_no_upscale (sd-scripts BucketManager.select_bucket): an image above max_area shrinks to
 * about max_area, its width or its height rounded to the step, whichever keeps the aspect ratio
 * closer; on a tie sd-scripts' strict comparison takes the height-rounded size. The bucket is the
 * resized size floored to the step on each side.
 */
export function placeNoUpscale(w: number, h: number, res: Size, step: number): Placement {
  const maxArea = res[0] * res[1];
  const ar = w / h;
  let resized: Size = [w, h];
  if (w * h > maxArea) {
    const rw = Math.sqrt(maxArea * ar), rh = maxArea / rw;
    const bwW = roundToSteps(rw, step), bhW = roundToSteps(bwW / ar, step);
    const bhH = roundToSteps(rh, step), bwH = roundToSteps(bhH * ar, step);
    if (bhW === 0 || bhH === 0) throw new BucketError(`${w}x${h} has too extreme an aspect ratio for bucket_no_upscale at ${res[0]}x${res[1]} with bucket_reso_steps ${step}: a side of its bucket rounds to 0 (sd-scripts fails here with a division by zero)`);
    const errW = Math.abs(bwW / bhW - ar), errH = Math.abs(bwH / bhH - ar);
    resized = errW < errH ? [bwW, Math.floor(bwW / ar + 0.5)] : [Math.floor(bhH * ar + 0.5), bhH];
  }
  const bucket: Size = [resized[0] - (resized[0] % step), resized[1] - (resized[1] % step)];
  if (bucket[0] === 0 || bucket[1] === 0) throw new BucketError(`${w}x${h} gives an empty ${bucket[0]}x${bucket[1]} bucket with bucket_no_upscale at ${res[0]}x${res[1]} and bucket_reso_steps ${step}: a side is below the step after resizing`);
  return { bucket, resized, arError: bucket[0] / bucket[1] - ar };
}

/** Crop offsets of the resized image inside its bucket (center, or random with randomCrop). */
export function cropOffsets(resized: Size, bucket: Size, random: () => number, randomCrop: boolean): [number, number] {
  const ex = resized[0] - bucket[0], ey = resized[1] - bucket[1];
  const pick = (e: number) => (e <= 0 ? 0 : randomCrop ? Math.floor(random() * (e + 1)) : Math.floor(e / 2));
  return [pick(ex), pick(ey)];
}
