// The part of `sharp` the data pipeline uses, on the browser's own decoders: createImageBitmap
// (EXIF orientation applied, no colour conversion) and an OffscreenCanvas for resize, crop and
// flip. Resizing uses the canvas's high-quality smoothing, not libvips' lanczos3, so images that
// need resizing give slightly different pixels than in Node; images already at the bucket size
// (the demo dataset) are byte-identical.
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
    // Both sides are given and stretched ('fill'); the kernel is the canvas' (see the header).
    if (o?.fit !== undefined && o.fit !== 'fill') throw new Error(`sharp.resize fit "${o.fit}" is not implemented in the page`);
    this.size = [w, h];
    return this;
  }
  extract(r: { left: number; top: number; width: number; height: number }): this { this.crop = r; return this; }
  flop(): this { this.mirror = !this.mirror; return this; }
  raw(): this { return this; }

  async toBuffer(_o?: { resolveWithObject?: boolean }): Promise<{ data: Uint8Array; info: { width: number; height: number; channels: number } }> {
    const bmp = await decode(this.input);
    const [rw, rh] = this.size ?? [bmp.width, bmp.height];
    const c = this.crop ?? { left: 0, top: 0, width: rw, height: rh };
    const canvas = new OffscreenCanvas(c.width, c.height);
    const g = canvas.getContext('2d', { willReadFrequently: true })!;
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    if (this.mirror) { g.translate(c.width, 0); g.scale(-1, 1); }
    g.drawImage(bmp, -c.left, -c.top, rw, rh);
    bmp.close();
    const rgba = g.getImageData(0, 0, c.width, c.height).data;
    const rgb = new Uint8Array(c.width * c.height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2]; }
    return { data: rgb, info: { width: c.width, height: c.height, channels: 3 } };
  }
}

export default function sharp(input: Input): Pipeline {
  return new Pipeline(input);
}
