// txt2img on webgpu gives the cpu's image (same seed: same noise; pixels within rounding), LoRA
// tags included.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadSDModel, moveModel } from '../../src/models/sd-model.js';
import { goldenCase, goldenDir } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

describe('txt2img on webgpu', () => {
  it('matches the cpu image for several samplers, with and without a LoRA', async (t) => {
    const gpu = await webgpuOrSkip(t);
    if (!gpu) return;
    await E.initCpuBackend();
    const folder = await tinyModelFolder();
    const onCpu = await loadSDModel(folder);
    const onGpu = moveModel(await loadSDModel(folder), gpu);
    assert.equal(onGpu.unet.weights.backend, gpu);
    const libDir = await mkdtemp(path.join(os.tmpdir(), 'sdlora-gpu-lib-'));
    await copyFile(path.join(goldenCase('lora'), 'lora_a.safetensors'), path.join(libDir, 'shapes.safetensors'));
    const library = await LoRALibrary.scan(libDir);
    for (const [sampler, prompt] of [['euler_a', 'a red circle'], ['dpmpp_2m', 'a red circle <lora:shapes:1>']]) {
      const o = { prompt, width: 32, height: 32, steps: 3, seed: 9, sampler };
      const a = await txt2img(onCpu, o, library), b = await txt2img(onGpu, o, library);
      const worst = a.rgb.reduce((m, v, i) => Math.max(m, Math.abs(v - b.rgb[i])), 0);
      assert.ok(worst <= 2, `${sampler}: pixels differ by up to ${worst}`);
      assert.equal(b.infotext, a.infotext);
    }
    assert.equal(onGpu.unet.weights.adapters.size, 0, 'the LoRA was removed');
  });
});
