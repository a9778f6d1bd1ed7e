// sd-scripts' cache_text_encoder_outputs (and _to_disk): each image's caption is encoded once
// before training and the outputs reused, so the frozen text encoders do no work per step. It
// needs captions that do not change from step to step and text encoders that do not train, as
// sd-scripts asserts. On disk each image gets `<image stem>_te_outputs.safetensors` (sd-scripts:
// `_te_outputs.npz`) holding the conditioning and, in its metadata, the caption and family it was
// made for; a file made for another caption or family is recomputed rather than trusted.
import { existsSync } from 'node:fs';
import * as E from '../engine/index.js';
import { processCaption } from '../data/captions.js';
import type { TrainImage } from '../data/dataset.js';
import type { SubsetSpec } from '../data/dataset-spec.js';
import type { ModelFamily } from '../families/family.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { TextConditioner } from './text-conditioning.js';

/** The problems that rule the cache out (empty when it can be used). */
export function textCacheProblems(o: { network_train_unet_only: boolean }, subsets: readonly SubsetSpec[]): string[] {
  const p: string[] = [];
  if (!o.network_train_unet_only) p.push('"cache_text_encoder_outputs" needs "network_train_unet_only": a text-encoder LoRA cannot train through cached outputs');
  const changing: [keyof SubsetSpec, string][] = [['shuffleCaption', 'shuffle_caption'], ['captionTagDropoutRate', 'caption_tag_dropout_rate'], ['captionDropoutRate', 'caption_dropout_rate'], ['enableWildcard', 'enable_wildcard']];
  for (const [k, name] of changing) {
    const dirs = subsets.filter((s) => Boolean(s[k])).map((s) => s.imageDir);
    if (dirs.length) p.push(`"cache_text_encoder_outputs" cannot be used with "${name}" (captions change from step to step): ${dirs.join(', ')}`);
  }
  return p;
}

/** The caption an image trains with when nothing random applies (prefix, suffix, first line). */
export function fixedCaption(img: TrainImage): string {
  return processCaption(img.caption, { ...img.subset, captionDropoutEveryNEpochs: 0 }, 1, new E.Rng(0));
}

export const textCachePath = (image: string): string => `${image.replace(/\.[^./\\]+$/, '')}_te_outputs.safetensors`;

/** Encodes (or reads from disk) the outputs of every image's caption into the conditioner's cache. */
export async function cacheTextOutputs(
  cond: TextConditioner, images: readonly TrainImage[], o: { family: ModelFamily; toDisk: boolean; device: E.Backend; log: (m: string) => void },
): Promise<void> {
  const { family, toDisk, log } = o;
  log(`caching text encoder outputs of ${images.length} images${toDisk ? ' (disk)' : ''}`);
  for (const img of images) {
    const caption = fixedCaption(img);
    const file = textCachePath(img.path);
    if (toDisk && existsSync(file)) {
      const { tensors: t, metadata } = await loadSafetensors(file);
      if (metadata.caption === caption && metadata.family === family.id && t.context) {
        cond.put([caption], { context: t.context.toBackend(o.device), textEmbeds: t.text_embeds?.toBackend(o.device) });
        continue;
      }
    }
    const out = cond.get(caption);
    if (toDisk) await saveSafetensors(file, { context: out.context, ...(out.textEmbeds ? { text_embeds: out.textEmbeds } : {}) }, { caption, family: family.id });
  }
}
