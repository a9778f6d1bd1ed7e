// B-LoRA on the tiny SDXL model: training targets only the attention projections of the content
// and style blocks (expected names derived from the golden module list's diffusers paths), and at
// generation `blora=content` / `blora=style` apply just that part of a file.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { SDXL } from '../../src/families/index.js';
import { parsePrompt } from '../../src/infer/prompt.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { B_LORA_PARTS, bLoRASubset } from '../../src/lora/b-lora.js';
import { familyComponents } from '../../src/lora/components.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { trainFixture } from '../helpers/train-setup.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const fx = trainFixture('sdlora-blora-', {
  dataset: { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 4 },
  defaults: () => ({
    caption_extension: '.txt', resolution: 32, max_train_steps: 2, learning_rate: 1e-2, network_dim: 2, network_alpha: 2,
    network_args: ['b_lora=True'], output_dir: lib, seed: 3,
  }),
  model: tinySdxlFolder,
});
const { tmp, cfg } = fx;
const lib = path.join(tmp, 'loras');
const quiet = () => {};

/** kohya names of the B-LoRA targets, from the golden list's diffusers module paths (last column). */
function expectedNames(): Map<string, 'content' | 'style'> {
  const out = new Map<string, 'content' | 'style'>();
  for (const line of readFileSync(requireFile(goldenCase('sdxl-lora'), 'lora_modules.txt'), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const cols = line.split('\t');
    const mod = cols[cols.length - 1].replace(/^unet\./, '');
    if (!/\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/.test(mod)) continue;
    for (const part of ['content', 'style'] as const) if (mod.startsWith(B_LORA_PARTS[part])) out.set(cols[0], part);
  }
  return out;
}

describe('B-LoRA', () => {
  before(fx.setup);

  it('trains only the content and style blocks\' attention projections of the UNet', async () => {
    const logs: string[] = [];
    const r = await train(cfg({ output_name: 'content_src' }), { log: (m) => logs.push(m) });
    const f = await loadLoRA(r.finalPath!);
    const want = expectedNames();
    assert.ok([...want.values()].includes('content') && [...want.values()].includes('style'));
    assert.deepEqual([...f.modules.keys()].sort(), [...want.keys()].sort());
    assert.ok(logs.some((m) => /b_lora trains the UNet/.test(m)), 'the skipped text encoders are named');
    assert.match(f.metadata.ss_network_args, /"b_lora": "True"/);
    await train(cfg({ output_name: 'style_src', seed: 8 }), { log: quiet });
  });

  it('refuses B-LoRA where it does not apply', async () => {
    await assert.rejects(train(cfg({ output_name: 'x', network_args: ['b_lora=True', 'conv_dim=2'] }), { log: quiet }), /conv_dim does not apply/);
    const sd1 = await tinyModelFolder();
    await assert.rejects(train(cfg({ pretrained_model_name_or_path: sd1, output_name: 'y' }), { log: quiet }), /B-LoRA needs an SDXL model/);
    assert.throws(() => parsePrompt('<lora:a:1:blora=colour>'), /blora must be content or style/);
    assert.throws(() => parsePrompt('<lora:a:1:dyn=4>'), /unknown argument dyn/);
    assert.deepEqual(parsePrompt('x <lora:a:0.5:blora=style>').loras, [{ name: 'a', te: 0.5, unet: 0.5, blora: 'style' }]);
  });

  it('applies the content part of one B-LoRA and the style part of another', async () => {
    const m = await loadSDModel(fx.model);
    assert.equal(m.family, SDXL);
    const library = await LoRALibrary.scan(lib);
    const comps = familyComponents(m);
    const a = await loadLoRA(library.resolve('content_src').path);
    const content = bLoRASubset(a, { family: m.family, components: comps }, 'content'), style = bLoRASubset(a, { family: m.family, components: comps }, 'style');
    const want = expectedNames();
    assert.deepEqual([...content.modules.keys()].sort(), [...want].filter(([, p]) => p === 'content').map(([n]) => n).sort());
    assert.equal(content.modules.size + style.modules.size, a.modules.size);
    const o = { prompt: 'a star', width: 32, height: 32, steps: 2, seed: 2 };
    const gen = async (tags: string) => (await txt2img(m, { ...o, prompt: `a star ${tags}` }, library)).rgb;
    const base = await gen('');
    const full = await gen('<lora:content_src:1>');
    const split = await gen('<lora:content_src:1:blora=content> <lora:content_src:1:blora=style>');
    assert.ok(maxAbsDiff(full, split) <= 1, 'content + style of one file = the whole file');
    const onlyContent = await gen('<lora:content_src:1:blora=content>');
    const mixed = await gen('<lora:content_src:1:blora=content> <lora:style_src:1:blora=style>');
    for (const [x, y, what] of [[base, onlyContent, 'content changes the image'], [onlyContent, mixed, 'the other file\'s style changes it'], [full, mixed, 'another style than the content file\'s']] as const) {
      assert.ok(maxAbsDiff(x, y) > 0, what);
    }
    writeFileSync(path.join(tmp, 'done'), '');
  });
});
