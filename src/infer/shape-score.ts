// A measured concept score for the demo: find the foreground of a generated image (pixels far
// from the border colour) and ask which shape template, at its best place and size, overlaps it
// most (intersection over union).
import { type ShapeName, insideShape } from '../data/procedural.js';

export interface ShapeMatch {
  best: ShapeName;
  iou: Record<string, number>;
  foreground: number;
}

export function foregroundMask(rgb: Uint8Array, size: number): Uint8Array {
  const border: number[][] = [];
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
    if (y === 0 || x === 0 || y === size - 1 || x === size - 1) { const i = (y * size + x) * 3; border.push([rgb[i], rgb[i + 1], rgb[i + 2]]); }
  }
  const med = [0, 1, 2].map((c) => border.map((p) => p[c]).sort((a, b) => a - b)[border.length >> 1]);
  const dist = new Float32Array(size * size);
  for (let i = 0; i < size * size; i++) dist[i] = Math.abs(rgb[i * 3] - med[0]) + Math.abs(rgb[i * 3 + 1] - med[1]) + Math.abs(rgb[i * 3 + 2] - med[2]);
  // Half way to the strongest foreground colour, so a blurred halo does not round the shape off.
  const p95 = Float32Array.from(dist).sort()[Math.floor(0.95 * dist.length)];
  const threshold = Math.max(60, 0.5 * p95);
  const mask = new Uint8Array(size * size);
  for (let i = 0; i < size * size; i++) mask[i] = dist[i] > threshold ? 1 : 0;
  return mask;
}

/** Best IoU of each shape with the mask over positions and radii. */
export function matchShapes(mask: Uint8Array, size: number, shapes: ShapeName[]): ShapeMatch {
  const iou: Record<string, number> = {};
  const fg = mask.reduce((a, b) => a + b, 0);
  for (const s of shapes) {
    let best = 0;
    for (let r = size * 0.2; r <= size * 0.45; r += size / 32) {
      for (let cy = r * 0.8; cy <= size - r * 0.8; cy += 1) for (let cx = r * 0.8; cx <= size - r * 0.8; cx += 1) {
        let inter = 0, tpl = 0;
        const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(size - 1, Math.ceil(cy + r));
        const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(size - 1, Math.ceil(cx + r));
        for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
          if (!insideShape(s, (x + 0.5 - cx) / r, (y + 0.5 - cy) / r)) continue;
          tpl++;
          inter += mask[y * size + x];
        }
        const u = tpl + fg - inter;
        if (u > 0) best = Math.max(best, inter / u);
      }
    }
    iou[s] = best;
  }
  const bestShape = shapes.reduce((a, b) => (iou[b] > iou[a] ? b : a));
  return { best: bestShape, iou, foreground: fg };
}
