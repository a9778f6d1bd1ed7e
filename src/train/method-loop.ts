// The training loop of the methods that train the model's own tensors instead of a LoRA network:
// Textual Inversion (src/train/textual-inversion.ts: new token-embedding rows) and DreamBooth /
// fine-tuning (src/train/dreambooth.ts: the UNet, optionally the text encoder). Same stages as the
// LoRA trainer (src/train/trainer.ts): model, data, method, optimizer, resume, latent cache,
// samples, saving, loop; the same data pipeline, noise, loss weights, schedules, exact resume and
// atomic saves. What trains and what is written come from the method.
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { SizeConditioning } from '../families/family.js';
import { cropOffsets } from '../data/buckets.js';
import { processCaption } from '../data/captions.js';
import { type DataSummary, type TrainImage, prepareData } from '../data/dataset.js';
import { batchesPerEpoch, epochBatches, stepPlan } from '../data/batches.js';
import { colorAugment, prepareImageRgb, rgbToTensorData } from '../data/images.js';
import { datasetConfigSpecs, folderModeSpecs } from '../data/specs.js';
import { writeBufferAtomic } from '../io/atomic-write.js';
import { encodePng } from '../io/png.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { txt2img } from '../infer/txt2img.js';
import { resolveModel } from '../models/hub.js';
import { type SDModel, loadSDModel, moveModel } from '../models/sd-model.js';
import { loadExternalVae } from '../models/external-vae.js';
import { DDPMScheduler } from '../schedulers/index.js';
import { checkBaseModel } from './base-model-check.js';
import { type TrainConfig, configMessages, parseArgList } from './config.js';
import { applyFamilyOptions } from './family-training.js';
import { allSnr, applyNoiseOptions, debiasedWeight, elementLoss, huberC, minSnrWeight, scaleVPredLikeNoisePred } from './loss-weights.js';
import { lossPlotSvg } from './loss-plot.js';
import { lrFactor } from './lr-schedulers.js';
import { NanGuard, TrainingDiverged } from './nan-guard.js';
import { type ParamGroup, createOptimizer } from './optimizers.js';
import { type TrainOptions, typed } from './options.js';
import { acquireRunLock } from './run-lock.js';
import { readSamplePrompts } from './sample-prompts.js';
import { imageSizeConditioning } from './size-conditioning.js';
import { type TrainState, loadState, saveState } from './state.js';
import { TextConditioner } from './text-conditioning.js';
import type { MicroBatchTrace, StepInfo } from './trainer.js';

/** One trained tensor: its name in the state file, its learning-rate group, the tensor itself. */
export interface TrainParam { name: string; group: string; tensor: Tensor }

export interface MethodContext {
  cfg: TrainConfig;
  model: SDModel;
  data: DataSummary;
  rng: E.Rng;
  log: (m: string) => void;
}

/** What a training method trains and writes. */
export interface TrainingMethod {
  /** For logs and the state file ("textual_inversion", "dreambooth"). */
  id: string;
  params: TrainParam[];
  /** Learning rate per group (each param's group must be here). */
  groups: Map<string, ParamGroup>;
  /** The settings that shape `params`: a resumed state must have been saved with the same ones. */
  config: Record<string, unknown>;
  /** The caption after sd-scripts' processing (TI: templates); default unchanged. */
  caption?: (caption: string, rng: E.Rng) => string;
  /** Whether the text conditioning needs gradients at this optimizer step (0-based). */
  textGrad(step: number): boolean;
  /** Groups the optimizer updates at this step (DreamBooth: te stops at stop_text_encoder_training). */
  activeGroups(step: number): Set<string>;
  /** Re-reads `params` after the model moved to the training device (tensors in the model's weights). */
  rebind?(): void;
  /** Called once an optimizer step has written new values (TI: nothing; kept for methods with tied tensors). */
  afterUpdate?(): void;
  /** Where the final/step/epoch output goes for a stem (a file or, diffusers, a folder). */
  outputPath(dir: string, stem: string): string;
  /** Writes the trained result; `at` is the step and epoch reached. */
  save(target: string, at: { step: number; epoch: number }, run: MethodRunInfo): Promise<void>;
  /** Rough bytes of one save (for the full-disk check in logs). */
  bytes?: number;
}

