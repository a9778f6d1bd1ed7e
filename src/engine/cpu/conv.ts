// conv2d and its two gradients as GEMMs over an im2col matrix built one image and group at a time,
// and for big images one band of output rows at a time, so the column buffer stays bounded (a
// 512 px VAE decode's 256-channel 3x3 convolutions would need 2.4 GB of columns, twice over in the
// wasm GEMM, past WebAssembly's 4 GiB). 1x1 stride-1 convolutions skip im2col.
import type { ConvShapes } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, colBias, gemm, gemmFillB, gemmInWasm, kernelPool, mat } from './gemm.js';
import { scratch } from './scratch.js';

interface Geometry {
  n: number; cin: number; h: number; w: number; cout: number; cg: number; cog: number;
  kh: number; kw: number; oh: number; ow: number; sh: number; sw: number; ph: number; pw: number;
  g: number; kk: number; ohw: number; pointwise: boolean;
}

function geometry(s: ConvShapes): Geometry {
  const [n, cin, h, w] = s.x;
  const [cout, cg, kh, kw] = s.w;
  const [, , oh, ow] = s.out;
  const g = s.groups;
  const [sh, sw] = s.stride;
  const [ph, pw] = s.padding;
  const pointwise = kh === 1 && kw === 1 && sh === 1 && sw === 1 && ph === 0 && pw === 0;
  return { n, cin, h, w, cout, cg, cog: cout / g, kh, kw, oh, ow, sh, sw, ph, pw, g, kk: cg * kh * kw, ohw: oh * ow, pointwise };
}

/**
 * Writes the im2col rows of one image into `col`, whose rows are `ld` long, starting at column
 * `c0` (several images side by side form one wide GEMM operand).
 */
function im2col(x: FloatArray, xOff: number, G: Geometry, col: FloatArray, ld: number, c0: number): void {
  const { h, w, kh, kw, oh, ow, sh, sw, ph, pw, cg } = G;
  let row = 0;
  for (let c = 0; c < cg; c++) {
    const xc = xOff + c * h * w;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row++) {
        // Output columns whose input column lies inside the image: [ox0, ox1).
        const ox0 = Math.min(ow, Math.max(0, Math.ceil((pw - j) / sw)));
        const ox1 = Math.max(ox0, Math.min(ow, Math.floor((w - 1 + pw - j) / sw) + 1));
        let o = row * ld + c0;
        for (let oy = 0; oy < oh; oy++, o += ow) {
          const iy = oy * sh - ph + i;
          if (iy < 0 || iy >= h) { col.fill(0, o, o + ow); continue; }
          const src = xc + iy * w - pw + j;
          for (let ox = 0; ox < ox0; ox++) col[o + ox] = 0;
          // A plain loop: rows are short, and a subarray per row costs more than the copy.
          if (sw === 1) for (let ox = ox0; ox < ox1; ox++) col[o + ox] = x[src + ox];
          else for (let ox = ox0; ox < ox1; ox++) col[o + ox] = x[src + ox * sw];
          for (let ox = ox1; ox < ow; ox++) col[o + ox] = 0;
        }
      }
    }
  }
}

/** Adds the columns [c0, c0 + ohw) of `col` (rows `ld` long) back onto one image's gradient. */
function col2imAdd(col: FloatArray, G: Geometry, dx: FloatArray, dxOff: number, ld: number, c0: number): void {
  const { h, w, kh, kw, oh, ow, sh, sw, ph, pw, cg } = G;
  let row = 0;
  for (let c = 0; c < cg; c++) {
    const xc = dxOff + c * h * w;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row++) {
        let o = row * ld + c0;
        for (let oy = 0; oy < oh; oy++, o += ow) {
          const iy = oy * sh - ph + i;
          if (iy < 0 || iy >= h) continue;
          const r = xc + iy * w;
          for (let ox = 0; ox < ow; ox++) {
            const ix = ox * sw - pw + j;
            if (ix >= 0 && ix < w) dx[r + ix] += col[o + ox];
          }
        }
      }
    }
  }
}

/** The [kk, nb*ohw] column matrix of images b0..b0+nb and group g at `off` (1x1 convs: a copy). */
function columns(x: FloatArray, G: Geometry, b0: number, nb: number, g: number, col: FloatArray, off: number): void {
  const ld = nb * G.ohw;
  for (let b = 0; b < nb; b++) {
    const xOff = ((b0 + b) * G.cin + g * G.cg) * G.h * G.w;
    if (G.pointwise) for (let c = 0; c < G.cg; c++) col.set(x.subarray(xOff + c * G.ohw, xOff + (c + 1) * G.ohw), off + c * ld + b * G.ohw);
    else im2col(x, xOff, G, col, ld, off + b * G.ohw);
  }
}

