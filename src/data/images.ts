// Image decoding and preparation with sharp: size probing, covering resize (lanczos), crop to
// the bucket, flip, and [-1, 1] CHW floats.
import sharp from 'sharp';
import type { Size } from './buckets.js';

export class ImageError extends Error {}

export async function imageSize(file: string): Promise<Size> {
  try {
    const m = await sharp(file).metadata();
    if (!m.width || !m.height) throw new Error('no dimensions');
    // EXIF orientations 5-8 swap the sides once the image is rotated upright.
    return m.orientation && m.orientation >= 5 ? [m.height, m.width] : [m.width, m.height];
  } catch (e) {
    throw new ImageError(`${file}: cannot read the image (${(e as Error).message})`);
  }
}

export interface PrepareOptions {
  resized: Size;
  bucket: Size;
  offset: [number, number];
  flip: boolean;
}

/** RGB bytes of the prepared image (bucket-sized, HWC). */
export async function prepareImageRgb(file: string, o: PrepareOptions, original: Size): Promise<Uint8Array> {
  try {
    let img = sharp(file).rotate().removeAlpha().toColourspace('srgb');
    if (o.resized[0] !== original[0] || o.resized[1] !== original[1]) {
      img = img.resize(o.resized[0], o.resized[1], { fit: 'fill', kernel: 'lanczos3' });
    }
    img = img.extract({ left: o.offset[0], top: o.offset[1], width: o.bucket[0], height: o.bucket[1] });
    if (o.flip) img = img.flop();
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (e) {
    throw new ImageError(`${file}: cannot prepare the image (${(e as Error).message})`);
  }
}

/** HWC bytes to CHW floats in [-1, 1]. */
export function rgbToTensorData(rgb: Uint8Array, w: number, h: number): Float32Array {
  const out = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[c * w * h + i] = rgb[i * 3 + c] / 127.5 - 1;
  return out;
}