export interface MethodRunInfo { sessionId: number; startedAt: number; seed: number; numBatchesPerEpoch: number; numEpochs: number; maxTrainSteps: number; optimizer: string }

export interface MethodHooks {
  onStep?: (s: StepInfo) => void;
  log?: (msg: string) => void;
  stopAfterSteps?: number;
  shouldStop?: () => boolean;
  onMicroBatch?: (m: MicroBatchTrace) => void;
}

export interface MethodResult {
  finalPath: string | null;
  saved: string[];
  steps: number;
  losses: { step: number; loss: number }[];
  samples: string[];
  model: SDModel;
  method: TrainingMethod;
  data: DataSummary;
  interrupted: boolean;
  stateDir: string | null;
}

export type MethodSetup = (ctx: MethodContext) => TrainingMethod | Promise<TrainingMethod>;

export async function trainWithMethod(cfg: TrainConfig, setup: MethodSetup, hooks: MethodHooks = {}): Promise<MethodResult> {
  const device = await E.selectBackend(typed(cfg).device);
  mkdirSync(typed(cfg).output_dir, { recursive: true });
  const lock = acquireRunLock(typed(cfg).output_dir, hooks.log ?? ((m: string) => console.error(m)));
  try {
    return await E.withBackend(device, () => runMethod(device, cfg, setup, hooks));
  } finally {
    lock.release();
  }
}

const isDir = (p: string) => !p.endsWith('.safetensors');

