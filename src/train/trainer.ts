// The LoRA training loop (sd-scripts train_network.py, §3.1): batches from the dataset, VAE
// latents (cached or per step), text conditioning, DDPM noise, UNet prediction, weighted loss,
// gradient accumulation and clipping, optimizer and lr schedule, samples, saves, exact resume.
// The stages shared with the method loop live in run-setup.ts, latent-cache.ts, step.ts,
// sampling.ts, checkpoints.ts and loop.ts; the network stage in network-setup.ts; this file wires
// them with what is the LoRA's own (host copies for the optimizer, max-norm, the LoRA file).
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { loraTensors, saveLoRATensors } from '../lora/lora-save.js';
import { type TrainConfig, configMessages, parseArgList } from './config.js';
import { type RunInfo, trainingMetadata } from './metadata.js';
import { LoRANetwork } from './network.js';
import { LycorisNetwork } from './lycoris-network.js';
import { createOptimizer } from './optimizers.js';
import { type TrainOptions, typed } from './options.js';
import { NanGuard } from './nan-guard.js';
import { assertSameNetwork, moduleSetDiff, networkConfigOf } from './network-config.js';
import { cacheTextOutputs, textCacheProblems } from './text-cache.js';
import { TextConditioner } from './text-conditioning.js';
import { deviceLine, runTimeLines } from '../estimate/run-notice.js';
import { freshState, loadTrainingData, loadTrainingModel, toTrainingDevice, withTrainingRun } from './run-setup.js';
import { latentSource } from './latent-cache.js';
import { checkedGradients, microStepper } from './step.js';
import { sampler } from './sampling.js';
import { Checkpoints, startState } from './checkpoints.js';
import { applyMaxNorm, createTrainingNetwork } from './network-setup.js';
import { type RunHooks, type RunResult, trainLoop } from './loop.js';

export type { MicroBatchTrace, StepInfo } from './step.js';

export type TrainHooks = RunHooks;

export interface TrainResult extends RunResult {
  network: LoRANetwork | LycorisNetwork;
}

/** The run-time options that are not in TrainOptions (src/train/options.ts). */
interface FaultOptions { skip_nan_steps?: number; fallback_output_dir?: string; network_module?: string }

const precisionOf = (p?: string) => (p === 'fp16' ? 'F16' : p === 'bf16' ? 'BF16' : 'F32') as 'F32' | 'F16' | 'BF16';

export async function train(cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  // Textual Inversion and DreamBooth have their own trainers (src/train/run-training.ts dispatches).
  if ((cfg.training_method ?? 'lora') !== 'lora') throw new Error(`train() trains a LoRA; training_method ${String(cfg.training_method)} runs through runTraining (src/train/run-training.ts)`);
  return withTrainingRun(cfg, hooks.log ?? ((m: string) => console.error(m)), (device) => trainOn(device, cfg, hooks));
}