/**
 * The column matrix of `columns` built by the wasm threads: the nb images' group channels are
 * copied to byte `free` of the kernels' memory and expanded from there into `mem` at element `off`.
 */
function columnsWasm(x: FloatArray, G: Geometry, b0: number, nb: number, g: number, mem: Float32Array, off: number, free: number): void {
  const plane = G.cg * G.h * G.w;
  for (let b = 0; b < nb; b++) {
    const xOff = ((b0 + b) * G.cin + g * G.cg) * G.h * G.w;
    mem.set(x.subarray(xOff, xOff + plane), (free >>> 2) + b * plane);
  }
  kernelPool()!.runIm2col(free, nb, G.cg, G.h << 16 | G.w, G.kh << 16 | G.kw, G.oh << 16 | G.ow, G.sh << 16 | G.sw, G.ph << 16 | G.pw,
    off * 4, nb * G.ohw, G.kk, G.kk * nb * G.ohw >= 1 << 15 ? kernelPool()!.threads : 1);
}

/**
 * B of a convolution's GEMM: its column matrix, by the wasm threads when written into the kernels'
 * memory (`free` given, im2colBytes reserved there), else in JS. 1x1 convolutions copy rows in JS.
 */
function columnsFill(x: FloatArray, G: Geometry, b0: number, nb: number, g: number) {
  return (mem: Float32Array, off: number, free?: number) => {
    if (free !== undefined && !G.pointwise) columnsWasm(x, G, b0, nb, g, mem, off, free);
    else columns(x, G, b0, nb, g, mem, off);
  };
}
const im2colBytes = (G: Geometry, nb: number) => (G.pointwise ? 0 : nb * G.cg * G.h * G.w * 4);

/** Below this many column values the input gradient folds the columns in JS. */
const COL2IM_WASM_MIN = 1 << 14;

/** Images per GEMM: as many as fit a column buffer of about 16M values. */
const chunkOf = (G: Geometry) => Math.max(1, Math.min(G.n, Math.floor((1 << 24) / Math.max(1, G.kk * G.ohw))));

/** [nb images, channels c0..c0+cn) of a [N, C, ohw] array <-> a [cn, nb*ohw] matrix. */
function gatherChannels(src: FloatArray, b0: number, nb: number, C: number, c0: number, cn: number, ohw: number, dst: FloatArray): void {
  for (let c = 0; c < cn; c++) for (let b = 0; b < nb; b++) {
    const s = ((b0 + b) * C + c0 + c) * ohw;
    dst.set(src.subarray(s, s + ohw), (c * nb + b) * ohw);
  }
}
function scatterChannels(src: FloatArray, b0: number, nb: number, C: number, c0: number, cn: number, ohw: number, dst: FloatArray): void {
  for (let c = 0; c < cn; c++) for (let b = 0; b < nb; b++) {
    const d = ((b0 + b) * C + c0 + c) * ohw;
    dst.set(src.subarray((c * nb + b) * ohw, (c * nb + b + 1) * ohw), d);
  }
}

/** Column values (kernel taps x output positions) above which one image is convolved in bands of output rows. */
let bandValues = 1 << 26;
/** Sets the band threshold (tests use small ones to cover banding on small images); returns the old one. */
export function setConvBandValues(n: number): number {
  const was = bandValues;
  bandValues = n;
  return was;
}

interface Band { y0: number; y1: number; r0: number; r1: number; s: ConvShapes }

/**
 * Output rows [y0, y1) of one image with the input rows [r0, r1) they read, as a convolution of its
 * own: the band's input is those rows, its top padding what lies above row 0 (rows past the bottom
 * read as zeros by the usual bounds check). Null when the image's columns fit under the threshold.
 */
function bands(s: ConvShapes, G: Geometry): Band[] | null {
  if (G.pointwise || G.kk * G.ohw <= bandValues) return null;
  const rows = Math.max(1, Math.floor(bandValues / (G.kk * G.ow)));
  const out: Band[] = [];
  for (let y0 = 0; y0 < G.oh; y0 += rows) {
    const y1 = Math.min(G.oh, y0 + rows), top = y0 * G.sh - G.ph;
    const r0 = Math.max(0, top), r1 = Math.max(r0, Math.min(G.h, (y1 - 1) * G.sh - G.ph + G.kh));
    out.push({ y0, y1, r0, r1, s: { ...s, x: [1, G.cin, r1 - r0, G.w], out: [1, G.cout, y1 - y0, G.ow], padding: [r0 - top, G.pw] } });
  }
  return out;
}

