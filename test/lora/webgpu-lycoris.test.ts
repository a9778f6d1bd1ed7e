// LyCORIS-family files attached at runtime to models on the webgpu backend (what txt2img
// --device webgpu does): the deltas are built on the device and the outputs match the golden case
// as on the cpu. Skipped without an adapter unless SDLORA_REQUIRE_WEBGPU=1.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { applyLoRA, removeLoRA } from '../../src/lora/apply.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';
import { loadLycorisCase, lycorisMergeFactor, requireTensor } from '../helpers/lycoris-case.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

describe('LyCORIS-family files on webgpu', () => {
  it('reproduce the case outputs attached at runtime to models on the device', async (t) => {
    const gpu = await webgpuOrSkip(t);
    if (!gpu) return;
    E.initCpuBackend();
    const c = await loadLycorisCase();
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    unet.weights.toBackend(gpu); te.weights.toBackend(gpu);
    const { io } = c;
    const [sample, timestep, ehs, ids] = [io.sample, io.timestep, io.encoder_hidden_states, io.input_ids].map((x) => x.toBackend(gpu));
    for (const { kind, mult, key } of c.combos) {
      const file = c.files.get(kind)!;
      const modules = new Map([...file.adapters.values()].map((m) => [m.name, mult * lycorisMergeFactor(m)]));
      const r = applyLoRA(file, { unet: unet.weights, textEncoder: te.weights }, { unet: mult, te: mult, modules });
      assert.equal(r.applied, file.adapters.size);
      const u = await E.withBackend(gpu, async () => E.noGrad(() => unet.forward(sample, timestep, ehs)).data());
      const h = await E.withBackend(gpu, async () => E.noGrad(() => te.forward(ids).lastHiddenState).data());
      removeLoRA(r);
      const du = maxAbsDiff(u, requireTensor(io, `unet_out.${key}`).dataSync()), dt = maxAbsDiff(h, requireTensor(io, `te_last_hidden_state.${key}`).dataSync());
      t.diagnostic(`${key}: unet ${du.toExponential(2)}, te ${dt.toExponential(2)}`);
      assert.ok(du <= 1e-4 && dt <= 1e-4, `${key} on webgpu: unet ${du.toExponential(2)}, te ${dt.toExponential(2)}`);
    }
  });
});
