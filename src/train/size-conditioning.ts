// SDXL's size conditioning of one training image, as sd-scripts records it per sample
// (train_util.py BucketManager.get_crop_ltrb and __getitem__): the image's size before resizing,
// a notional crop offset of the image scaled to fit inside its bucket (centred, the way Stability
// AI prepared SDXL's data, whatever crop the trainer actually took), and the bucket as the target.
// A flipped image's left offset is measured from the other side. Heights come first.
import type { TrainImage } from '../data/dataset.js';
import type { SizeConditioning } from '../families/family.js';

/** sd-scripts get_crop_ltrb: [left, top, right, bottom] of the image fitted inside the bucket (floats, floored offsets). */
export function cropLtrb(bucket: readonly [number, number], image: readonly [number, number]): [number, number, number, number] {
  const [bw, bh] = bucket, [iw, ih] = image;
  const imageAr = iw / ih;
  const [rw, rh] = bw / bh > imageAr ? [bh * imageAr, bh] : [bw, bw / imageAr];
  const left = Math.floor((bw - rw) / 2), top = Math.floor((bh - rh) / 2);
  return [left, top, left + rw, top + rh];
}

/** The six time-id inputs of one image in its bucket (Python int() truncation as sd-scripts). */
export function imageSizeConditioning(img: Pick<TrainImage, 'size' | 'placement'>, flipped: boolean): SizeConditioning {
  const [bw, bh] = img.placement.bucket;
  const [l, t, r] = cropLtrb(img.placement.bucket, img.size);
  const left = flipped ? bw - r : l;
  return { originalSize: [img.size[1], img.size[0]], cropTopLeft: [Math.trunc(t), Math.trunc(left)], targetSize: [bh, bw] };
}