/** Rows [r0, r1) of every channel of image b of a [N, C, H, W] array, as a [1, C, r1 - r0, W] array. */
function rowsOf(a: FloatArray, b: number, C: number, H: number, W: number, r0: number, r1: number, dtype: FloatDType): FloatArray {
  const n = (r1 - r0) * W, out = allocArray(dtype, C * n) as FloatArray;
  for (let c = 0; c < C; c++) {
    const s = ((b * C + c) * H + r0) * W;
    out.set(a.subarray(s, s + n), c * n);
  }
  return out;
}

/** Writes (or adds) a [1, C, r1 - r0, W] band back into rows [r0, r1) of image b of a [N, C, H, W] array. */
function putRows(band: FloatArray, a: FloatArray, b: number, C: number, H: number, W: number, r0: number, r1: number, add: boolean): void {
  const n = (r1 - r0) * W;
  for (let c = 0; c < C; c++) {
    const d = ((b * C + c) * H + r0) * W;
    if (!add) a.set(band.subarray(c * n, (c + 1) * n), d);
    else for (let i = 0; i < n; i++) a[d + i] += band[c * n + i];
  }
}

export function conv2d(x: FloatArray, w: FloatArray, bias: FloatArray | null, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s), banded = bands(s, G);
  if (!banded) return conv2dImages(x, w, bias, G, dtype);
  const y = allocArray(dtype, G.n * G.cout * G.ohw) as FloatArray;
  for (let b = 0; b < G.n; b++) for (const { y0, y1, r0, r1, s: bs } of banded) {
    const part = conv2dImages(rowsOf(x, b, G.cin, G.h, G.w, r0, r1, dtype), w, bias, geometry(bs), dtype);
    putRows(part, y, b, G.cout, G.oh, G.ow, y0, y1, false);
  }
  return y;
}

export function conv2dGradInput(gy: FloatArray, w: FloatArray, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s), banded = bands(s, G);
  if (!banded) return gradInputImages(gy, w, G, dtype);
  // Neighbouring bands read overlapping input rows: their gradients add up there.
  const dx = allocArray(dtype, G.n * G.cin * G.h * G.w) as FloatArray;
  for (let b = 0; b < G.n; b++) for (const { y0, y1, r0, r1, s: bs } of banded) {
    const part = gradInputImages(rowsOf(gy, b, G.cout, G.oh, G.ow, y0, y1, dtype), w, geometry(bs), dtype);
    putRows(part, dx, b, G.cin, G.h, G.w, r0, r1, true);
  }
  return dx;
}

export function conv2dGradWeight(gy: FloatArray, x: FloatArray, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s), banded = bands(s, G);
  if (!banded) return gradWeightImages(gy, x, G, dtype);
  const dw = allocArray(dtype, G.cout * G.kk) as FloatArray;
  for (let b = 0; b < G.n; b++) for (const { y0, y1, r0, r1, s: bs } of banded) {
    const part = gradWeightImages(rowsOf(gy, b, G.cout, G.oh, G.ow, y0, y1, dtype), rowsOf(x, b, G.cin, G.h, G.w, r0, r1, dtype), geometry(bs), dtype);
    for (let i = 0; i < dw.length; i++) dw[i] += part[i];
  }
  return dw;
}

function conv2dImages(x: FloatArray, w: FloatArray, bias: FloatArray | null, G: Geometry, dtype: FloatDType): FloatArray {
  const y = allocArray(dtype, G.n * G.cout * G.ohw) as FloatArray;
  const chunk = chunkOf(G);
  for (let b0 = 0; b0 < G.n; b0 += chunk) {
    const nb = Math.min(chunk, G.n - b0), ld = nb * G.ohw;
    for (let g = 0; g < G.g; g++) {
      const A = mat(w, g * G.cog * G.kk, G.kk, 1);
      // The product starts from the bias of each output channel (no pass of its own afterwards).
      const init = bias ? colBias(bias, G.cog, ld, g * G.cog) : undefined;
      if (nb === 1 && G.pointwise) {
        gemm(G.cog, G.ohw, G.kk, A, mat(x, (b0 * G.cin + g * G.cg) * G.h * G.w, G.ohw, 1), y, (b0 * G.cout + g * G.cog) * G.ohw, false, init);
        continue;
      }
      // im2col rows of every image in the chunk, side by side, written straight into the GEMM's B.
      const fill = columnsFill(x, G, b0, nb, g);
      const out = nb === 1 ? y : scratch('conv.out', dtype, G.cog * ld);
      const outOff = nb === 1 ? (b0 * G.cout + g * G.cog) * G.ohw : 0;
      if (dtype === 'f32') gemmFillB(G.cog, ld, G.kk, A, fill, out as Float32Array, outOff, false, { init, scratch: im2colBytes(G, nb) });
      else {
        const col = scratch('im2col', dtype, G.kk * ld);
        columns(x, G, b0, nb, g, col, 0);
        gemm(G.cog, ld, G.kk, A, mat(col, 0, ld, 1), out, outOff, false, init);
      }
      if (nb > 1) scatterChannels(out, b0, nb, G.cout, g * G.cog, G.cog, G.ohw, y);
    }
  }
  return y;
}

