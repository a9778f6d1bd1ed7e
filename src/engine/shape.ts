// Shape arithmetic shared by every backend: sizes, strides and NumPy broadcasting.
export type Shape = readonly number[];

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function stridesOf(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) { st[i] = acc; acc *= s[i]; }
  return st;
}

export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`cannot broadcast shapes [${a}] and [${b}]`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides to read an array of shape `s` as if broadcast to `out` (0 on broadcast axes). */
export function broadcastStrides(s: Shape, out: Shape): number[] {
  const st = stridesOf(s);
  const r = new Array<number>(out.length).fill(0);
  const off = out.length - s.length;
  for (let i = 0; i < s.length; i++) r[off + i] = s[i] === 1 ? 0 : st[i];
  return r;
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
