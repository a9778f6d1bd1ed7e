// The outlier clamp of sd-scripts' networks/svd_merge_lora.py and extract_lora_from_models.py:
// hi = torch.quantile(cat(up.flatten(), down.flatten()), q) over the SIGNED factor values, then
// both factors clamped to [-hi, hi]. torch.quantile (linear interpolation, ATen Sorting.cpp) runs
// in the tensor's dtype, float32 here, so every step below is rounded to float32 as torch does;
// that makes hi, and so the clamped factors, bit-identical to sd-scripts' for the same factors.
const f32 = Math.fround;

/**
 * torch.lerp's scalar form (ATen Lerp.h): the formula switches at weight 0.5 for accuracy. The
 * CPU kernel is built with FMA contraction, so the product and the sum round once: the float32
 * product is exact in a double and only the sum is rounded (unfused rounding misses the golden
 * hi by one ulp on some modules).
 */
function lerpF32(a: number, b: number, w: number): number {
  return w < 0.5 ? f32(a + w * f32(b - a)) : f32(b - f32(b - a) * f32(1 - w));
}

/** torch.quantile(values, q) of float32 values, interpolation 'linear'. NaN if any value is NaN. */
export function torchQuantileF32(values: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile must be in [0, 1], got ${q}`);
  if (values.length === 0) throw new Error('quantile of an empty tensor');
  const sorted = Float32Array.from(values).sort();
  // torch sorts NaN last and then reads the last element: any NaN makes the quantile NaN.
  if (Number.isNaN(sorted[sorted.length - 1])) return NaN;
  // ranks = q * (n - 1) with q a float32 scalar tensor.
  const rank = f32(f32(q) * (sorted.length - 1));
  const below = Math.trunc(rank), above = Math.ceil(rank);
  return lerpF32(sorted[below], sorted[above], f32(rank - below));
}

/**
 * Clamps up and down (float32 values, in place) to [-hi, hi], hi = the signed q-quantile of
 * both together. Returns hi.
 */
export function quantileClamp(up: Float32Array, down: Float32Array, q: number): number {
  const all = new Float32Array(up.length + down.length);
  all.set(up);
  all.set(down, up.length);
  const hi = torchQuantileF32(all, q);
  // torch.clamp(min=-hi, max=hi) is max then min: with hi < 0 (a mostly negative factor set) every value becomes hi.
  for (const a of [up, down]) for (let i = 0; i < a.length; i++) a[i] = Math.min(Math.max(a[i], -hi), hi);
  return hi;
}
