// Image decoding and preparation with sharp: size probing, covering resize (lanczos), crop to
// the bucket, flip, and [-1, 1] CHW floats.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';
import type { Size } from './buckets.js';

export class ImageError extends Error {}

/** libvips error text as one line: its lines repeat once per decode attempt. */
function vipsMessage(e: unknown): string {
  const lines = String((e as Error).message ?? e).split('\n').map((l) => l.trim()).filter(Boolean);
  return [...new Set(lines)].join('; ');
}

/**
 * Sizes below 1 pixel reach libvips as invalid properties and print GLib-CRITICAL text on stderr
 * before failing, so they are refused here with the image's name instead.
 */
function assertDrawable(file: string, o: PrepareOptions, original: Size): void {
  if (Math.min(...o.resized, ...o.bucket) >= 1) return;
  throw new ImageError(`${file}: the image is ${original[0]}x${original[1]}, too small for training (it would be resized to `
    + `${o.resized[0]}x${o.resized[1]} in a ${o.bucket[0]}x${o.bucket[1]} bucket); remove it, or turn off bucket_no_upscale`);
}

/**
 * A sharp pipeline on an image file. BMP files are decoded by src/data/bmp.ts where libvips has no
 * loader for them (Node's sharp); the page's sharp decodes them with the browser.
 */
export function openImage(file: string): Sharp {
  const libvipsReadsBmp = !sharp.format || sharp.format.magick?.input?.file;
  if (!libvipsReadsBmp && path.extname(file).toLowerCase() === '.bmp') {
    const buf = readFileSync(file);
    if (isBmp(buf)) {
      const { data, width, height } = decodeBmp(buf);
      return sharp(data, { raw: { width, height, channels: 3 } });
    }
  }
  return sharp(file);
}

/** The upright size of an image, after checking that the whole file decodes. */
export async function imageSize(file: string): Promise<Size> {
  try {
    const m = await openImage(file).metadata();
    if (!m.width || !m.height) throw new Error('no dimensions');
    // Decode every pixel once now: a truncated file has a valid header and would only fail mid-run.
    await openImage(file).raw().toBuffer();
    // EXIF orientations 5-8 swap the sides once the image is rotated upright.
    return m.orientation && m.orientation >= 5 ? [m.height, m.width] : [m.width, m.height];
  } catch (e) {
    throw new ImageError(`${file}: cannot read the image (${vipsMessage(e)})`);
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
  assertDrawable(file, o, original);
  try {
    let img = openImage(file).rotate().removeAlpha().toColourspace('srgb');
    if (o.resized[0] !== original[0] || o.resized[1] !== original[1]) {
      img = img.resize(o.resized[0], o.resized[1], { fit: 'fill', kernel: 'lanczos3' });
    }
    img = img.extract({ left: o.offset[0], top: o.offset[1], width: o.bucket[0], height: o.bucket[1] });
    if (o.flip) img = img.flop();
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (e) {
    throw new ImageError(`${file}: cannot decode the image, it may be truncated or corrupt (${vipsMessage(e)})`);
  }
}

/** HWC bytes to CHW floats in [-1, 1]. */
export function rgbToTensorData(rgb: Uint8Array, w: number, h: number): Float32Array {
  const out = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[c * w * h + i] = rgb[i * 3 + c] / 127.5 - 1;
  return out;
}

/**
 * sd-scripts color_aug: with probability 0.33, either a hue shift of U(-8, 8) OpenCV hue units
 * (of 180) or a gamma of U(0.95, 1.05) on the 0-255 values, in place.
 */
export function colorAugment(rgb: Uint8Array, random: () => number): void {
  if (random() >= 0.33) return;
  if (random() < 0.5) {
    const g = 0.95 + 0.1 * random();
    for (let i = 0; i < rgb.length; i++) rgb[i] = Math.min(255, Math.round(rgb[i] ** g));
    return;
  }
  const shift = ((random() * 16 - 8) / 180) * 360;
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i] / 255, g = rgb[i + 1] / 255, b = rgb[i + 2] / 255;
    const mx = Math.max(r, g, b), mn = Math.min(r, g, b), d = mx - mn;
    if (d === 0) continue;
    let h = mx === r ? ((g - b) / d) % 6 : mx === g ? (b - r) / d + 2 : (r - g) / d + 4;
    h = (h * 60 + shift + 360) % 360;
    const s = d / mx, v = mx;
    const c = v * s, x = c * (1 - Math.abs(((h / 60) % 2) - 1)), m = v - c;
    const [rr, gg, bb] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
    rgb[i] = Math.round((rr + m) * 255); rgb[i + 1] = Math.round((gg + m) * 255); rgb[i + 2] = Math.round((bb + m) * 255);
  }
}