async function trainOn(device: E.Backend, cfg: TrainConfig, hooks: TrainHooks): Promise<TrainResult> {
  const c: TrainOptions = typed(cfg);
  const log = hooks.log ?? ((m: string) => console.error(m));
  const choice = E.lastDeviceChoice();
  log(deviceLine(choice ?? { name: device.name as 'cpu' | 'webgpu', reason: 'chosen by the caller' }));
  for (const m of configMessages(cfg)) log(m);

  let seed = c.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = new E.Rng(seed);

  // Model and data
  const { model, modelPath, vaePath } = await loadTrainingModel(cfg, c, rng, log, 'note: mixed_precision bf16 stores the frozen weights in f16 (sdlora has no bf16 kernels); the metadata says fp16');
  toTrainingDevice(model, c, device);
  const { specs, data, nBatches, plan } = await loadTrainingData(cfg, c, log);
  for (const m of runTimeLines({ unet: model.unet.config, resolution: c.resolution, batch: c.train_batch_size, rank: c.network_dim, steps: plan.maxTrainSteps,
    mixedPrecision: c.mixed_precision !== 'no', gradientCheckpointing: c.gradient_checkpointing, cacheLatents: c.cache_latents, trainTextEncoder: !c.network_train_unet_only, optimizer: c.optimizer_type }, device === E.cpuBackend ? 'cpu' : 'webgpu')) log(m);

  // Network and learning-rate groups
  const { network, models, groups } = await createTrainingNetwork(cfg, c, model, rng, log);

  // Optimizer
  const optimizer = createOptimizer(c.optimizer_type, groups, parseArgList(c.optimizer_args));

  // Resume
  const name = c.output_name ?? 'last';
  const faults = cfg as FaultOptions;
  const networkConfig = networkConfigOf({ ...c, network_module: faults.network_module ?? 'networks.lora' });
  const state = await startState(c, log, freshState(seed, { network: networkConfig }), { optimizer, rng, restore: (r) => {
    const shapes = network.parameters().map((p) => ({ name: p.name, shape: p.param().shape }));
    assertSameNetwork(c.resume!, r.state.network, networkConfig, moduleSetDiff(r.params, shapes));
    for (const p of network.parameters()) {
      const t = r.params.get(p.name);
      if (!t) throw new Error(`${c.resume}: the saved state has no weights for ${p.name} (different network settings?)`);
      p.set(t.requireGrad());
    }
    return { ...r.state, network: networkConfig };
  } });
  seed = state.seed;

  // Latents and text encoder outputs (cache_text_encoder_outputs: encoded once, frozen encoders)
  const latents = await latentSource({ model, data, c, device, seed, vaeSource: vaePath ?? modelPath, log });
  const textConditioner = new TextConditioner(model, { maxTokenLength: c.max_token_length, clipSkip: c.clip_skip }, c.cache_text_encoder_outputs);
  if (c.cache_text_encoder_outputs) {
    const problems = textCacheProblems(c, specs.flatMap((s) => s.subsets));
    if (problems.length) throw new Error(problems.join('; '));
    await cacheTextOutputs(textConditioner, data.datasets.flatMap((d) => d.images), { family: model.family, toDisk: c.cache_text_encoder_outputs_to_disk, device, log });
  }

  // Samples (the network's dropout is off while sampling) and saves
  const { samples, sample } = sampler(model, c, name, (on) => network.setTraining(on));
  const run: RunInfo = { sessionId: state.sessionId, startedAt: state.startedAt, seed, numBatchesPerEpoch: nBatches, numEpochs: plan.epochs, maxTrainSteps: plan.maxTrainSteps, optimizer: optimizer.describe(), base: model.family.metadata(c.v_parameterization ? 'v_prediction' : 'epsilon') };
  const checkpoints = new Checkpoints({
    c, log, what: 'LoRA', broken: 'a broken LoRA', optimizer, skipFullDisk: true,
    outputPath: (stem) => path.join(c.output_dir, `${stem}.safetensors`),
    params: () => network.parameters().map((p) => [p.name, p.param()]),
    current: () => ({ ...state, rng: rng.getState() }),
    write: async (file, at) => {
      const tensors = network instanceof LycorisNetwork ? network.tensors() : loraTensors(network.toWeights());
      await saveLoRATensors(file, tensors, trainingMetadata(cfg, data, run, at), precisionOf(c.save_precision));
    },
    fullDisk: {
      bytes: network.parameters().reduce((a, p) => a + p.param().size, 0) * (c.save_precision === 'float' || !c.save_precision ? 4 : 2) + 65536,
      fallbackDir: faults.fallback_output_dir,
    },
  });

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
  const nanGuard = new NanGuard(faults.skip_nan_steps ?? 0, log);
  const microStep = microStepper({ c, model, device, rng, latents, text: textConditioner, onMicroBatch: hooks.onMicroBatch });
  const trainTe = network.modules.some((m) => m.te) && groups.has('te');
  let interrupted = false;
  try {
    ({ interrupted } = await trainLoop({
      c, data, plan, nBatches, seed, rng, state, groups, checkpoints, sample,
      microStep: (batch, epoch) => microStep(batch, epoch, { textGrad: trainTe }),
      optimizerStep: async (accLoss, lrs, step) => {
        // The optimizer runs on host copies of the (small) LoRA parameters; on cpu those copies
        // are the tensors' own storage, on a GPU they are written back after the update.
        const { grads, skip } = await checkedGradients(params.map((p) => ({ name: p.name, tensor: p.param() })), accLoss, step + 1, nanGuard, checkpoints.advice(), c.max_grad_norm);
        if (!skip) {
          const values = await Promise.all(params.map((p) => hostValues(p.param())));
          optimizer.update(params.map((p, i) => ({ name: p.name, group: p.group, data: values[i] })), grads, lrs);
        }
        for (const p of network.parameters()) p.param().grad = null;
        if (c.scale_weight_norms && !skip) {
          await applyMaxNorm(network, c.scale_weight_norms, hostValues);
        }
        for (const p of network.parameters()) { const h = hostCache.get(p.param()); if (h) p.param().assign(h); }
        await device.collect?.();
        return skip;
      },
    }, hooks));
  } finally {
    network.setTraining(false);
  }

  const finalPath = await checkpoints.finish(state, plan.epochs, state.globalStep >= plan.maxTrainSteps, interrupted);
  return { finalPath, saved: checkpoints.saved, steps: state.globalStep, losses: state.losses, samples, model, network, data, interrupted, stateDir: checkpoints.stateWritten ? checkpoints.stateDir : null };
}
