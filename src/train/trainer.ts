// The LoRA training loop (sd-scripts train_network.py, §3.1): batches from the dataset, VAE
// latents (cached or per step), text conditioning, DDPM noise, UNet prediction, weighted loss,
// gradient accumulation and clipping, optimizer and lr schedule, samples, saves, exact resume.
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
import { loadLoRA } from '../lora/lora-file.js';
import { loraTensors, saveLoRATensors } from '../lora/lora-save.js';
import { resolveModel } from '../models/hub.js';
import { type SDModel, loadSDModel, moveModel } from '../models/sd-model.js';
import { loadExternalVae } from '../models/external-vae.js';
import { checkBaseModel } from './base-model-check.js';
import { DDPMScheduler } from '../schedulers/index.js';
import { type TrainConfig, configMessages, parseArgList } from './config.js';
import { allSnr, applyNoiseOptions, debiasedWeight, elementLoss, huberC, minSnrWeight, scaleVPredLikeNoisePred } from './loss-weights.js';
import { lossPlotSvg } from './loss-plot.js';
import { lrFactor } from './lr-schedulers.js';
import { type RunInfo, trainingMetadata } from './metadata.js';
import { LoRANetwork } from './network.js';
import { LycorisNetwork, lycorisOptions } from './lycoris-network.js';
import { type ParamGroup, createOptimizer } from './optimizers.js';
import { type TrainOptions, typed } from './options.js';
import { readSamplePrompts } from './sample-prompts.js';
import { type TrainState, loadState, saveState } from './state.js';
import { saveDespiteFullDisk, skipIfDiskFull } from './disk-full.js';
import { NanGuard, TrainingDiverged } from './nan-guard.js';
import { assertSameNetwork, moduleSetDiff, networkConfigOf } from './network-config.js';
import { acquireRunLock } from './run-lock.js';
import { resetTestHooks, testPoint } from './test-hooks.js';
import { applyFamilyOptions } from './family-training.js';
import { imageSizeConditioning } from './size-conditioning.js';
import { cacheTextOutputs, textCacheProblems } from './text-cache.js';
import { TextConditioner } from './text-conditioning.js';
import { familyComponents } from '../lora/components.js';
import { checkBLoRAModel } from '../lora/b-lora.js';
import { deviceLine, runTimeLines } from '../estimate/run-notice.js';

export interface StepInfo {
  step: number;
  maxSteps: number;
  epoch: number;
  epochs: number;
  loss: number;
  avgLoss: number;
  lr: number;
}

