// The estimate of one resolved training config on one device: the model family and its parts
// (found from the config's base model the cheap way, see family-inputs.ts), the training method
// (LoRA, textual inversion, DreamBooth) and the config's batch, rank, precision and steps. The
// CLI's `estimate` table and the studio's live estimate both come from here, so they agree.
import type { TrainConfig } from '../train/config.js';
import { textEncoderPlan } from '../train/dreambooth.js';
import { methodOf } from '../train/training-method.js';
import { parseUNetConfig } from '../models/unet-config.js';
import type { Estimate } from './estimate.js';
import { type FamilyFound, familyParts } from './family-inputs.js';
import type { Device } from './gpus.js';
import { estimateMethod } from './method-estimate.js';

export interface ConfigEstimateOptions {
  /** Defaults to the config's resolution. */
  resolution?: [number, number];
  /** A diffusers UNet config that wins over the family's and the model folder's. */
  unetConfig?: Record<string, unknown>;
  /** Count materialized attention scores even on a GPU (the cpu backend always does). */
  naiveAttention?: boolean;
}

export function estimateConfig(cfg: TrainConfig, found: FamilyFound, device: Device, o: ConfigEstimateOptions = {}): Estimate & { method: string } {
  const parts = familyParts(found.id, found.textConfigs);
  const unet = parseUNetConfig(o.unetConfig ?? found.unetConfig ?? parts.unetConfig);
  const method = methodOf(cfg);
  return estimateMethod(method, {
    unet, textEncoderParams: parts.textEncoders.reduce((n, t) => n + t.params, 0), vaeParams: parts.vaeParams, vaeF32: parts.vaeF32 && cfg.mixed_precision !== 'no',
    textEncoderLayers: parts.textEncoders[0].layers, textHidden: parts.textEncoders[0].hidden, textEncoders: parts.textEncoders, family: found.id,
    resolution: o.resolution ?? cfg.resolution as [number, number], batch: cfg.train_batch_size as number, rank: cfg.network_dim as number, mixedPrecision: cfg.mixed_precision !== 'no',
    gradientCheckpointing: Boolean(cfg.gradient_checkpointing), cacheLatents: Boolean(cfg.cache_latents),
    trainTextEncoder: method === 'dreambooth' ? textEncoderPlan(cfg).train : !cfg.network_train_unet_only,
    optimizer: cfg.optimizer_type as string, steps: cfg.max_train_steps as number, naiveAttention: Boolean(o.naiveAttention) || device.id === 'cpu',
  }, device);
}
