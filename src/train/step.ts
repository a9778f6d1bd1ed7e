// One micro-step (forward and backward of a batch: latents, noise, timesteps, UNet prediction,
// weighted loss) and the host-side gradient work of an optimizer step (NaN guard, clipping),
// shared by the LoRA trainer and the method loop.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { SizeConditioning } from '../families/family.js';
import { processCaption } from '../data/captions.js';
import type { TrainImage } from '../data/dataset.js';
import type { SDModel } from '../models/sd-model.js';
import { DDPMScheduler } from '../schedulers/index.js';
import { allSnr, applyNoiseOptions, debiasedWeight, elementLoss, huberC, minSnrWeight, scaleVPredLikeNoisePred } from './loss-weights.js';
import type { LatentSource } from './latent-cache.js';
import { type NanAdvice, NanGuard } from './nan-guard.js';
import type { TrainOptions } from './options.js';
import { imageSizeConditioning } from './size-conditioning.js';
import type { TextConditioner } from './text-conditioning.js';

export interface StepInfo {
  step: number;
  maxSteps: number;
  epoch: number;
  epochs: number;
  loss: number;
  avgLoss: number;
  lr: number;
}

export interface MicroBatchTrace {
  /** [B, C, h, w] of the latents and noise. */
  shape: number[];
  latents: Float32Array;
  /** The N(0, 1) noise before noise_offset / multires noise, and the RNG state those options start from. */
  baseNoise: Float32Array;
  noiseRngState: number[];
  noise: Float32Array;
  noisy: Float32Array;
  timesteps: number[];
  pred: Float32Array;
  /** The weighted loss of this micro-batch (before the division by gradient_accumulation_steps). */
  loss: number;
}

export interface StepContext {
  c: TrainOptions;
  model: SDModel;
  device: E.Backend;
  rng: E.Rng;
  latents: LatentSource;
  text: TextConditioner;
  onMicroBatch?: (m: MicroBatchTrace) => void;
}

export interface MicroStepOptions {
  /** Whether the text conditioning needs gradients. */
  textGrad: boolean;
  /** A method's caption processing after sd-scripts' (TI: templates). */
  caption?: (caption: string, rng: E.Rng) => string;
}

export type MicroStep = (batch: TrainImage[], epoch: number, o: MicroStepOptions) => Promise<number>;

/** Forward and backward of one micro-batch; returns its loss (before the division by accumulation). */
export function microStepper({ c, model, device, rng, latents: source, text: textConditioner, onMicroBatch }: StepContext): MicroStep {
  const scheduler = new DDPMScheduler(model.scheduler);
  const snr = allSnr(scheduler.alphasCumprod);
  const sf = model.vae.config.scaling_factor;
  const accum = c.gradient_accumulation_steps;
  return async (batch, epoch, o) => {
    // Every per-sample draw (flip, crop, latent sample, caption, noise, timestep) happens sample
    // by sample, so a sample's randomness does not depend on how batches are cut: k micro-batches
    // of B give the same gradient as one batch of kB.
    const lat: Tensor[] = [], captions: string[] = [], base: Tensor[] = [], ts: number[] = [];
    const sizes: SizeConditioning[] = [];
    for (const img of batch) {
      const flip = img.subset.flipAug && rng.uniform() < 0.5;
      sizes.push(imageSizeConditioning(img, flip));
      lat.push(await source.latent(img, flip, rng));
      const cap = processCaption(img.caption, img.subset, epoch, rng);
      captions.push(o.caption ? o.caption(cap, rng) : cap);
      base.push(E.randn([1, ...lat[lat.length - 1].shape.slice(1)], rng, 'f32', E.cpuBackend));
      ts.push(c.min_timestep + Math.floor(rng.uniform() * (c.max_timestep - c.min_timestep)));
    }
    const latents = E.mulScalar(E.concat(lat, 0), sf);
    const B = batch.length;
    const baseNoise = E.concat(base, 0), noiseRngState = rng.getState();
    const noise = applyNoiseOptions(baseNoise, rng, { noiseOffset: c.noise_offset, multiresIterations: c.multires_noise_iterations, multiresDiscount: c.multires_noise_discount }).toBackend(device);
    const noisy = E.noGrad(() => scheduler.addNoise(latents, noise, ts));
    const text = textConditioner.encode(captions, o.textGrad);
    const pred = model.unet.forward(noisy, E.tensor(ts, [B]), text.context, model.family.addedConditioning(text, sizes));
    const target = c.v_parameterization ? E.noGrad(() => scheduler.getVelocity(latents, noise, ts)) : noise;
    const hc = c.loss_type === 'huber' || c.loss_type === 'smooth_l1'
      ? E.tensor(ts.map((t) => huberC(t, scheduler.alphasCumprod[t], c.huber_schedule, c.huber_c, c.huber_scale)), [B, 1, 1, 1]) : undefined;
    const perSample = E.mean(E.reshape(elementLoss(pred, target, c.loss_type, hc), [B, -1]), 1);
    // Prior preservation: regularization images weigh prior_loss_weight (sd-scripts' loss_weights).
    const w = ts.map((t, i) => {
      let k = batch[i].subset.isReg ? c.prior_loss_weight : 1;
      if (c.min_snr_gamma) k *= minSnrWeight(snr[t], c.min_snr_gamma, c.v_parameterization);
      if (c.scale_v_pred_loss_like_noise_pred) k *= scaleVPredLikeNoisePred(snr[t]);
      if (c.debiased_estimation_loss) k *= debiasedWeight(snr[t], c.v_parameterization);
      return k;
    });
    const loss = E.mulScalar(E.mean(E.mul(perSample, E.tensor(w, [B]))), 1 / accum);
    await loss.backwardAsync();
    const value = (await loss.value()) * accum;
    if (onMicroBatch) {
      const host = async (t: Tensor) => Float32Array.from((await t.data()) as Float32Array);
      onMicroBatch({ shape: [...latents.shape], latents: await host(latents), baseNoise: await host(baseNoise), noiseRngState, noise: await host(noise), noisy: await host(noisy), timesteps: ts, pred: await host(pred), loss: value });
    }
    return value;
  };
}

/**
 * The gradients of `params` on the host, and whether the NaN guard skips this step; when it does
 * not, they are clipped to max_grad_norm. (On cpu the arrays are the gradients' own storage.)
 */
export async function checkedGradients(params: { name: string; tensor: Tensor }[], accLoss: number, step: number, guard: NanGuard, advice: NanAdvice, maxGradNorm: number): Promise<{ grads: Float32Array[]; skip: boolean }> {
  const grads = await Promise.all(params.map(async (p) => ((await p.tensor.grad?.data()) as Float32Array | undefined) ?? new Float32Array(p.tensor.size)));
  const problem = NanGuard.problem(accLoss, grads.map((g, i) => ({ name: params[i].name, data: g })));
  const skip = guard.check(step, problem, advice);
  if (!skip && maxGradNorm > 0) clipGradNorm(grads, maxGradNorm);
  return { grads, skip };
}

export function clipGradNorm(grads: Float32Array[], maxNorm: number): void {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const coef = maxNorm / (Math.sqrt(sq) + 1e-6);
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
}
