// Latents of the training images: VAE-encoded per step (with crop and color augmentation), or
// once up front (cache_latents, optionally on disk next to the image, keyed by the VAE).
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { cropOffsets } from '../data/buckets.js';
import type { DataSummary, TrainImage } from '../data/dataset.js';
import { colorAugment, prepareImageRgb, rgbToTensorData } from '../data/images.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { SDModel } from '../models/sd-model.js';
import type { TrainOptions } from './options.js';

export interface LatentSource {
  /** The (unscaled) latent of `img`: the cached one, or encoded now with `rng`'s crop and augmentation. */
  latent(img: TrainImage, flip: boolean, rng: E.Rng): Promise<Tensor>;
}

export interface LatentCacheOptions { model: SDModel; data: DataSummary; c: TrainOptions; device: E.Backend; seed: number; vaeSource: string; log: (m: string) => void }

export async function latentSource({ model, data, c, device, seed, vaeSource, log }: LatentCacheOptions): Promise<LatentSource> {
  const cache = new Map<string, { plain: Tensor; flipped?: Tensor }>();
  const encodeImage = async (img: TrainImage, flip: boolean, offset: [number, number], r: E.Rng, augment = false): Promise<Tensor> => {
    const [bw, bh] = img.placement.bucket;
    const rgb = await prepareImageRgb(img.path, { resized: img.placement.resized, bucket: img.placement.bucket, offset, flip }, img.size);
    if (augment && img.subset.colorAug) colorAugment(rgb, () => r.uniform());
    return E.noGrad(() => {
      const d = model.vae.encode(E.tensor(rgbToTensorData(rgb, bw, bh), [1, 3, bh, bw]));
      return E.add(d.mean, E.mul(d.std, E.randn([...d.mean.shape], r)));
    });
  };
  if (c.cache_latents) {
    const all = data.datasets.flatMap((d) => d.images);
    log(`caching latents of ${all.length} images${c.cache_latents_to_disk ? ' (disk)' : ''}`);
    const cacheRng = new E.Rng(seed ^ 0x5bd1e995);
    const source = path.resolve(vaeSource);
    for (const img of all) {
      const [bw, bh] = img.placement.bucket;
      const diskPath = `${img.path.replace(/\.[^.]+$/, '')}_${String(img.size[0]).padStart(4, '0')}x${String(img.size[1]).padStart(4, '0')}${model.family.latentCacheSuffix}.safetensors`;
      const factor = 2 ** (model.vae.config.block_out_channels.length - 1);
      const wantShape = [1, model.vae.config.latent_channels, bh / factor, bw / factor];
      if (c.cache_latents_to_disk && existsSync(diskPath)) {
        const { tensors: t, metadata: meta } = await loadSafetensors(diskPath);
        // Latents of another VAE (or from before this check) are encoded again.
        if (meta.vae === source && t.latents && t.latents.shape.join() === wantShape.join() && (!img.subset.flipAug || t.latents_flipped)) {
          cache.set(img.path, { plain: t.latents.toBackend(device), flipped: t.latents_flipped?.toBackend(device) });
          continue;
        }
      }
      const off = cropOffsets(img.placement.resized, img.placement.bucket, () => 0, false);
      const entry = { plain: await encodeImage(img, false, off, cacheRng), flipped: img.subset.flipAug ? await encodeImage(img, true, off, cacheRng) : undefined };
      cache.set(img.path, entry);
      if (c.cache_latents_to_disk) await saveSafetensors(diskPath, { latents: entry.plain, ...(entry.flipped ? { latents_flipped: entry.flipped } : {}) }, { vae: source });
    }
  }
  return {
    async latent(img, flip, rng) {
      const cached = cache.get(img.path);
      if (cached) return flip && cached.flipped ? cached.flipped : cached.plain;
      return encodeImage(img, flip, cropOffsets(img.placement.resized, img.placement.bucket, () => rng.uniform(), img.subset.randomCrop), rng, true);
    },
  };
}
