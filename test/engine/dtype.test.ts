// Half-precision conversions: every one of the 65536 halves, widened by the lookup table (the path
// frozen f16 weights and f16 files take), against an f32 built from the bits independently.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { castArray, f16ToF32, f32ToF16 } from '../../src/engine/dtype.js';

/** The half's f32: exponent and mantissa shifted into f32 position, rescaled by 2^112 (exact, subnormals included), inf/NaN and sign put back. */
function bitsToF32(h: number): number {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  u[0] = (h & 0x7fff) << 13;
  f[0] *= 2 ** 112;
  if ((h & 0x7c00) === 0x7c00) u[0] = 0x7f800000 | ((h & 0x3ff) << 13);
  if (h & 0x8000) u[0] |= 0x80000000;
  return f[0];
}

describe('f16 conversions', () => {
  it('widens all 65536 halves exactly (signed zeros, subnormals, infinities, NaN), one by one and as arrays', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const wide = castArray(all, 'f32') as Float32Array, wide64 = castArray(all, 'f64') as Float64Array;
    for (let h = 0; h < 65536; h++) {
      const want = bitsToF32(h);
      assert.ok(Object.is(f16ToF32(h), want), `half 0x${h.toString(16)}: ${f16ToF32(h)}, want ${want}`);
      assert.ok(Object.is(wide[h], want) && Object.is(wide64[h], want), `castArray of half 0x${h.toString(16)}`);
      // Round trip back to the same bits (NaNs to a NaN).
      if (Number.isNaN(want)) assert.equal(f32ToF16(want) & 0x7c00, 0x7c00);
      else assert.equal(f32ToF16(want), h, `half 0x${h.toString(16)} round trip`);
    }
    assert.deepEqual([...castArray(Uint16Array.of(0x3e00, 0xbe00, 0x4900), 'i32')], [1, -1, 10]);
  });
});
