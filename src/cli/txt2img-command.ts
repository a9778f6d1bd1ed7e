// `sdlora txt2img`: generate images with LoRAs from prompt tags.
import { writeBufferAtomic } from '../io/atomic-write.js';
import type { Command } from 'commander';
import * as E from '../engine/index.js';
import { encodePng } from '../io/png.js';
import { txt2img } from '../infer/txt2img.js';
import { LoRALibrary } from '../lora/library.js';
import { loadEmbeddings } from './embeddings-command.js';
import { resolveModel } from '../models/hub.js';
import { loadExternalVae } from '../models/external-vae.js';
import { loadSDModel, moveModel } from '../models/sd-model.js';
import { SAMPLERS } from '../schedulers/index.js';
import { ProgressBar } from './progress.js';

const int = (v: string) => { const n = Number(v); if (!Number.isInteger(n)) throw new Error(`not an integer: ${v}`); return n; };

export function registerTxt2ImgCommand(program: Command): void {
  program.command('txt2img').description('generate an image; <lora:name:weight> tags in the prompt load LoRAs from --lora-dir')
    .requiredOption('--model <path>', 'diffusers folder, single-file .safetensors checkpoint, Hugging Face repo id, or "tiny" (the bundled model)')
    .requiredOption('-p, --prompt <text>', 'prompt').option('-n, --negative <text>', 'negative prompt', '')
    .option('--config-dir <dir>', 'configs (unet/, vae/, text_encoder/, tokenizer/) for a single-file model')
    .option('--lora-dir <dir>', 'LoRA folder (subfolders included)')
    .option('--embeddings-dir <dir>', 'Textual Inversion embeddings folder (subfolders included): a file stem in the prompt stands for its vectors')
    .option('--vae <path>', 'external VAE: single-file checkpoint, LDM or diffusers VAE .safetensors, or diffusers vae folder')
    .option('--width <n>', 'width (default: the family\'s, 512 SD 1.x/2.x, 1024 SDXL)', int).option('--height <n>', 'height (default: the family\'s)', int)
    .option('--steps <n>', 'sampling steps', int, 20).option('--cfg <x>', 'CFG scale', Number, 7)
    .option('--seed <n>', 'seed (random when omitted)', int).option('--sampler <name>', `one of ${SAMPLERS.join(', ')}`, 'euler_a')
    .option('--clip-skip <n>', 'CLIP skip', int, 1).option('--batch <n>', 'images, seeds seed..seed+n-1', int, 1)
    .option('-o, --out <file>', 'output PNG (a -N suffix is added for batches)', 'txt2img.png')
    .option('--allow-partial', 'apply LoRA files with modules in formats sdlora does not apply, skipping those modules with a warning')
    .option('--device <name>', `compute backend: ${E.DEVICES.join(' or ')}`, 'cpu')
    .action(async (o: { device: string; model: string; prompt: string; negative: string; configDir?: string; loraDir?: string; embeddingsDir?: string; vae?: string; width?: number; height?: number; steps: number; cfg: number; seed?: number; sampler: string; clipSkip: number; batch: number; out: string; allowPartial?: boolean }) => {
      const device = await E.selectBackend(o.device);
      const loaded = await loadSDModel(await resolveModel(o.model, (m) => console.error(m)), { configDir: o.configDir });
      if (o.vae) loaded.vae = await loadExternalVae(o.vae, loaded.vae);
      const model = moveModel(loaded, device);
      const library = o.loraDir ? await LoRALibrary.scan(o.loraDir) : undefined;
      const embeddings = o.embeddingsDir ? await loadEmbeddings(o.embeddingsDir, model) : undefined;
      const seed0 = o.seed ?? Math.floor(Math.random() * 2 ** 31);
      for (let b = 0; b < o.batch; b++) {
        const bar = new ProgressBar(`image ${b + 1}/${o.batch}`, o.steps, 'step');
        const r = await txt2img(model, {
          prompt: o.prompt, negativePrompt: o.negative, width: o.width, height: o.height, steps: o.steps, cfgScale: o.cfg,
          seed: seed0 + b, sampler: o.sampler, clipSkip: o.clipSkip, allowPartial: o.allowPartial, embeddings, onStep: (i) => bar.update(i),
        }, library);
        const file = o.batch > 1 ? o.out.replace(/(\.png)?$/i, `-${b + 1}.png`) : o.out;
        await writeBufferAtomic(file, encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
        console.log(`${file} (seed ${r.seed})`);
      }
    });
}
