// Image resizing as sharp's resize(w, h, { kernel: 'lanczos3', fit: 'fill' }) does it (libvips'
// vips_resize), in plain TypeScript for the page, on interleaved 8-bit sRGB values (sharp resizes
// 8-bit images in their own values, not in linear light):
// - each axis that shrinks: first a box average by the integer part of (factor / 2) when the factor
//   is 4 or more (libvips' reducing gap of 2), then a lanczos3 filter whose support is stretched by
//   the remaining factor (2 * round(3 * factor) + 1 taps), vertical before horizontal, each pass
//   rounded back to 8 bits; the filter is tabulated at 1/64 pixel steps in 12-bit fixed point;
// - each axis that grows: a Catmull-Rom bicubic (what libvips enlarges with, whatever the kernel),
//   output pixel o read at o / scale - 0.5 (libvips 8.18), 1/64 pixel steps, 12-bit fixed point,
//   rows summed across and rounded before the column sum;
// - edges repeat the border pixel.
// test/web/lanczos3.test.ts checks it against sharp itself.

const STEPS = 64; // sub-pixel positions of the tabulated filters
const SHIFT = 12; // fixed-point bits of the filter weights
const ONE = 1 << SHIFT;
const HALF = ONE >> 1;

interface Image { data: Uint8Array; width: number; height: number; channels: number }

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Round half to even (C's rint in the default rounding mode). */
function rint(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Fixed-point weights of `taps` lanczos3 taps at each of STEPS + 1 sub-pixel positions, for a shrink `factor`. */
function lanczosTable(taps: number, factor: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s <= STEPS; s++) {
    const centre = s / STEPS + taps / 2 - 1;
    const w = Array.from({ length: taps }, (_, i) => lanczos3((i - centre) / factor));
    const sum = w.reduce((a, b) => a + b, 0);
    out.push(Int32Array.from(w, (v) => Math.trunc((v / sum) * ONE)));
  }
  return out;
}

/** The table entry for a sub-pixel position: nearest 1/64 step. */
const step = (x: number) => ((Math.trunc(x * STEPS * 2) & (STEPS * 2 - 1)) + 1) >> 1;

/** How an image's samples line up along one axis: `lines` lines of `len` samples, `stride` apart, starting at start(k). */
interface Lines { len: number; lines: number; stride: number; start: (k: number) => number }

/** The lines along x (one per row and channel) or y (one per column and channel) of a w x h x c image. */
function linesOf(axis: 'x' | 'y', w: number, h: number, c: number): Lines {
  return axis === 'y'
    ? { len: h, lines: w * c, stride: w * c, start: (k) => k }
    : { len: w, lines: h * c, stride: c, start: (k) => Math.floor(k / c) * w * c + (k % c) };
}

/** Box average by an integer factor, the last box repeating the border (libvips' shrink with ceil). */
function boxShrink(src: Uint8Array, a: Lines, dst: Uint8Array, b: Lines, by: number): void {
  // libvips divides by multiplying with floor(2^24 / by) and shifting, which can land one below sum / by.
  const mult = Math.floor(2 ** 32 / (256 * by));
  for (let k = 0; k < a.lines; k++) {
    const s0 = a.start(k), d0 = b.start(k);
    for (let o = 0; o < b.len; o++) {
      let sum = by >> 1;
      for (let j = 0; j < by; j++) sum += src[s0 + Math.min(o * by + j, a.len - 1) * a.stride];
      dst[d0 + o * b.stride] = Math.floor((sum * mult) / 2 ** 24);
    }
  }
}

/** Lanczos3 reduction by `factor` (>= 1) with `extra` output-grid pixels beyond the input (libvips' centring). */
function lanczosReduce(src: Uint8Array, a: Lines, dst: Uint8Array, b: Lines, factor: number, extra: number): void {
  const taps = 2 * rint(3 * factor) + 1;
  const table = lanczosTable(taps, factor);
  const pad = Math.ceil(taps / 2) - 1;
  const offset = (1 + extra) / 2 - 1;
  for (let k = 0; k < a.lines; k++) {
    const s0 = a.start(k), d0 = b.start(k);
    for (let o = 0; o < b.len; o++) {
      const x = (o + 0.5) * factor - 0.5 - offset;
      const ix = Math.trunc(x), w = table[step(x)];
      let sum = 0;
      for (let i = 0; i < taps; i++) sum += w[i] * src[s0 + clamp(ix + i - pad, 0, a.len - 1) * a.stride];
      dst[d0 + o * b.stride] = clamp((sum + HALF) >> SHIFT, 0, 255);
    }
  }
}

/** Shrinks one axis of an image to `outLen` samples. */
function reduceAxis(img: Image, axis: 'x' | 'y', outLen: number): Image {
  const len = axis === 'x' ? img.width : img.height;
  const sized = (n: number): Image => {
    const [w, h] = axis === 'x' ? [n, img.height] : [img.width, n];
    return { data: new Uint8Array(w * h * img.channels), width: w, height: h, channels: img.channels };
  };
  const lines = (m: Image) => linesOf(axis, m.width, m.height, m.channels);
  let factor = 1 / (outLen / len);
  let extra = outLen * factor - len;
  let cur = img;
  const by = Math.max(1, Math.floor(len / outLen / 2));
  if (by > 1) {
    const t = sized(Math.ceil(len / by));
    boxShrink(cur.data, lines(cur), t.data, lines(t), by);
    cur = t;
    factor /= by;
    extra /= by;
  }
  if (factor === 1) return cur;
  const t = sized(outLen);
  lanczosReduce(cur.data, lines(cur), t.data, lines(t), factor, extra);
  return t;
}

/** Catmull-Rom weights (fixed point) at each sub-pixel position. */
function catmullTable(): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s <= STEPS; s++) {
    const t = s / STEPS, t2 = t * t, t3 = t2 * t;
    const w = [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1, -1.5 * t3 + 2 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2];
    out.push(Int32Array.from(w, (v) => Math.trunc(v * ONE)));
  }
  return out;
}

