// txt2img for the studio in its own process (model loading and sampling would block the
// server's event loop): the same loadSDModel + LoRALibrary + txt2img as `sdlora txt2img`.
// Receives a list of images to make, writes each PNG (with its infotext) atomically, reports them.
import path from 'node:path';
import * as E from '../../engine/index.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';
import { encodePng } from '../../io/png.js';
import { txt2img } from '../../infer/txt2img.js';
import { LoRALibrary } from '../../lora/library.js';
import { resolveModel } from '../../models/hub.js';
import { loadSDModel, moveModel } from '../../models/sd-model.js';

export interface GenerateItem { prompt: string; negativePrompt: string; width: number; height: number; steps: number; cfgScale: number; seed: number; sampler: string; file: string }
export interface GenerateSpec { model: string; device: string; loraDir: string; items: GenerateItem[] }

const send = (m: unknown) => new Promise<void>((resolve) => (process.send ? process.send(m as object, () => resolve()) : resolve()));

process.on('message', (m: { type: string; spec: GenerateSpec }) => { if (m.type === 'start') void run(m.spec); });
process.on('disconnect', () => process.exit(0));

async function run(spec: GenerateSpec): Promise<void> {
  try {
    const device = await E.selectBackend(spec.device);
    const model = moveModel(await loadSDModel(await resolveModel(spec.model, (l) => console.error(l))), device);
    const library = await LoRALibrary.scan(spec.loraDir);
    for (const it of spec.items) {
      const r = await txt2img(model, { prompt: it.prompt, negativePrompt: it.negativePrompt, width: it.width, height: it.height, steps: it.steps, cfgScale: it.cfgScale, seed: it.seed, sampler: it.sampler }, library);
      await writeBufferAtomic(it.file, encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
      await send({ type: 'image', file: path.basename(it.file), infotext: r.infotext, seed: r.seed });
    }
    await send({ type: 'done' });
    process.exit(0);
  } catch (e) {
    await send({ type: 'error', message: (e as Error).message });
    process.exit(1);
  }
}
