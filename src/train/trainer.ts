// The LoRA training loop (sd-scripts train_network.py, §3.1): batches from the dataset, VAE
// latents (cached or per step), text conditioning, DDPM noise, UNet prediction, weighted loss,
// gradient accumulation and clipping, optimizer and lr schedule, samples, saves, exact resume.
// The stages shared with the method loop live in run-setup.ts, latent-cache.ts, step.ts,
// sampling.ts, checkpoints.ts and loop.ts; this file holds what is the LoRA's own: the network.
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { loadLoRA } from '../lora/lora-file.js';
import { loraTensors, saveLoRATensors } from '../lora/lora-save.js';
import { type TrainConfig, configMessages, parseArgList } from './config.js';
import { type RunInfo, trainingMetadata } from './metadata.js';
import { LoRANetwork } from './network.js';
import { LycorisNetwork, lycorisOptions } from './lycoris-network.js';
import { type ParamGroup, createOptimizer } from './optimizers.js';
import { type TrainOptions, typed } from './options.js';
import { NanGuard } from './nan-guard.js';
import { assertSameNetwork, moduleSetDiff, networkConfigOf } from './network-config.js';
import { cacheTextOutputs, textCacheProblems } from './text-cache.js';
import { TextConditioner } from './text-conditioning.js';
import { familyComponents } from '../lora/components.js';
import { checkBLoRAModel } from '../lora/b-lora.js';
import { deviceLine, runTimeLines } from '../estimate/run-notice.js';
import { freshState, loadTrainingData, loadTrainingModel, toTrainingDevice, withTrainingRun } from './run-setup.js';
import { latentSource } from './latent-cache.js';
import { checkedGradients, microStepper } from './step.js';
import { sampler } from './sampling.js';
import { Checkpoints, startState } from './checkpoints.js';
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

  // Optimizer
  const groups = new Map<string, ParamGroup>();
  const teLr = c.text_encoder_lr ?? c.learning_rate, unetLr = c.unet_lr ?? c.learning_rate;
  if (netOpts.trainTextEncoder && teLr) groups.set('te', { name: 'te', lr: teLr });
  if (netOpts.trainUnet && unetLr) groups.set('unet', { name: 'unet', lr: unetLr });
  if (!groups.size) throw new Error('no parameter group has a non-zero learning rate');
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
          if (network instanceof LycorisNetwork) await network.applyMaxNorm(c.scale_weight_norms, hostValues);
          else await maxNormRegularize(network, c.scale_weight_norms, hostValues);
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