async function runMethod(device: E.Backend, cfg: TrainConfig, setup: MethodSetup, hooks: MethodHooks): Promise<MethodResult> {
  const c: TrainOptions = typed(cfg);
  const log = hooks.log ?? ((m: string) => console.error(m));
  if (device !== E.cpuBackend) log(`device: ${device.name}`);
  for (const m of configMessages(cfg)) log(m);
  if (c.cache_text_encoder_outputs) throw new Error(`cache_text_encoder_outputs: not available with training_method ${String(cfg.training_method)} (the text conditioning changes as it trains, or is not cached by this method)`);

  let seed = c.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = new E.Rng(seed);

  // Model
  const modelPath = await resolveModel(c.pretrained_model_name_or_path, log);
  const randomState = { save: () => rng.getState(), restore: (s: unknown) => rng.setState(s as number[]) };
  const model = await loadSDModel(modelPath, { unet: { gradientCheckpointing: c.gradient_checkpointing, randomState } });
  checkBaseModel(c, model, log);
  if (c.v_parameterization) model.scheduler = { ...model.scheduler, prediction_type: 'v_prediction' };
  const vaePath = (cfg as { vae?: string }).vae;
  if (vaePath) { model.vae = await loadExternalVae(vaePath, model.vae); log(`vae: ${vaePath}`); }
  for (const n of applyFamilyOptions(cfg, model.family, c.v_parameterization ? 'v_prediction' : model.prediction)) log(`note: ${n}`);

  // Data
  const { specs, warnings } = c.dataset_config ? { specs: datasetConfigSpecs(c.dataset_config, cfg), warnings: [] as string[] } : folderModeSpecs(cfg);
  const data = await prepareData(specs, { skipBad: c.skip_bad });
  for (const w of [...warnings, ...data.warnings]) log(`warning: ${w}`);
  const nBatches = batchesPerEpoch(data.datasets);
  const plan = stepPlan(nBatches, c.gradient_accumulation_steps, c.max_train_steps, c.max_train_epochs);
  log(`${data.numTrainImages} training images (repeats included), ${data.numRegImages} regularization, ${nBatches} batches per epoch, ${plan.epochs} epochs, ${plan.maxTrainSteps} steps`);

  // Method: marks what trains (requireGrad) before the frozen rest goes to f16 storage, so the
  // trained tensors stay f32 master weights.
  const method = await setup({ cfg, model, data, rng, log });
  if (c.mixed_precision === 'bf16') log('note: mixed_precision bf16 stores the frozen weights in f16 (sdlora has no bf16 kernels)');
  if (c.mixed_precision !== 'no') for (const w of [model.unet.weights, ...model.textEncoders.map((t) => t.weights)]) w.toHalfStorage();
  moveModel(model, device);
  method.rebind?.();
  for (const p of method.params) if (p.tensor.backend !== device) throw new Error(`${p.name}: a trained tensor is not on ${device.name}`);

  // Optimizer and schedule
  const optimizer = createOptimizer(c.optimizer_type, method.groups, parseArgList(c.optimizer_args));
  const sched = { name: c.lr_scheduler, totalSteps: plan.maxTrainSteps, warmupSteps: c.lr_warmup_steps, numCycles: c.lr_scheduler_num_cycles, power: c.lr_scheduler_power };

  // Resume
  const name = c.output_name ?? 'last';
  const logFile = path.join(c.output_dir, `${name}-loss.jsonl`);
  const stateConfig = { training_method: method.id, ...method.config };
  let state: TrainState = {
    globalStep: 0, epoch: 1, batchInEpoch: 0, rng: [], seed, sessionId: Math.floor(Math.random() * 2 ** 32),
    startedAt: Date.now() / 1000, losses: [], optimizer: { step: 0, scalars: {} },
  };
  if (c.resume) {
    const r = await loadState(c.resume, log);
    const saved = (r.state as { method?: Record<string, unknown> }).method;
    if (JSON.stringify(saved) !== JSON.stringify(stateConfig)) {
      throw new Error(`${c.resume}: the state was saved by another training setup (${JSON.stringify(saved ?? 'a LoRA run')}); this run is ${JSON.stringify(stateConfig)}`);
    }
    for (const p of method.params) {
      const t = r.params.get(p.name);
      if (!t || t.shape.join() !== p.tensor.shape.join()) throw new Error(`${c.resume}: the saved state has no ${p.name} [${p.tensor.shape.join(', ')}]`);
      p.tensor.assign(t.dataSync());
    }
    optimizer.loadState(r.optimizer);
    state = r.state;
    seed = state.seed;
    rng.setState(state.rng);
    log(`resumed at step ${state.globalStep}, epoch ${state.epoch}`);
  } else if (existsSync(logFile)) {
    rmSync(logFile);
  }

  // Latent cache
  const scheduler = new DDPMScheduler(model.scheduler);
  const snr = allSnr(scheduler.alphasCumprod);
  const sf = model.vae.config.scaling_factor;
  const latentCache = new Map<string, { plain: Tensor; flipped?: Tensor }>();
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
    const vaeSource = path.resolve(vaePath ?? modelPath);
    for (const img of all) {
      const [bw, bh] = img.placement.bucket;
      const diskPath = `${img.path.replace(/\.[^.]+$/, '')}_${String(img.size[0]).padStart(4, '0')}x${String(img.size[1]).padStart(4, '0')}${model.family.latentCacheSuffix}.safetensors`;
      const factor = 2 ** (model.vae.config.block_out_channels.length - 1);
      const wantShape = [1, model.vae.config.latent_channels, bh / factor, bw / factor];
      if (c.cache_latents_to_disk && existsSync(diskPath)) {
        const { tensors: t, metadata: meta } = await loadSafetensors(diskPath);
        if (meta.vae === vaeSource && t.latents && t.latents.shape.join() === wantShape.join() && (!img.subset.flipAug || t.latents_flipped)) {
          latentCache.set(img.path, { plain: t.latents.toBackend(device), flipped: t.latents_flipped?.toBackend(device) });
          continue;
        }
      }
      const off = cropOffsets(img.placement.resized, img.placement.bucket, () => 0, false);
      const entry = { plain: await encodeImage(img, false, off, cacheRng), flipped: img.subset.flipAug ? await encodeImage(img, true, off, cacheRng) : undefined };
      latentCache.set(img.path, entry);
      if (c.cache_latents_to_disk) await saveSafetensors(diskPath, { latents: entry.plain, ...(entry.flipped ? { latents_flipped: entry.flipped } : {}) }, { vae: vaeSource });
    }
  }
  const textConditioner = new TextConditioner(model, { maxTokenLength: c.max_token_length, clipSkip: c.clip_skip }, false);

  // Samples (the trained tensors are the model's own, so txt2img sees them as they are)
  const prompts = c.sample_prompts ? readSamplePrompts(c.sample_prompts) : [];
  const samples: string[] = [];
  const sampleDir = path.join(c.output_dir, 'sample');
  const sample = async (tag: string) => {
    if (!prompts.length) return;
    mkdirSync(sampleDir, { recursive: true });
    for (const [i, p] of prompts.entries()) {
      const seedP = p.seed ?? Math.floor(Math.random() * 2 ** 31);
      const r = await txt2img(model, { prompt: p.prompt, negativePrompt: p.negativePrompt, width: p.width, height: p.height, steps: p.steps, cfgScale: p.cfgScale, seed: seedP, sampler: p.sampler ?? c.sample_sampler, clipSkip: c.clip_skip });
      const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
      const file = path.join(sampleDir, `${name}_${tag}_${String(i).padStart(2, '0')}_${stamp}_${seedP}.png`);
      await writeBufferAtomic(file, encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
      samples.push(file);
    }
  };

  // Saving
  const run: MethodRunInfo = { sessionId: state.sessionId, startedAt: state.startedAt, seed, numBatchesPerEpoch: nBatches, numEpochs: plan.epochs, maxTrainSteps: plan.maxTrainSteps, optimizer: optimizer.describe() };
  const saved: string[] = [];
  const stateDir = path.join(c.output_dir, `${name}-state`);
  let stateWritten = false;
  const stepTarget = (step: number) => method.outputPath(c.output_dir, `${name}-step${String(step).padStart(8, '0')}`);
  const saveOutput = async (target: string, at: { step: number; epoch: number }) => {
    for (const p of method.params) {
      if (!((await p.tensor.data()) as Float32Array).every(Number.isFinite)) throw new TrainingDiverged(`step ${at.step}: ${p.name} holds NaN or Inf; not saving it (try a lower learning_rate)`);
    }
    await method.save(target, at, run);
    saved.push(target);
  };
  const saveStateNow = async (st: TrainState = { ...state, rng: rng.getState() }) => {
    await saveState(stateDir, { ...st, method: stateConfig } as TrainState, method.params.map((p) => [p.name, p.tensor]), optimizer.stateDict());
    stateWritten = true;
  };
  const save = async (target: string, at: { step: number; epoch: number }) => {
    await saveOutput(target, at);
    if (c.save_state) await saveStateNow();
  };

  // Loop
  if (state.globalStep === 0 && c.sample_at_first) await sample('e000000');
  const accum = c.gradient_accumulation_steps;
  const stopAt = hooks.stopAfterSteps !== undefined ? state.globalStep + hooks.stopAfterSteps : Infinity;
  const nanGuard = new NanGuard(Number((cfg as { skip_nan_steps?: number }).skip_nan_steps ?? 0), log);
  let micro = 0, accLoss = 0, interrupted = false;
  const snapshot = (at: Partial<TrainState> = {}) => ({ st: { ...state, rng: rng.getState(), ...at }, nLosses: state.losses.length });
  let boundary = snapshot();
  let wasTextGrad = method.textGrad(state.globalStep);
  try {
    outer: for (let epoch = state.epoch; epoch <= plan.epochs; epoch++) {
      const batches = epochBatches(data.datasets, seed, epoch);
      for (let bi = epoch === state.epoch ? state.batchInEpoch : 0; bi < batches.length; bi++) {
        if (state.globalStep >= plan.maxTrainSteps || state.globalStep >= stopAt) break outer;
        if (micro === 0) {
          boundary = snapshot({ epoch, batchInEpoch: bi });
          if (hooks.shouldStop?.()) { interrupted = true; break outer; }
          const tg = method.textGrad(state.globalStep);
          if (wasTextGrad && !tg) log(`step ${state.globalStep}: the text encoder stops training (stop_text_encoder_training)`);
          wasTextGrad = tg;
        }
        const loss = await microStep(batches[bi], epoch);
        accLoss += loss;
        micro++;
        state.batchInEpoch = bi + 1;
        state.epoch = epoch;
        if (micro % accum !== 0 && bi !== batches.length - 1) continue;
        // Optimizer step over the groups that train at this step (on host copies; on cpu the storage itself).
        const active = method.activeGroups(state.globalStep);
        const params = method.params.filter((p) => active.has(p.group));
        const lrs = new Map<string, number>();
        const factor = lrFactor(state.globalStep, { ...sched, baseLr: c.learning_rate });
        for (const [k, g] of method.groups) if (active.has(k)) lrs.set(k, g.lr * factor);
        const grads = await Promise.all(params.map(async (p) => ((await p.tensor.grad?.data()) as Float32Array | undefined) ?? new Float32Array(p.tensor.size)));
        const problem = NanGuard.problem(accLoss, grads.map((g, i) => ({ name: params[i].name, data: g })));
        const skip = nanGuard.check(state.globalStep + 1, problem, { learningRate: c.learning_rate, mixedPrecision: c.mixed_precision, maxGradNorm: c.max_grad_norm, lastSave: saved.at(-1) ?? null, stateDir: stateWritten ? stateDir : null });
        if (!skip) {
          if (c.max_grad_norm > 0) clipGradNorm(grads, c.max_grad_norm);
          const values = await Promise.all(params.map(async (p) => (await p.tensor.data()) as Float32Array));
          optimizer.update(params.map((p, i) => ({ name: p.name, group: p.group, data: values[i] })), grads, lrs);
          params.forEach((p, i) => p.tensor.assign(values[i]));
          method.afterUpdate?.();
        }
        for (const p of method.params) p.tensor.grad = null;
        await device.collect?.();
        state.globalStep++;
        const stepLoss = accLoss / (micro % accum || accum);
        accLoss = 0; micro = 0;
        if (!skip) state.losses.push({ step: state.globalStep, loss: stepLoss });
        boundary = snapshot();
        const recent = state.losses.slice(-Math.max(1, nBatches));
        const avg = recent.reduce((a, b) => a + b.loss, 0) / Math.max(1, recent.length);
        const lr0 = [...lrs.values()][lrs.size - 1] ?? 0;
        appendFileSync(logFile, `${JSON.stringify({ step: state.globalStep, epoch, loss: stepLoss, avr_loss: avg, lr: lr0, time: Date.now() / 1000, ...(skip ? { skipped: true } : {}) })}\n`);
        hooks.onStep?.({ step: state.globalStep, maxSteps: plan.maxTrainSteps, epoch, epochs: plan.epochs, loss: stepLoss, avgLoss: avg, lr: lr0 });
        if (c.sample_every_n_steps && !c.sample_every_n_epochs && state.globalStep % c.sample_every_n_steps === 0) await sample(String(state.globalStep).padStart(6, '0'));
        if (c.save_every_n_steps && state.globalStep % c.save_every_n_steps === 0 && state.globalStep < plan.maxTrainSteps) {
          await save(stepTarget(state.globalStep), { step: state.globalStep, epoch });
        }
      }
      if (state.batchInEpoch >= batches.length) {
        if (c.sample_every_n_epochs && epoch % c.sample_every_n_epochs === 0) await sample(`e${String(epoch).padStart(6, '0')}`);
        if (c.save_every_n_epochs && epoch % c.save_every_n_epochs === 0 && epoch < plan.epochs) {
          await save(method.outputPath(c.output_dir, `${name}-${String(epoch).padStart(6, '0')}`), { step: state.globalStep, epoch });
          if (c.save_last_n_epochs) pruneEpochOutputs(c.output_dir, name, epoch - c.save_last_n_epochs * c.save_every_n_epochs);
        }
        state.epoch = epoch + 1;
        state.batchInEpoch = 0;
      }
    }
  } catch (e) {
    if (!(e instanceof TrainingDiverged)) await emergencySave(e as Error);
    throw e;
  }

  let finalPath: string | null = null;
  if (interrupted) {
    await saveOutput(stepTarget(state.globalStep), { step: state.globalStep, epoch: state.epoch });
    await saveStateNow();
  } else if (state.globalStep >= plan.maxTrainSteps) {
    finalPath = method.outputPath(c.output_dir, name);
    await saveOutput(finalPath, { step: state.globalStep, epoch: plan.epochs });
    if (c.save_state) await saveStateNow();
  } else if (c.save_state) {
    await saveStateNow();
  }
  writeFileSync(path.join(c.output_dir, `${name}-loss.svg`), lossPlotSvg(state.losses, `${name}: loss per step`));
  return { finalPath, saved, steps: state.globalStep, losses: state.losses, samples, model, method, data, interrupted, stateDir: stateWritten ? stateDir : null };

  async function emergencySave(err: Error): Promise<void> {
    const { st, nLosses } = boundary;
    if (st.globalStep === 0) return;
    try {
      await saveOutput(stepTarget(st.globalStep), { step: st.globalStep, epoch: st.epoch });
      await saveStateNow({ ...st, losses: st.losses.slice(0, nLosses) });
      log(`error after step ${st.globalStep}; its weights and state are saved: ${stepTarget(st.globalStep)}, resume with resume=${stateDir}`);
    } catch (e2) {
      log(`error: could not save after the error (${(e2 as Error).message}); the original error follows (${err.message})`);
    }
  }

  /** Forward and backward of one micro-batch (as the LoRA trainer's); returns its loss. */
  async function microStep(batch: TrainImage[], epoch: number): Promise<number> {
    const lat: Tensor[] = [], captions: string[] = [], base: Tensor[] = [], ts: number[] = [];
    const sizes: SizeConditioning[] = [];
    for (const img of batch) {
      const flip = img.subset.flipAug && rng.uniform() < 0.5;
      sizes.push(imageSizeConditioning(img, flip));
      const cached = latentCache.get(img.path);
      if (cached) lat.push(flip && cached.flipped ? cached.flipped : cached.plain);
      else lat.push(await encodeImage(img, flip, cropOffsets(img.placement.resized, img.placement.bucket, () => rng.uniform(), img.subset.randomCrop), rng, true));
      const cap = processCaption(img.caption, img.subset, epoch, rng);
      captions.push(method.caption ? method.caption(cap, rng) : cap);
      base.push(E.randn([1, ...lat[lat.length - 1].shape.slice(1)], rng, 'f32', E.cpuBackend));
      ts.push(c.min_timestep + Math.floor(rng.uniform() * (c.max_timestep - c.min_timestep)));
    }
    const latents = E.mulScalar(E.concat(lat, 0), sf);
    const B = batch.length;
    const baseNoise = E.concat(base, 0), noiseRngState = rng.getState();
    const noise = applyNoiseOptions(baseNoise, rng, { noiseOffset: c.noise_offset, multiresIterations: c.multires_noise_iterations, multiresDiscount: c.multires_noise_discount }).toBackend(device);
    const noisy = E.noGrad(() => scheduler.addNoise(latents, noise, ts));
    const text = textConditioner.encode(captions, method.textGrad(state.globalStep));
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
    if (hooks.onMicroBatch) {
      const host = async (t: Tensor) => Float32Array.from((await t.data()) as Float32Array);
      hooks.onMicroBatch({ shape: [...latents.shape], latents: await host(latents), baseNoise: await host(baseNoise), noiseRngState, noise: await host(noise), noisy: await host(noisy), timesteps: ts, pred: await host(pred), loss: value });
    }
    return value;
  }
}

function clipGradNorm(grads: Float32Array[], maxNorm: number): void {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const coef = maxNorm / (Math.sqrt(sq) + 1e-6);
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
}

/** Epoch outputs (files or diffusers folders) at or below `belowEpoch` go. */
function pruneEpochOutputs(dir: string, name: string, belowEpoch: number): void {
  const re = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d{6})(\\.safetensors)?$`);
  for (const f of readdirSync(dir)) {
    const m = re.exec(f);
    if (m && Number(m[1]) <= belowEpoch) rmSync(path.join(dir, f), { recursive: true, force: true });
  }
}

export { isDir as isFolderOutput };
