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

/** bucket_no_upscale: shrink only when above max_area, then floor each side to the step. */
export function placeNoUpscale(w: number, h: number, res: Size, step: number): Placement {
  const maxArea = res[0] * res[1];
  const ar = w / h;
  let resized: Size = [w, h];
  if (w * h > maxArea) {
    const rw = Math.sqrt(maxArea * ar), rh = maxArea / rw;
    const r2s = (x: number) => Math.floor(Math.floor(x + 0.5) / step) * step;
    const bwA = r2s(rw), bhA = r2s(bwA / ar);
    const bhB = r2s(rh), bwB = r2s(bhB * ar);
    const errA = Math.abs(bwA / bhA - ar), errB = Math.abs(bwB / bhB - ar);
    resized = errA <= errB ? [bwA, Math.floor(bwA / ar + 0.5)] : [Math.floor(bhB * ar + 0.5), bhB];
  }
  const bucket: Size = [Math.floor(resized[0] / step) * step, Math.floor(resized[1] / step) * step];
  return { bucket, resized, arError: bucket[0] / bucket[1] - ar };
}

/** Crop offsets of the resized image inside its bucket (center, or random with randomCrop). */
export function cropOffsets(resized: Size, bucket: Size, random: () => number, randomCrop: boolean): [number, number] {
  const ex = resized[0] - bucket[0], ey = resized[1] - bucket[1];
  const pick = (e: number) => (e <= 0 ? 0 : randomCrop ? Math.floor(random() * (e + 1)) : Math.floor(e / 2));
  return [pick(ex), pick(ey)];
}