function gradInputImages(gy: FloatArray, w: FloatArray, G: Geometry, dtype: FloatDType): FloatArray {
  const dx = allocArray(dtype, G.n * G.cin * G.h * G.w) as FloatArray;
  const chunk = chunkOf(G);
  for (let b0 = 0; b0 < G.n; b0 += chunk) {
    const nb = Math.min(chunk, G.n - b0), ld = nb * G.ohw;
    for (let g = 0; g < G.g; g++) {
      // W_g^T [kk, cog] @ gy [cog, nb*ohw]
      const A = mat(w, g * G.cog * G.kk, 1, G.kk);
      let B = mat(gy, (b0 * G.cout + g * G.cog) * G.ohw, G.ohw, 1);
      if (nb > 1) {
        const gyc = scratch('conv.gy', dtype, G.cog * ld);
        gatherChannels(gy, b0, nb, G.cout, g * G.cog, G.cog, G.ohw, gyc);
        B = mat(gyc, 0, ld, 1);
      }
      if (G.pointwise && nb === 1) { gemm(G.kk, G.ohw, G.cog, A, B, dx, (b0 * G.cin + g * G.cg) * G.h * G.w, false); continue; }
      // f32 with the wasm pool: the threads fold the columns into planes where the GEMM left them.
      if (dtype === 'f32' && !G.pointwise && G.kk * ld >= COL2IM_WASM_MIN && gemmInWasm(G.kk, ld, G.cog, A, B, (p, colByte, free) => {
        const hw = G.h * G.w, planes = nb * G.cg;
        const mem = new Float32Array(p.reserve(free + planes * hw * 4));
        p.runCol2im(colByte, ld, free, G.cg, G.h << 16 | G.w, G.kh << 16 | G.kw, G.oh << 16 | G.ow, G.sh << 16 | G.sw, G.ph << 16 | G.pw, planes,
          G.kk * ld >= 1 << 16 ? p.threads : 1);
        for (let b = 0; b < nb; b++) {
          const s = (free >>> 2) + b * G.cg * hw;
          dx.set(mem.subarray(s, s + G.cg * hw), ((b0 + b) * G.cin + g * G.cg) * hw);
        }
      })) continue;
      const col = scratch('im2col', dtype, G.kk * ld);
      gemm(G.kk, ld, G.cog, A, B, col, 0, false);
      if (G.pointwise) scatterChannels(col, b0, nb, G.cin, g * G.cg, G.cg, G.ohw, dx);
      else for (let b = 0; b < nb; b++) col2imAdd(col, G, dx, ((b0 + b) * G.cin + g * G.cg) * G.h * G.w, ld, b * G.ohw);
    }
  }
  return dx;
}

function gradWeightImages(gy: FloatArray, x: FloatArray, G: Geometry, dtype: FloatDType): FloatArray {
  const dw = allocArray(dtype, G.cout * G.kk) as FloatArray;
  const chunk = chunkOf(G);
  for (let b0 = 0; b0 < G.n; b0 += chunk) {
    const nb = Math.min(chunk, G.n - b0), ld = nb * G.ohw;
    for (let g = 0; g < G.g; g++) {
      let A = mat(gy, (b0 * G.cout + g * G.cog) * G.ohw, G.ohw, 1);
      if (nb > 1) {
        const gyc = scratch('conv.gy', dtype, G.cog * ld);
        gatherChannels(gy, b0, nb, G.cout, g * G.cog, G.cog, G.ohw, gyc);
        A = mat(gyc, 0, ld, 1);
      }
      if (dtype === 'f32' && !G.pointwise) {
        // gy [cog, nb*ohw] @ col^T: the columns ([kk, nb*ohw], contiguous rows) are written into
        // the GEMM's memory as they are and transposed by the packing.
        gemmFillB(G.cog, G.kk, ld, A, columnsFill(x, G, b0, nb, g), dw as Float32Array, g * G.cog * G.kk, true, { transposed: true, scratch: im2colBytes(G, nb) });
        continue;
      }
      let Bsrc = x, off = (b0 * G.cin + g * G.cg) * G.h * G.w;
      if (!(G.pointwise && nb === 1)) {
        const col = scratch('im2col', dtype, G.kk * ld);
        columns(x, G, b0, nb, g, col, 0);
        Bsrc = col; off = 0;
      }
      // gy [cog, nb*ohw] @ col^T [nb*ohw, kk]
      gemm(G.cog, G.kk, ld, A, mat(Bsrc, off, 1, ld), dw, g * G.cog * G.kk, true);
    }
  }
  return dw;
}
