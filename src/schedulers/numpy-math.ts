// The few numpy operations diffusers' set_timesteps is built from, with numpy's exact semantics:
// np.round rounds halves to even (JavaScript's Math.round rounds them up, which moves a timestep
// by one whenever a spacing lands on .5), np.linspace computes start + i * step (not i * delta /
// div) and pins the endpoint, np.arange's length is
// ceil((stop - start) / step) and its values step by the rounded (start + step) - start.

/** np.round / np.rint: round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round took a half up; numpy keeps the even neighbour.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.linspace(start, stop, num) in float64. */
export function linspace(start: number, stop: number, num: number): number[] {
  const div = num - 1;
  if (div <= 0) return num === 1 ? [start] : [];
  const step = (stop - start) / div;
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * np.arange(start, stop, step) for float steps: length ceil((stop - start) / step); numpy stores
 * start and start + step, then fills the rest with the rounded difference of those two.
 */
export function arange(start: number, stop: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length: n }, (_, i) => (i === 1 ? start + step : start + i * delta));
}

/** np.interp(x, [0, 1, ..., fp.length - 1], fp): linear interpolation on integer knots. */
export function interpOnIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  return (fp[j + 1] - fp[j]) * (x - j) + fp[j];
}
