// BMP decoding for the data pipeline. The libvips inside sharp has no BMP loader, while
// sd-scripts reads BMP through PIL, so a .bmp training image is decoded here to RGB bytes and
// handed to sharp as raw pixels. Read: the Windows (40-byte and later) and OS/2 (12-byte)
// headers, 1/4/8-bit palettes, 16/24/32-bit pixels with default or BI_BITFIELDS masks, rows
// bottom-up or top-down. Alpha is dropped (training takes RGB, as sd-scripts' convert("RGB")).
// RLE or embedded JPEG/PNG compression is refused with its name.

export class BmpError extends Error {}

export interface RgbImage { data: Uint8Array; width: number; height: number }

const COMPRESSION: Record<number, string> = { 1: 'RLE8', 2: 'RLE4', 4: 'JPEG', 5: 'PNG' };

export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d;
}

/** A channel of a bit mask: where it starts and how many values it holds. */
function channel(mask: number): { shift: number; max: number } {
  if (!mask) return { shift: 0, max: 0 };
  let shift = 0;
  while (!((mask >>> shift) & 1)) shift++;
  return { shift, max: mask >>> shift };
}

export function decodeBmp(buf: Uint8Array): RgbImage {
  if (!isBmp(buf)) throw new BmpError('not a BMP file (no "BM" signature)');
  if (buf.length < 26) throw new BmpError('the BMP header is truncated');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const offset = dv.getUint32(10, true);
  const hsize = dv.getUint32(14, true);
  let width: number, height: number, bpp: number, compression = 0, colors = 0, paletteEntry = 4;
  if (hsize === 12) {
    width = dv.getUint16(18, true); height = dv.getUint16(20, true); bpp = dv.getUint16(24, true); paletteEntry = 3;
  } else if (hsize >= 40) {
    if (buf.length < 14 + 40) throw new BmpError('the BMP header is truncated');
    width = dv.getInt32(18, true); height = dv.getInt32(22, true); bpp = dv.getUint16(28, true);
    compression = dv.getUint32(30, true); colors = dv.getUint32(46, true);
  } else {
    throw new BmpError(`unknown BMP header size ${hsize}`);
  }
  if (COMPRESSION[compression]) throw new BmpError(`${COMPRESSION[compression]}-compressed BMP is not read; save the image as PNG`);
  if (compression !== 0 && compression !== 3 && compression !== 6) throw new BmpError(`unknown BMP compression ${compression}`);
  const topDown = height < 0;
  const h = Math.abs(height);
  if (width <= 0 || h <= 0) throw new BmpError(`the BMP has no pixels (${width}x${height})`);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw new BmpError(`${bpp}-bit BMP is not read`);
  let masks: number[];
  if (compression === 3 || compression === 6) {
    const at = hsize >= 52 ? 54 : 14 + hsize;
    if (buf.length < at + 12) throw new BmpError('the BMP header is truncated');
    masks = [0, 1, 2].map((i) => dv.getUint32(at + 4 * i, true));
  } else {
    masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0x00ff00, 0x0000ff];
  }
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const n = colors || 2 ** bpp;
    const at = 14 + hsize;
    if (buf.length < at + n * paletteEntry) throw new BmpError('the BMP palette is truncated');
    palette = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) palette[i * 3 + c] = buf[at + i * paletteEntry + 2 - c];
  }
  const rowSize = Math.floor((bpp * width + 31) / 32) * 4;
  if (offset + rowSize * h > buf.length) throw new BmpError(`the BMP pixel data is truncated (${buf.length - offset} of ${rowSize * h} bytes)`);
  const chans = masks.map(channel);
  const out = new Uint8Array(width * h * 3);
  for (let y = 0; y < h; y++) {
    const row = offset + (topDown ? y : h - 1 - y) * rowSize;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      if (palette) {
        const bit = x * bpp;
        const idx = (buf[row + (bit >> 3)] >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        if (idx * 3 >= palette.length) throw new BmpError(`the BMP uses colour ${idx} of a ${palette.length / 3}-colour palette`);
        out[o] = palette[idx * 3]; out[o + 1] = palette[idx * 3 + 1]; out[o + 2] = palette[idx * 3 + 2];
      } else if (bpp === 24 && compression === 0) {
        const p = row + x * 3;
        out[o] = buf[p + 2]; out[o + 1] = buf[p + 1]; out[o + 2] = buf[p];
      } else {
        const v = bpp === 16 ? dv.getUint16(row + x * 2, true) : bpp === 32 ? dv.getUint32(row + x * 4, true) : buf[row + x * 3] | (buf[row + x * 3 + 1] << 8) | (buf[row + x * 3 + 2] << 16);
        for (let c = 0; c < 3; c++) {
          const { shift, max } = chans[c];
          out[o + c] = max ? Math.round((((v & masks[c]) >>> shift) * 255) / max) : 0;
        }
      }
    }
  }
  return { data: out, width, height: h };
}