/**
 * Where output sample o of an enlargement from inLen to outLen reads: first tap and its weights.
 * libvips 8.18 (sharp's) maps o to o / scale - 0.5 in the input.
 */
function enlargeTaps(inLen: number, outLen: number, table: Int32Array[]): { first: Int32Array; weights: Int32Array[] } {
  const first = new Int32Array(outLen), weights: Int32Array[] = [];
  const step1 = 1 / (1 / (inLen / outLen)); // the inverse of the scale sharp hands libvips
  for (let o = 0; o < outLen; o++) {
    const x = o * step1 - 0.5;
    const ix = Math.floor(x);
    first[o] = ix - 1;
    weights.push(table[step(x - ix)]);
  }
  return { first, weights };
}

/** Bicubic enlargement of one or both axes (an axis of scale 1 is copied). */
function enlarge(img: Image, ow: number, oh: number): Image {
  const { data, width: w, height: h, channels: c } = img;
  const table = catmullTable();
  const cols = enlargeTaps(w, ow, table), rows = enlargeTaps(h, oh, table);
  // Each of the four rows is summed across and rounded, then the four results down (libvips' order).
  const across = new Int32Array(h * ow * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      const f = cols.first[x], wt = cols.weights[x];
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let i = 0; i < 4; i++) sum += wt[i] * data[(y * w + clamp(f + i, 0, w - 1)) * c + ch];
        across[(y * ow + x) * c + ch] = (sum + HALF) >> SHIFT;
      }
    }
  }
  const out = new Uint8Array(ow * oh * c);
  for (let y = 0; y < oh; y++) {
    const f = rows.first[y], wt = rows.weights[y];
    for (let x = 0; x < ow * c; x++) {
      let sum = 0;
      for (let i = 0; i < 4; i++) sum += wt[i] * across[clamp(f + i, 0, h - 1) * ow * c + x];
      out[y * ow * c + x] = clamp((sum + HALF) >> SHIFT, 0, 255);
    }
  }
  return { data: out, width: ow, height: oh, channels: c };
}

/** Interleaved 8-bit pixels resized to ow x oh as sharp's lanczos3 'fill' resize does. */
export function resizeLanczos3(data: Uint8Array, width: number, height: number, channels: number, ow: number, oh: number): Uint8Array {
  if (ow < 1 || oh < 1) throw new Error(`resize: target size ${ow}x${oh} is empty`);
  let img: Image = { data, width, height, channels };
  if (oh < height) img = reduceAxis(img, 'y', oh);
  if (ow < width) img = reduceAxis(img, 'x', ow);
  if (ow > img.width || oh > img.height) img = enlarge(img, ow, oh);
  return img.data;
}

/** What the page's sharp stand-in applies after decoding: resize (lanczos3, 'fill'), extract, flop. */
export interface PixelOps { size?: [number, number]; crop?: { left: number; top: number; width: number; height: number }; mirror?: boolean }

/**
 * Interleaved 8-bit pixels through resize, extract and flop in sharp's order: for
 * resize().extract().flop() sharp mirrors the resized image and then extracts the area from it.
 */
export function applyPixelOps(data: Uint8Array, width: number, height: number, channels: number, ops: PixelOps): { data: Uint8Array; width: number; height: number } {
  let [w, h] = [width, height];
  if (ops.size && (ops.size[0] !== w || ops.size[1] !== h)) {
    data = resizeLanczos3(data, w, h, channels, ops.size[0], ops.size[1]);
    [w, h] = ops.size;
  }
  const c = ops.crop ?? { left: 0, top: 0, width: w, height: h };
  if (c.left < 0 || c.top < 0 || c.left + c.width > w || c.top + c.height > h) {
    throw new Error(`extract: the area ${c.width}x${c.height} at ${c.left},${c.top} is outside the ${w}x${h} image`);
  }
  const out = new Uint8Array(c.width * c.height * channels);
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const sx = ops.mirror ? w - 1 - (c.left + x) : c.left + x;
      const s = ((c.top + y) * w + sx) * channels, d = (y * c.width + x) * channels;
      for (let k = 0; k < channels; k++) out[d + k] = data[s + k];
    }
  }
  return { data: out, width: c.width, height: c.height };
}