export interface TrainHooks {
  onStep?: (s: StepInfo) => void;
  log?: (msg: string) => void;
  /** Stop after this many optimizer steps in this run (tests of resume). */
  stopAfterSteps?: number;
  /** Polled between optimizer steps (Ctrl-C): when true, save the state and a LoRA, then return. */
  shouldStop?: () => boolean;
  /** Sees each micro-batch's tensors on the host (tests check the loss against the published formulas). */
  onMicroBatch?: (m: MicroBatchTrace) => void;
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

export interface TrainResult {
  finalPath: string | null;
  saved: string[];
  steps: number;
  losses: { step: number; loss: number }[];
  samples: string[];
  model: SDModel;
  network: LoRANetwork | LycorisNetwork;
  data: DataSummary;
  /** Stopped early by `shouldStop`; the state and `saved`'s last LoRA hold the step reached. */
  interrupted: boolean;
  /** The state folder written by this run, if any. */
  stateDir: string | null;
}

/** The run-time options that are not in TrainOptions (src/train/options.ts). */
interface FaultOptions { skip_nan_steps?: number; fallback_output_dir?: string; network_module?: string }

const precisionOf = (p?: string) => (p === 'fp16' ? 'F16' : p === 'bf16' ? 'BF16' : 'F32') as 'F32' | 'F16' | 'BF16';

export async function train(cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  // Textual Inversion and DreamBooth have their own trainers (src/train/run-training.ts dispatches).
  if ((cfg.training_method ?? 'lora') !== 'lora') throw new Error(`train() trains a LoRA; training_method ${String(cfg.training_method)} runs through runTraining (src/train/run-training.ts)`);
  const device = await E.selectBackend(typed(cfg).device);
  resetTestHooks();
  mkdirSync(typed(cfg).output_dir, { recursive: true });
  const lock = acquireRunLock(typed(cfg).output_dir, hooks.log ?? ((m: string) => console.error(m)));
  try {
    // Everything the run creates (weights moved over, LoRA parameters, noise, ids) lives on `device`.
    return await E.withBackend(device, () => trainOn(device, cfg, hooks));
  } finally {
    lock.release();
  }
}

async function trainOn(device: E.Backend, cfg: TrainConfig, hooks: TrainHooks): Promise<TrainResult> {
  const c: TrainOptions = typed(cfg);
  const log = hooks.log ?? ((m: string) => console.error(m));
  const choice = E.lastDeviceChoice();
  log(deviceLine(choice ?? { name: device.name as 'cpu' | 'webgpu', reason: 'chosen by the caller' }));
  for (const m of configMessages(cfg)) log(m);

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
  if (c.mixed_precision === 'bf16') log('note: mixed_precision bf16 stores the frozen weights in f16 (sdlora has no bf16 kernels); the metadata says fp16');
  for (const n of applyFamilyOptions(cfg, model.family, c.v_parameterization ? 'v_prediction' : model.prediction)) log(`note: ${n}`);
  if (c.mixed_precision !== 'no') for (const w of [model.unet.weights, ...model.textEncoders.map((t) => t.weights)]) w.toHalfStorage();
  moveModel(model, device);

  // Data
  const { specs, warnings } = c.dataset_config ? { specs: datasetConfigSpecs(c.dataset_config, cfg), warnings: [] as string[] } : folderModeSpecs(cfg);
  const data = await prepareData(specs, { skipBad: c.skip_bad });
  for (const w of [...warnings, ...data.warnings]) log(`warning: ${w}`);
  const nBatches = batchesPerEpoch(data.datasets);
  const plan = stepPlan(nBatches, c.gradient_accumulation_steps, c.max_train_steps, c.max_train_epochs);
  log(`${data.numTrainImages} training images (repeats included), ${data.numRegImages} regularization, ${nBatches} batches per epoch, ${plan.epochs} epochs, ${plan.maxTrainSteps} steps`);
  for (const m of runTimeLines({ unet: model.unet.config, resolution: c.resolution, batch: c.train_batch_size, rank: c.network_dim, steps: plan.maxTrainSteps,
    mixedPrecision: c.mixed_precision !== 'no', gradientCheckpointing: c.gradient_checkpointing, cacheLatents: c.cache_latents, trainTextEncoder: !c.network_train_unet_only, optimizer: c.optimizer_type }, device === E.cpuBackend ? 'cpu' : 'webgpu')) log(m);

  // Network
  const netArgs = parseArgList(c.network_args);
  const num = (k: string) => (netArgs[k] === undefined ? undefined : Number(netArgs[k]));
  const netOpts = {
    dim: c.network_dim, alpha: c.network_alpha, convDim: num('conv_dim'), convAlpha: num('conv_alpha'),
    dropout: c.network_dropout, rankDropout: num('rank_dropout'), moduleDropout: num('module_dropout'),
    trainUnet: !c.network_train_text_encoder_only, trainTextEncoder: !c.network_train_unet_only,
    bLora: /^true$/i.test(netArgs.b_lora ?? ''),
  };
  if (netOpts.bLora && netOpts.trainTextEncoder) log('note: b_lora trains the UNet\'s content and style blocks only (no text-encoder LoRA)');
  // The family's LoRA components (SD 1.x: te + unet; SDXL: te1, te2 + SGM-named unet).
  const models = familyComponents(model);
  if (netOpts.bLora) checkBLoRAModel(model.family, models, 'b_lora');
  const lycoris = (cfg as FaultOptions).network_module === 'lycoris.kohya' ? lycorisOptions(c.network_args, netOpts) : null;
  if (lycoris && c.network_dropout) log('note: network_dropout has no effect with lycoris.kohya (LyCORIS ignores it; rank_dropout and module_dropout work)');
  const network = lycoris
    ? (c.network_weights ? LycorisNetwork.fromFile(await loadLoRA(c.network_weights), models, lycoris, rng) : LycorisNetwork.create(models, lycoris, rng))
    : c.network_weights ? LoRANetwork.fromFile(await loadLoRA(c.network_weights), models, netOpts, rng) : LoRANetwork.create(models, netOpts, rng);
  if (lycoris) log(`LyCORIS ${lycoris.algo}${lycoris.doraWd ? ' + DoRA' : ''}, preset ${lycoris.preset}`);
  log(`LoRA: ${network.modules.length} modules (${network.modules.filter((m) => m.te).length} text encoder), rank ${c.network_dim}, alpha ${c.network_alpha}`);

  // Optimizer and schedule
  const groups = new Map<string, ParamGroup>();
  const teLr = c.text_encoder_lr ?? c.learning_rate, unetLr = c.unet_lr ?? c.learning_rate;
  if (netOpts.trainTextEncoder && teLr) groups.set('te', { name: 'te', lr: teLr });
  if (netOpts.trainUnet && unetLr) groups.set('unet', { name: 'unet', lr: unetLr });
  if (!groups.size) throw new Error('no parameter group has a non-zero learning rate');
  const optimizer = createOptimizer(c.optimizer_type, groups, parseArgList(c.optimizer_args));
  const sched = { name: c.lr_scheduler, totalSteps: plan.maxTrainSteps, warmupSteps: c.lr_warmup_steps, numCycles: c.lr_scheduler_num_cycles, power: c.lr_scheduler_power };

  // Resume
  const name = c.output_name ?? 'last';
  mkdirSync(c.output_dir, { recursive: true });
  const logFile = path.join(c.output_dir, `${name}-loss.jsonl`);
  const faults = cfg as FaultOptions;
  const networkConfig = networkConfigOf({ ...c, network_module: faults.network_module ?? 'networks.lora' });
  let state: TrainState = {
    globalStep: 0, epoch: 1, batchInEpoch: 0, rng: [], seed, sessionId: Math.floor(Math.random() * 2 ** 32),
    startedAt: Date.now() / 1000, losses: [], optimizer: { step: 0, scalars: {} }, network: networkConfig,
  };
  if (c.resume) {
    const r = await loadState(c.resume, log);
    const shapes = network.parameters().map((p) => ({ name: p.name, shape: p.param().shape }));
    assertSameNetwork(c.resume, r.state.network, networkConfig, moduleSetDiff(r.params, shapes));
    for (const p of network.parameters()) {
      const t = r.params.get(p.name);
      if (!t) throw new Error(`${c.resume}: the saved state has no weights for ${p.name} (different network settings?)`);
      p.set(t.requireGrad());
    }
    optimizer.loadState(r.optimizer);
    state = { ...r.state, network: networkConfig };
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
        // Latents of another VAE (or from before this check) are encoded again.
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

  // Text encoder outputs (cache_text_encoder_outputs: encoded once, frozen encoders)
  const textConditioner = new TextConditioner(model, { maxTokenLength: c.max_token_length, clipSkip: c.clip_skip }, c.cache_text_encoder_outputs);
  if (c.cache_text_encoder_outputs) {
    const problems = textCacheProblems(c, specs.flatMap((s) => s.subsets));
    if (problems.length) throw new Error(problems.join('; '));
    await cacheTextOutputs(textConditioner, data.datasets.flatMap((d) => d.images), { family: model.family, toDisk: c.cache_text_encoder_outputs_to_disk, device, log });
  }

  // Samples
  const prompts = c.sample_prompts ? readSamplePrompts(c.sample_prompts) : [];
  const samples: string[] = [];
  const sampleDir = path.join(c.output_dir, 'sample');
  const sample = async (tag: string) => {
    if (!prompts.length) return;
    mkdirSync(sampleDir, { recursive: true });
    network.setTraining(false);
    for (const [i, p] of prompts.entries()) {
      const seedP = p.seed ?? Math.floor(Math.random() * 2 ** 31);
      const r = await txt2img(model, { prompt: p.prompt, negativePrompt: p.negativePrompt, width: p.width, height: p.height, steps: p.steps, cfgScale: p.cfgScale, seed: seedP, sampler: p.sampler ?? c.sample_sampler, clipSkip: c.clip_skip });
      const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
      const file = path.join(sampleDir, `${name}_${tag}_${String(i).padStart(2, '0')}_${stamp}_${seedP}.png`);
      await writeBufferAtomic(file, encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
      samples.push(file);
    }
    network.setTraining(true);
  };

  // Saving
  const run: RunInfo = { sessionId: state.sessionId, startedAt: state.startedAt, seed, numBatchesPerEpoch: nBatches, numEpochs: plan.epochs, maxTrainSteps: plan.maxTrainSteps, optimizer: optimizer.describe(), base: model.family.metadata(c.v_parameterization ? 'v_prediction' : 'epsilon') };
  const saved: string[] = [];
  const stateDir = path.join(c.output_dir, `${name}-state`);
  let stateWritten = false;
  const stepFile = (step: number) => path.join(c.output_dir, `${name}-step${String(step).padStart(8, '0')}.safetensors`);
  const saveLoRAFile = async (file: string, at: { step: number; epoch: number }) => {
    await assertFiniteNetwork(network, at.step);
    const tensors = network instanceof LycorisNetwork ? network.tensors() : loraTensors(network.toWeights());
    await saveLoRATensors(file, tensors, trainingMetadata(cfg, data, run, at), precisionOf(c.save_precision));
    saved.push(file);
  };
  const saveStateNow = async (st: TrainState = { ...state, rng: rng.getState() }) => {
    await saveState(stateDir, st, network.parameters().map((p) => [p.name, p.param()]), optimizer.stateDict());
    stateWritten = true;
  };
  // A periodic save that meets a full disk is skipped with a warning: the weights are still in
  // memory, the previous state is intact, and the final save waits for space (disk-full.ts).
  const save = (file: string, at: { step: number; epoch: number }) => skipIfDiskFull(async () => {
    await saveLoRAFile(file, at);
    if (c.save_state) await saveStateNow();
  }, `the save at step ${at.step}`, log);

  // Host copies of the LoRA parameters for the optimizer (on cpu: the tensors' own storage).
  const hostCache = new WeakMap<Tensor, Float32Array>();
  const hostValues = async (t: Tensor): Promise<Float32Array> => {
    let h = hostCache.get(t);
    if (!h) { h = (await t.data()) as Float32Array; hostCache.set(t, h); }
    return h;
  };

  // Loop
  network.attach(models);
  network.setTraining(true);
  const params = network.parameters().filter((p) => groups.has(p.group));
  if (state.globalStep === 0 && c.sample_at_first) await sample('e000000');
  const accum = c.gradient_accumulation_steps;
  const stopAt = hooks.stopAfterSteps !== undefined ? state.globalStep + hooks.stopAfterSteps : Infinity;
  const nanGuard = new NanGuard(faults.skip_nan_steps ?? 0, log);
  const nanAdvice = () => ({
    learningRate: c.learning_rate, mixedPrecision: c.mixed_precision, maxGradNorm: c.max_grad_norm,
    lastSave: saved.at(-1) ?? null, stateDir: stateWritten ? stateDir : null,
  });
  let micro = 0, accLoss = 0, interrupted = false;
  // The state as of the last optimizer step: what an emergency save writes, even mid-accumulation.
  // (The loss log only grows, so its length is enough.)
  const snapshot = (at: Partial<TrainState> = {}) => ({ st: { ...state, rng: rng.getState(), ...at }, nLosses: state.losses.length });
  let boundary = snapshot();
  try {
    outer: for (let epoch = state.epoch; epoch <= plan.epochs; epoch++) {
      const batches = epochBatches(data.datasets, seed, epoch);
      for (let bi = epoch === state.epoch ? state.batchInEpoch : 0; bi < batches.length; bi++) {
        if (state.globalStep >= plan.maxTrainSteps || state.globalStep >= stopAt) break outer;
        if (micro === 0) {
          boundary = snapshot({ epoch, batchInEpoch: bi });
          if (hooks.shouldStop?.()) { interrupted = true; break outer; }
        }
        const batch = batches[bi];
        const loss = await microStep(batch, epoch);
        accLoss += loss;
        micro++;
        state.batchInEpoch = bi + 1;
        state.epoch = epoch;
        if (micro % accum !== 0 && bi !== batches.length - 1) continue;
        // Optimizer step
        const lrs = new Map<string, number>();
        const factor = lrFactor(state.globalStep, { ...sched, baseLr: c.learning_rate });
        for (const [k, g] of groups) lrs.set(k, g.lr * factor);
        // The optimizer runs on host copies of the (small) LoRA parameters; on cpu those copies
        // are the tensors' own storage, on a GPU they are written back after the update.
        const grads = await Promise.all(params.map(async (p) => ((await p.param().grad?.data()) as Float32Array | undefined) ?? new Float32Array(p.param().size)));
        const problem = NanGuard.problem(accLoss, grads.map((g, i) => ({ name: params[i].name, data: g })));
        const skip = nanGuard.check(state.globalStep + 1, problem, nanAdvice());
        if (!skip) {
          if (c.max_grad_norm > 0) clipGradNorm(grads, c.max_grad_norm);
          const values = await Promise.all(params.map((p) => hostValues(p.param())));
          optimizer.update(params.map((p, i) => ({ name: p.name, group: p.group, data: values[i] })), grads, lrs);
        }
        for (const p of network.parameters()) p.param().grad = null;
        if (c.scale_weight_norms && !skip) {
          if (network instanceof LycorisNetwork) await network.applyMaxNorm(c.scale_weight_norms, hostValues);
          else await maxNormRegularize(network, c.scale_weight_norms, hostValues);
        }
        for (const p of network.parameters()) { const h = hostCache.get(p.param()); if (h) p.param().assign(h); }
        await device.collect?.();
        state.globalStep++;
        const stepLoss = accLoss / (micro % accum || accum);
        accLoss = 0; micro = 0;
        if (!skip) state.losses.push({ step: state.globalStep, loss: stepLoss });
        boundary = snapshot();
        const recent = state.losses.slice(-Math.max(1, nBatches));
        const avg = recent.reduce((a, b) => a + b.loss, 0) / Math.max(1, recent.length);
        const lr0 = [...lrs.values()][lrs.size - 1];
        appendFileSync(logFile, `${JSON.stringify({ step: state.globalStep, epoch, loss: stepLoss, avr_loss: avg, lr: lr0, time: Date.now() / 1000, ...(skip ? { skipped: true } : {}) })}\n`);
        hooks.onStep?.({ step: state.globalStep, maxSteps: plan.maxTrainSteps, epoch, epochs: plan.epochs, loss: stepLoss, avgLoss: avg, lr: lr0 });
        await testPoint('step');
        if (c.sample_every_n_steps && !c.sample_every_n_epochs && state.globalStep % c.sample_every_n_steps === 0) await sample(String(state.globalStep).padStart(6, '0'));
        if (c.save_every_n_steps && state.globalStep % c.save_every_n_steps === 0 && state.globalStep < plan.maxTrainSteps) {
          await save(stepFile(state.globalStep), { step: state.globalStep, epoch });
        }
      }
      // End of epoch
      if (state.batchInEpoch >= batches.length) {
        if (c.sample_every_n_epochs && epoch % c.sample_every_n_epochs === 0) await sample(`e${String(epoch).padStart(6, '0')}`);
        if (c.save_every_n_epochs && epoch % c.save_every_n_epochs === 0 && epoch < plan.epochs) {
          await save(path.join(c.output_dir, `${name}-${String(epoch).padStart(6, '0')}.safetensors`), { step: state.globalStep, epoch });
          if (c.save_last_n_epochs) pruneEpochFiles(c.output_dir, name, epoch - c.save_last_n_epochs * c.save_every_n_epochs);
        }
        state.epoch = epoch + 1;
        state.batchInEpoch = 0;
      }
    }
  } catch (e) {
    // A diverged network is not worth saving: the last good save stays the newest file.
    if (!(e instanceof TrainingDiverged)) await emergencySave(e as Error);
    throw e;
  } finally {
    network.setTraining(false);
  }

  let finalPath: string | null = null;
  const finished = state.globalStep >= plan.maxTrainSteps;
  if (interrupted) {
    await testPoint('interrupt-save');
    await saveLoRAFile(stepFile(state.globalStep), { step: state.globalStep, epoch: state.epoch });
    await saveStateNow();
  } else if (finished) {
    const bytes = network.parameters().reduce((a, p) => a + p.param().size, 0) * (c.save_precision === 'float' || !c.save_precision ? 4 : 2) + 65536;
    const at = { step: state.globalStep, epoch: plan.epochs };
    finalPath = await saveDespiteFullDisk(path.join(c.output_dir, `${name}.safetensors`), (f) => saveLoRAFile(f, at), { bytes, fallbackDir: faults.fallback_output_dir, log });
    if (c.save_state) await saveStateNow().catch((e: Error) => log(`warning: the LoRA is saved, but not the training state: ${e.message}`));
  } else if (c.save_state) {
    await saveStateNow();
  }
  writeFileSync(path.join(c.output_dir, `${name}-loss.svg`), lossPlotSvg(state.losses, `${name}: loss per step`));
  return { finalPath, saved, steps: state.globalStep, losses: state.losses, samples, model, network, data, interrupted, stateDir: stateWritten ? stateDir : null };

  /** On an unexpected error: the LoRA and state of the last optimizer step, so no finished step is lost. */
  async function emergencySave(err: Error): Promise<void> {
    const { st, nLosses } = boundary;
    if (st.globalStep === 0) return;
    try {
      await saveLoRAFile(stepFile(st.globalStep), { step: st.globalStep, epoch: st.epoch });
      await saveStateNow({ ...st, losses: st.losses.slice(0, nLosses) });
      log(`error after step ${st.globalStep}; its LoRA and state are saved: ${stepFile(st.globalStep)}, resume with resume=${stateDir}`);
    } catch (e2) {
      log(`error: could not save the weights after the error (${(e2 as Error).message}); the original error follows (${err.message})`);
    }
  }

  /** Forward and backward of one micro-batch; returns its loss. */
  async function microStep(batch: TrainImage[], epoch: number): Promise<number> {
    // Every per-sample draw (flip, crop, latent sample, caption, noise, timestep) happens sample
    // by sample, so a sample's randomness does not depend on how batches are cut: k micro-batches
    // of B give the same gradient as one batch of kB.
    const lat: Tensor[] = [], captions: string[] = [], base: Tensor[] = [], ts: number[] = [];
    const sizes: SizeConditioning[] = [];
    for (const img of batch) {
      const flip = img.subset.flipAug && rng.uniform() < 0.5;
      sizes.push(imageSizeConditioning(img, flip));
      const cached = latentCache.get(img.path);
      if (cached) lat.push(flip && cached.flipped ? cached.flipped : cached.plain);
      else lat.push(await encodeImage(img, flip, cropOffsets(img.placement.resized, img.placement.bucket, () => rng.uniform(), img.subset.randomCrop), rng, true));
      captions.push(processCaption(img.caption, img.subset, epoch, rng));
      base.push(E.randn([1, ...lat[lat.length - 1].shape.slice(1)], rng, 'f32', E.cpuBackend));
      ts.push(c.min_timestep + Math.floor(rng.uniform() * (c.max_timestep - c.min_timestep)));
    }
    const latents = E.mulScalar(E.concat(lat, 0), sf);
    const lossWeights = batch.map((img) => (img.subset.isReg ? c.prior_loss_weight : 1));
    const B = batch.length;
    const baseNoise = E.concat(base, 0), noiseRngState = rng.getState();
    const noise = applyNoiseOptions(baseNoise, rng, { noiseOffset: c.noise_offset, multiresIterations: c.multires_noise_iterations, multiresDiscount: c.multires_noise_discount }).toBackend(device);
    const noisy = E.noGrad(() => scheduler.addNoise(latents, noise, ts));
    const trainTe = network.modules.some((m) => m.te) && groups.has('te');
    const text = textConditioner.encode(captions, trainTe);
    const pred = model.unet.forward(noisy, E.tensor(ts, [B]), text.context, model.family.addedConditioning(text, sizes));
    const target = c.v_parameterization ? E.noGrad(() => scheduler.getVelocity(latents, noise, ts)) : noise;
    const hc = c.loss_type === 'huber' || c.loss_type === 'smooth_l1'
      ? E.tensor(ts.map((t) => huberC(t, scheduler.alphasCumprod[t], c.huber_schedule, c.huber_c, c.huber_scale)), [B, 1, 1, 1]) : undefined;
    const perSample = E.mean(E.reshape(elementLoss(pred, target, c.loss_type, hc), [B, -1]), 1);
    const w = ts.map((t, i) => {
      let k = lossWeights[i];
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

/** Refuses to write a LoRA holding NaN or Inf (it would render black images). */
async function assertFiniteNetwork(net: LoRANetwork | LycorisNetwork, step: number): Promise<void> {
  for (const p of net.parameters()) {
    if (!((await p.param().data()) as Float32Array).every(Number.isFinite)) {
      throw new TrainingDiverged(`step ${step}: ${p.name} holds NaN or Inf; not saving a broken LoRA (try a lower learning_rate)`);
    }
  }
}

function clipGradNorm(grads: Float32Array[], maxNorm: number): void {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
}

/**
 * sd-scripts --scale_weight_norms: shrink modules whose delta norm exceeds maxNorm. Works on the
 * host copies (`host`); the caller writes them back.
 */
async function maxNormRegularize(net: LoRANetwork, maxNorm: number, host: (t: Tensor) => Promise<Float32Array>): Promise<void> {
  for (const m of net.modules) {
    const [upH, downH] = [await host(m.up), await host(m.down)];
    const d = E.noGrad(() => {
      const up = E.tensor(upH, [m.up.shape[0], m.rank], 'f32', E.cpuBackend), down = E.tensor(downH, [m.rank, downH.length / m.rank], 'f32', E.cpuBackend);
      return E.mulScalar(E.matmul(up, down), m.scale).dataSync();
    });
    let sq = 0;
    for (const v of d) sq += v * v;
    const norm = Math.max(Math.sqrt(sq), maxNorm / 2);
    const ratio = Math.min(norm, maxNorm) / norm;
    if (ratio !== 1) {
      const s = Math.sqrt(ratio);
      for (const a of [upH, downH]) for (let i = 0; i < a.length; i++) a[i] *= s;
    }
  }
}

function pruneEpochFiles(dir: string, name: string, belowEpoch: number): void {
  for (const f of readdirSync(dir)) {
    const m = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d{6})\\.safetensors$`).exec(f);
    if (m && Number(m[1]) <= belowEpoch) rmSync(path.join(dir, f));
  }
}
