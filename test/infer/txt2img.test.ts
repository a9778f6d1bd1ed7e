// txt2img on the tiny fixtures: determinism, samplers, CFG, LoRA tags and the PNG infotext.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { decodePng, encodePng } from '../../src/io/png.js';
import { parsePrompt } from '../../src/infer/prompt.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadSDModel, type SDModel } from '../../src/models/sd-model.js';
import { goldenCase, goldenDir } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

let model: SDModel;
let library: LoRALibrary;

const diff = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

describe('txt2img', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await loadSDModel(await tinyModelFolder());
    const libDir = await mkdtemp(path.join(os.tmpdir(), 'sdlora-lib-'));
    await mkdir(path.join(libDir, 'styles', 'nested'), { recursive: true });
    await copyFile(path.join(goldenCase('lora'), 'lora_a.safetensors'), path.join(libDir, 'styles', 'nested', 'shapes.safetensors'));
    await copyFile(path.join(goldenCase('lora'), 'lora_b.safetensors'), path.join(libDir, 'other.safetensors'));
    library = await LoRALibrary.scan(libDir);
  });

  it('parses A1111 LoRA tags and strips them from the prompt', () => {
    const p = parsePrompt('a cat, <lora:shapes:0.8>, <lora:other:0.5:1.2> smiling <lora:x:unet=0.3:te=0>');
    assert.equal(p.text, 'a cat, , smiling');
    assert.deepEqual(p.loras, [{ name: 'shapes', te: 0.8, unet: 0.8 }, { name: 'other', te: 0.5, unet: 1.2 }, { name: 'x', te: 0, unet: 0.3 }]);
    assert.throws(() => parsePrompt('<lora:a:heavy>'), /not a number/);
  });

  it('is deterministic per seed and differs across seeds, for every sampler', async () => {
    for (const sampler of ['euler_a', 'euler', 'ddim', 'dpmpp_2m', 'dpmpp_2m_karras', 'ddpm']) {
      const o = { prompt: 'a red circle', width: 32, height: 32, steps: 4, seed: 7, sampler };
      const a = await txt2img(model, o), b = await txt2img(model, o), c = await txt2img(model, { ...o, seed: 8 });
      assert.equal(a.rgb.length, 32 * 32 * 3);
      assert.deepEqual(a.rgb, b.rgb, `${sampler}: same seed, same image`);
      assert.ok(diff(a.rgb, c.rgb) > 0.5, `${sampler}: another seed changes the image`);
    }
  });

  it('applies LoRAs from prompt tags (nested folders) and removes them afterwards', async () => {
    const o = { prompt: 'a red circle', width: 32, height: 32, steps: 3, seed: 1, sampler: 'euler' };
    const base = await txt2img(model, o);
    const withLora = await txt2img(model, { ...o, prompt: "a red circle <lora:shapes:1>" }, library);
    const two = await txt2img(model, { ...o, prompt: "a red circle <lora:styles/nested/shapes:1> <lora:other:0.5>" }, library);
    assert.ok(diff(base.rgb, withLora.rgb) > 0.5, 'the LoRA changes the image');
    assert.ok(diff(withLora.rgb, two.rgb) > 0.1, 'a second LoRA changes it again');
    assert.deepEqual((await txt2img(model, o)).rgb, base.rgb, 'no adapter is left behind');
    assert.equal(model.unet.weights.adapters.size, 0);
    await assert.rejects(txt2img(model, { ...o, prompt: '<lora:missing:1>' }, library), /not found/);
    await assert.rejects(txt2img(model, { ...o, width: 30 }), /multiples of/);
  });

  it('writes a PNG whose "parameters" chunk holds the A1111 infotext', async () => {
    const r = await txt2img(model, { prompt: 'a red circle <lora:shapes:0.7>', negativePrompt: 'blurry', width: 32, height: 32, steps: 2, seed: 42, sampler: 'dpmpp_2m_karras', cfgScale: 5 }, library);
    const png = decodePng(encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
    assert.deepEqual(png.rgb, r.rgb);
    assert.match(png.text.parameters, /^a red circle <lora:shapes:0\.7>\nNegative prompt: blurry\nSteps: 2, Sampler: DPM\+\+ 2M Karras, CFG scale: 5, Seed: 42, Size: 32x32/);
  });
});
