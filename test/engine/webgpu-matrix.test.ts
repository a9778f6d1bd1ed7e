// The subgroup-matrix (tensor core) f16 GEMM: which adapters get it, and the check on the device that
// decides whether it is used. No adapter available to this project offers the feature, so the
// matrix kernel itself cannot run here: what runs is the choice of config, the kernel text, and the
// check with kernels that compile and are right, compile and are wrong, or do not compile (the
// matrix kernel on an adapter without the feature), after which the f16 GEMM must be unchanged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SubgroupMatrixConfig, halfGemmSupport, halfTemplate, matrixTemplate, pickMatrixGemm, setHalfKernel } from '../../src/engine/webgpu/kernels/gemm.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'];
const cfg = (M: number, N: number, K: number, componentType = 'f16', resultComponentType = 'f32'): SubgroupMatrixConfig => ({ M, N, K, componentType, resultComponentType });

describe('subgroup-matrix f16 GEMM', () => {
  it('takes a square 16 (else 8) f16 -> f32 config, and says why not otherwise (SDLORA_WEBGPU_SUBGROUP_MATRIX and SDLORA_WEBGPU_F16 take only 0 or 1)', () => {
    // NVIDIA/AMD-like list: 16 preferred over 8; the tiles per subgroup cover the 64x64 tile with the fewest subgroups.
    const nv = pickMatrixGemm(FEATURES, [cfg(8, 8, 8), cfg(16, 16, 16), cfg(16, 16, 16, 'f16', 'f16')], 32);
    assert.deepEqual(nv.cfg, { S: 16, tiles: 2, label: '16x16x16 f16->f32' });
    const apple = pickMatrixGemm(FEATURES, [cfg(8, 8, 8, 'f32', 'f32'), cfg(8, 8, 8)], 32);
    assert.deepEqual(apple.cfg, { S: 8, tiles: 8, label: '8x8x8 f16->f32' });
    assert.equal(pickMatrixGemm(FEATURES, [cfg(16, 16, 16)], 64).cfg?.tiles, 4);
    const refused: [string[], SubgroupMatrixConfig[] | undefined, number | undefined, RegExp][] = [
      [['shader-f16', 'subgroups'], [cfg(16, 16, 16)], 32, /no chromium-experimental-subgroup-matrix/],
      [['subgroups', 'chromium-experimental-subgroup-matrix'], [cfg(16, 16, 16)], 32, /no shader-f16/],
      [FEATURES, [cfg(8, 16, 16), cfg(16, 16, 16, 'f16', 'f16'), cfg(8, 8, 8, 'f32', 'f32')], 32, /no square 8 or 16 f16->f32 config \(adapter lists 8x16x16 f16->f32, 16x16x16 f16->f16, 8x8x8 f32->f32\)/],
      [FEATURES, undefined, 32, /adapter lists none/],
      [FEATURES, [cfg(16, 16, 16)], 512, /largest subgroup 512 does not divide/],
      [FEATURES, [cfg(16, 16, 16)], undefined, /largest subgroup unknown/],
    ];
    for (const [f, c, sg, why] of refused) {
      const r = pickMatrixGemm(f, c, sg);
      assert.equal(r.cfg, null);
      assert.match(r.why, why);
    }
    process.env.SDLORA_WEBGPU_SUBGROUP_MATRIX = '0';
    try {
      assert.deepEqual(pickMatrixGemm(FEATURES, [cfg(16, 16, 16)], 32), { cfg: null, why: 'SDLORA_WEBGPU_SUBGROUP_MATRIX=0' });
      process.env.SDLORA_WEBGPU_SUBGROUP_MATRIX = '1';
      assert.equal(pickMatrixGemm(FEATURES, [cfg(16, 16, 16)], 32).cfg?.S, 16);
      // Only 0 and 1: "off" is refused by name, not read as on.
      process.env.SDLORA_WEBGPU_SUBGROUP_MATRIX = 'off';
      assert.throws(() => pickMatrixGemm(FEATURES, [cfg(16, 16, 16)], 32), /SDLORA_WEBGPU_SUBGROUP_MATRIX=off: expected 0 \(off\) or 1 \(on\)/);
      process.env.SDLORA_WEBGPU_F16 = 'false';
      assert.throws(() => halfGemmSupport(['shader-f16']), /SDLORA_WEBGPU_F16=false: expected 0 \(off\) or 1 \(on\)/);
      process.env.SDLORA_WEBGPU_F16 = '1';
      assert.equal(halfGemmSupport(['shader-f16']).ok, true);
    } finally {
      delete process.env.SDLORA_WEBGPU_F16;
      delete process.env.SDLORA_WEBGPU_SUBGROUP_MATRIX;
    }
  });

  it('writes the kernel for the config: its matrix size, accumulators per subgroup and a 256-wide workgroup', () => {
    const text = matrixTemplate({ S: 16, tiles: 2, label: '' })('', 'fn loadA() {}', {});
    assert.match(text, /enable chromium_experimental_subgroup_matrix;/);
    assert.match(text, /@workgroup_size\(256\)/);
    assert.match(text, /array<subgroup_matrix_result<f32, 16, 16>, 2>/);
    assert.match(text, /subgroup_matrix_left<f16, 16, 16>/);
    assert.match(text, /const TILES = 16u;/);
    assert.match(matrixTemplate({ S: 8, tiles: 8, label: '' })('', '', {}), /const TILES = 64u;/);
  });

  it('is used only after it compiles and matches the host product on the device; otherwise the f16 GEMM is unchanged', async (t) => {
    const be = await webgpuOrSkip(t);
    if (!be) return;
    if (!be.halfGemm) { t.todo('the adapter has no shader-f16 (or SDLORA_WEBGPU_F16=0): no f16 GEMM to check'); return; }
    // On an adapter with a fitting config the matrix GEMM must have passed its check (this is what
    // scripts/gpu-check.sh reports on a GPU); elsewhere the backend says why and keeps the f16 GEMM.
    const info = be.ctx.adapter.info as unknown as { subgroupMatrixConfigs?: SubgroupMatrixConfig[]; subgroupMaxSize?: number };
    const pick = pickMatrixGemm(be.ctx.features, info.subgroupMatrixConfigs, info.subgroupMaxSize ?? be.ctx.report.limits.maxSubgroupSize);
    if (pick.cfg) {
      assert.ok(be.matrixGemm.on, be.matrixGemm.why);
    } else {
      assert.equal(be.matrixGemm.on, false);
      assert.equal(be.matrixGemm.why, pick.why);
    }
    // The check accepts a right kernel, refuses a wrong one and one that does not compile.
    const right = await be.checkHalfKernel(halfTemplate);
    assert.ok(right.ok, right.why);
    const wrong = await be.checkHalfKernel((d, l, o) => halfTemplate(d, l, o).replace('acc[r * 4u + c] * unscale', 'acc[r * 4u + c] * unscale * 1.03'));
    assert.equal(wrong.ok, false);
    assert.match(wrong.why, /wrong results: max error/);
    if (!pick.cfg) {
      // The matrix kernel on an adapter without the extension: a validation error, refused.
      const broken = await be.checkHalfKernel(matrixTemplate({ S: 16, tiles: 2, label: '' }));
      assert.equal(broken.ok, false);
      assert.match(broken.why, /did not compile or run/);
      // After the refusals the f16 GEMM is the plain one again (no template installed).
      assert.equal(setHalfKernel(null), null);
    }
  });
});
