// The part of `sharp` the data pipeline uses, on the browser's own decoder: createImageBitmap
// (EXIF orientation applied, no colour conversion), drawn at its own size on an OffscreenCanvas to
// read the pixels; resize (lanczos3, 'fill'), extract and flop then run in resize.ts as sharp does
// them, so the page prepares images as the CLI does (decoders aside: a JPEG may decode a little
// differently in the browser than in libvips).
import { applyPixelOps } from './resize.js';
import { getFile } from './vfs.js';

type Input = string | Uint8Array;

async function blobOf(input: Input): Promise<Blob> {
  if (typeof input !== 'string') return new Blob([input as BlobPart]);
  const d = getFile(input, 'open');
  return d instanceof Blob ? d : new Blob([d as BlobPart]);
}

async function decode(input: Input): Promise<ImageBitmap> {
  return createImageBitmap(await blobOf(input), { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
}

class Pipeline {
  private size?: [number, number];
  private crop?: { left: number; top: number; width: number; height: number };
  private mirror = false;
  constructor(private input: Input) {}

  async metadata(): Promise<{ width: number; height: number; orientation?: number; format?: string }> {
    const bmp = await decode(this.input);
    const r = { width: bmp.width, height: bmp.height };
    bmp.close();
    return r;
  }

  rotate(angle?: number): this {
    // Without an angle sharp applies the EXIF orientation, which createImageBitmap already did.
    if (angle !== undefined) throw new Error('sharp.rotate(angle) is not implemented in the page');
    return this;
  }
  removeAlpha(): this { return this; } // getImageData's alpha is dropped when reading RGB below
  toColourspace(space: string): this {
    if (space !== 'srgb') throw new Error(`sharp.toColourspace(${space}): the page decodes to sRGB only`);
    return this;
  }
  resize(w: number, h: number, o?: { fit?: string; kernel?: string }): this {
    // Both sides are given and stretched ('fill'), with lanczos3 (resize.ts), sharp's default kernel.
    if (o?.fit !== undefined && o.fit !== 'fill') throw new Error(`sharp.resize fit "${o.fit}" is not implemented in the page`);
    if (o?.kernel !== undefined && o.kernel !== 'lanczos3') throw new Error(`sharp.resize kernel "${o.kernel}" is not implemented in the page (lanczos3 is)`);
    this.size = [w, h];
    return this;
  }
  extract(r: { left: number; top: number; width: number; height: number }): this { this.crop = r; return this; }
  flop(): this { this.mirror = !this.mirror; return this; }
  raw(): this { return this; }

  async toBuffer(_o?: { resolveWithObject?: boolean }): Promise<{ data: Uint8Array; info: { width: number; height: number; channels: number } }> {
    const bmp = await decode(this.input);
    const [w, h] = [bmp.width, bmp.height];
    const canvas = new OffscreenCanvas(w, h);
    const g = canvas.getContext('2d', { willReadFrequently: true })!;
    g.drawImage(bmp, 0, 0);
    bmp.close();
    const rgba = g.getImageData(0, 0, w, h).data;
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2]; }
    const r = applyPixelOps(rgb, w, h, 3, { size: this.size, crop: this.crop, mirror: this.mirror });
    return { data: r.data, info: { width: r.width, height: r.height, channels: 3 } };
  }
}

export default function sharp(input: Input): Pipeline {
  return new Pipeline(input);
}
