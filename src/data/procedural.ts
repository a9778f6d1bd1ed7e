// Procedurally drawn images of coloured shapes with captions: the pretraining data of the bundled
// tiny model, the demo LoRA dataset (a shape the base model never saw), and test fixtures.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../engine/random.js';
import { encodePng } from '../io/png.js';

export const COLORS: Record<string, [number, number, number]> = {
  red: [220, 40, 40], green: [40, 170, 60], blue: [40, 80, 220], yellow: [235, 200, 40], purple: [150, 60, 190], orange: [240, 140, 30],
};
export const BACKGROUNDS: Record<string, [number, number, number]> = { white: [245, 245, 245], black: [20, 20, 20], gray: [128, 128, 128] };
export const BASE_SHAPES = ['circle', 'square', 'triangle'] as const;
export type ShapeName = 'circle' | 'square' | 'triangle' | 'star' | 'ring' | 'cross';

/** Is the point (x, y) in [-1, 1]^2 (shape-local, radius 1) inside the shape? */
export function insideShape(shape: ShapeName, x: number, y: number): boolean {
  switch (shape) {
    case 'circle': return x * x + y * y <= 1;
    case 'square': return Math.abs(x) <= 0.85 && Math.abs(y) <= 0.85;
    case 'triangle': return y <= 0.8 && y >= 1.7 * Math.abs(x) - 0.9;
    case 'ring': { const r = x * x + y * y; return r <= 1 && r >= 0.35; }
    case 'cross': return (Math.abs(x) <= 0.3 && Math.abs(y) <= 1) || (Math.abs(y) <= 0.3 && Math.abs(x) <= 1);
    case 'star': {
      const a = Math.atan2(y, x), r = Math.hypot(x, y);
      // Five points: the radius limit oscillates between an inner and outer radius.
      const k = Math.cos(((a + Math.PI / 2) * 5) % (2 * Math.PI)) * 0.5 + 0.5;
      return r <= 0.42 + 0.58 * k ** 2;
    }
  }
}

export interface ShapeImage {
  rgb: Uint8Array;
  caption: string;
}

/** One image: a shape of a colour at a random place and size on a background, 2x2 supersampled. */
export function drawShape(size: number, shape: ShapeName, color: string, bg: string, rng: Rng): ShapeImage {
  const rgb = new Uint8Array(size * size * 3);
  const r = size * (0.28 + 0.12 * rng.uniform());
  const cx = size / 2 + (rng.uniform() - 0.5) * (size - 2 * r) * 0.8;
  const cy = size / 2 + (rng.uniform() - 0.5) * (size - 2 * r) * 0.8;
  const fg = COLORS[color], back = BACKGROUNDS[bg];
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
    let cover = 0;
    for (const [dx, dy] of [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]) if (insideShape(shape, (x + dx - cx) / r, (y + dy - cy) / r)) cover += 0.25;
    for (let c = 0; c < 3; c++) rgb[(y * size + x) * 3 + c] = Math.round(back[c] * (1 - cover) + fg[c] * cover);
  }
  return { rgb, caption: `a ${color} ${shape} on a ${bg} background` };
}

/** A kohya folder `<dir>/<repeats>_<name>/NNN.png + NNN.txt` of `count` shapes. */
export function writeShapeDataset(dir: string, opts: { name: string; repeats: number; count: number; size: number; shapes: ShapeName[]; seed: number; captionPrefix?: string }): string {
  const sub = path.join(dir, `${opts.repeats}_${opts.name}`);
  mkdirSync(sub, { recursive: true });
  const rng = new Rng(opts.seed);
  const colors = Object.keys(COLORS), bgs = Object.keys(BACKGROUNDS);
  for (let i = 0; i < opts.count; i++) {
    const shape = opts.shapes[i % opts.shapes.length];
    const color = colors[Math.floor(rng.uniform() * colors.length)], bg = bgs[Math.floor(rng.uniform() * bgs.length)];
    const img = drawShape(opts.size, shape, color, bg, rng);
    const stem = path.join(sub, String(i + 1).padStart(3, '0'));
    writeFileSync(`${stem}.png`, encodePng(img.rgb, opts.size, opts.size));
    writeFileSync(`${stem}.txt`, `${opts.captionPrefix ?? ''}${img.caption}\n`);
  }
  return sub;
}
