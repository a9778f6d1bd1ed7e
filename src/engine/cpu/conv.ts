// conv2d and its two gradients as GEMMs over an im2col matrix built one image and group at a time
// (so the column buffer is bounded by a single image). 1x1 stride-1 convolutions skip im2col.
import type { ConvShapes } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, gemm, mat } from './gemm.js';
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

function im2col(x: FloatArray, xOff: number, G: Geometry, col: FloatArray): void {
  const { h, w, kh, kw, oh, ow, sh, sw, ph, pw, cg } = G;
  let o = 0;
  for (let c = 0; c < cg; c++) {
    const xc = xOff + c * h * w;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        // Output columns whose input column lies inside the image: [ox0, ox1).
        const ox0 = Math.min(ow, Math.max(0, Math.ceil((pw - j) / sw)));
        const ox1 = Math.max(ox0, Math.min(ow, Math.floor((w - 1 + pw - j) / sw) + 1));
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i;
          if (iy < 0 || iy >= h) { col.fill(0, o, o + ow); o += ow; continue; }
          const src = xc + iy * w - pw + j;
          for (let ox = 0; ox < ox0; ox++) col[o + ox] = 0;
          if (sw === 1) col.set(x.subarray(src + ox0, src + ox1), o + ox0);
          else for (let ox = ox0; ox < ox1; ox++) col[o + ox] = x[src + ox * sw];
          for (let ox = ox1; ox < ow; ox++) col[o + ox] = 0;
          o += ow;
        }
      }
    }
  }
}

function col2imAdd(col: FloatArray, G: Geometry, dx: FloatArray, dxOff: number): void {
  const { h, w, kh, kw, oh, ow, sh, sw, ph, pw, cg } = G;
  let o = 0;
  for (let c = 0; c < cg; c++) {
    const xc = dxOff + c * h * w;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i;
          if (iy < 0 || iy >= h) { o += ow; continue; }
          const row = xc + iy * w;
          for (let ox = 0; ox < ow; ox++, o++) {
            const ix = ox * sw - pw + j;
            if (ix >= 0 && ix < w) dx[row + ix] += col[o];
          }
        }
      }
    }
  }
}

export function conv2d(x: FloatArray, w: FloatArray, bias: FloatArray | null, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s);
  const y = allocArray(dtype, G.n * G.cout * G.ohw) as FloatArray;
  const col = G.pointwise ? null : scratch('im2col', dtype, G.kk * G.ohw);
  for (let b = 0; b < G.n; b++) {
    for (let g = 0; g < G.g; g++) {
      const xOff = (b * G.cin + g * G.cg) * G.h * G.w;
      const yOff = (b * G.cout + g * G.cog) * G.ohw;
      let B = mat(x, xOff, G.ohw, 1);
      if (col) { im2col(x, xOff, G, col); B = mat(col, 0, G.ohw, 1); }
      gemm(G.cog, G.ohw, G.kk, mat(w, g * G.cog * G.kk, G.kk, 1), B, y, yOff, false);
    }
    if (bias) {
      for (let c = 0; c < G.cout; c++) {
        const o = (b * G.cout + c) * G.ohw, bv = bias[c];
        for (let i = 0; i < G.ohw; i++) y[o + i] += bv;
      }
    }
  }
  return y;
}

export function conv2dGradInput(gy: FloatArray, w: FloatArray, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s);
  const dx = allocArray(dtype, G.n * G.cin * G.h * G.w) as FloatArray;
  const col = G.pointwise ? null : scratch('im2col', dtype, G.kk * G.ohw);
  for (let b = 0; b < G.n; b++) {
    for (let g = 0; g < G.g; g++) {
      const xOff = (b * G.cin + g * G.cg) * G.h * G.w;
      const yOff = (b * G.cout + g * G.cog) * G.ohw;
      // W_g^T [kk, cog] @ gy [cog, ohw]
      const A = mat(w, g * G.cog * G.kk, 1, G.kk);
      const B = mat(gy, yOff, G.ohw, 1);
      if (col) {
        gemm(G.kk, G.ohw, G.cog, A, B, col, 0, false);
        col2imAdd(col, G, dx, xOff);
      } else {
        gemm(G.kk, G.ohw, G.cog, A, B, dx, xOff, false);
      }
    }
  }
  return dx;
}

export function conv2dGradWeight(gy: FloatArray, x: FloatArray, s: ConvShapes, dtype: FloatDType): FloatArray {
  const G = geometry(s);
  const dw = allocArray(dtype, G.cout * G.kk) as FloatArray;
  const col = G.pointwise ? null : scratch('im2col', dtype, G.kk * G.ohw);
  for (let b = 0; b < G.n; b++) {
    for (let g = 0; g < G.g; g++) {
      const xOff = (b * G.cin + g * G.cg) * G.h * G.w;
      const yOff = (b * G.cout + g * G.cog) * G.ohw;
      let src = x, off = xOff;
      if (col) { im2col(x, xOff, G, col); src = col; off = 0; }
      // gy [cog, ohw] @ col^T [ohw, kk]
      gemm(G.cog, G.kk, G.ohw, mat(gy, yOff, G.ohw, 1), mat(src, off, 1, G.ohw), dw, g * G.cog * G.kk, true);
    }
  }
  return dw;
}
