// The training loop of the methods that train the model's own tensors instead of a LoRA network:
// Textual Inversion (src/train/textual-inversion.ts: new token-embedding rows) and DreamBooth /
// fine-tuning (src/train/dreambooth.ts: the UNet, optionally the text encoder). Same stages as the
// LoRA trainer (src/train/trainer.ts): model, data, method, optimizer, resume, latent cache,
// samples, saving, loop; the same data pipeline, noise, loss weights, schedules, exact resume and
// atomic saves. What trains and what is written come from the method.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { DataSummary } from '../data/dataset.js';
import type { SDModel } from '../models/sd-model.js';
import { type TrainConfig, configMessages, parseArgList } from './config.js';
import { NanGuard } from './nan-guard.js';
import { type ParamGroup, createOptimizer } from './optimizers.js';
import { type TrainOptions, typed } from './options.js';
import { TextConditioner } from './text-conditioning.js';
import { freshState, loadTrainingData, loadTrainingModel, toTrainingDevice, withTrainingRun } from './run-setup.js';
import { latentSource } from './latent-cache.js';
import { checkedGradients, microStepper } from './step.js';
import { sampler } from './sampling.js';
import { Checkpoints, startState } from './checkpoints.js';
import { type RunHooks, type RunResult, trainLoop } from './loop.js';

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

export type MethodHooks = RunHooks;

export interface MethodResult extends RunResult {
  method: TrainingMethod;
}

export type MethodSetup = (ctx: MethodContext) => TrainingMethod | Promise<TrainingMethod>;

export async function trainWithMethod(cfg: TrainConfig, setup: MethodSetup, hooks: MethodHooks = {}): Promise<MethodResult> {
  return withTrainingRun(cfg, hooks.log ?? ((m: string) => console.error(m)), (device) => runMethod(device, cfg, setup, hooks));
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

  // Model and data
  const { model, modelPath, vaePath } = await loadTrainingModel(cfg, c, rng, log);
  const { data, nBatches, plan } = await loadTrainingData(cfg, c, log);

  // Method: marks what trains (requireGrad) before the frozen rest goes to f16 storage, so the
  // trained tensors stay f32 master weights.
  const method = await setup({ cfg, model, data, rng, log });
  if (c.mixed_precision === 'bf16') log('note: mixed_precision bf16 stores the frozen weights in f16 (sdlora has no bf16 kernels)');
  toTrainingDevice(model, c, device);
  method.rebind?.();
  for (const p of method.params) if (p.tensor.backend !== device) throw new Error(`${p.name}: a trained tensor is not on ${device.name}`);

  // Optimizer
  const optimizer = createOptimizer(c.optimizer_type, method.groups, parseArgList(c.optimizer_args));

  // Resume
  const name = c.output_name ?? 'last';
  const stateConfig = { training_method: method.id, ...method.config };
  const state = await startState(c, log, freshState(seed), { optimizer, rng, restore: (r) => {
    const saved = (r.state as { method?: Record<string, unknown> }).method;
    if (JSON.stringify(saved) !== JSON.stringify(stateConfig)) {
      throw new Error(`${c.resume}: the state was saved by another training setup (${JSON.stringify(saved ?? 'a LoRA run')}); this run is ${JSON.stringify(stateConfig)}`);
    }
    for (const p of method.params) {
      const t = r.params.get(p.name);
      if (!t || t.shape.join() !== p.tensor.shape.join()) throw new Error(`${c.resume}: the saved state has no ${p.name} [${p.tensor.shape.join(', ')}]`);
      p.tensor.assign(t.dataSync());
    }
    return r.state;
  } });
  seed = state.seed;

  // Latents, text conditioning, samples (the trained tensors are the model's own, so txt2img sees them as they are), saves
  const latents = await latentSource({ model, data, c, device, seed, vaeSource: vaePath ?? modelPath, log });
  const textConditioner = new TextConditioner(model, { maxTokenLength: c.max_token_length, clipSkip: c.clip_skip }, false);
  const { samples, sample } = sampler(model, c, name);
  const run: MethodRunInfo = { sessionId: state.sessionId, startedAt: state.startedAt, seed, numBatchesPerEpoch: nBatches, numEpochs: plan.epochs, maxTrainSteps: plan.maxTrainSteps, optimizer: optimizer.describe() };
  const checkpoints = new Checkpoints({
    c, log, what: 'weights', broken: 'it', optimizer, folderOutputs: true, stateExtra: { method: stateConfig },
    outputPath: (stem) => method.outputPath(c.output_dir, stem),
    params: () => method.params.map((p) => [p.name, p.tensor]),
    current: () => ({ ...state, rng: rng.getState() }),
    write: (target, at) => method.save(target, at, run),
  });

  // Loop
  const nanGuard = new NanGuard(Number((cfg as { skip_nan_steps?: number }).skip_nan_steps ?? 0), log);
  const microStep = microStepper({ c, model, device, rng, latents, text: textConditioner, onMicroBatch: hooks.onMicroBatch });
  let wasTextGrad = method.textGrad(state.globalStep);
  const { interrupted } = await trainLoop({
    c, data, plan, nBatches, seed, rng, state, groups: method.groups, checkpoints, sample,
    atStepStart: (step) => {
      const tg = method.textGrad(step);
      if (wasTextGrad && !tg) log(`step ${step}: the text encoder stops training (stop_text_encoder_training)`);
      wasTextGrad = tg;
    },
    microStep: (batch, epoch) => microStep(batch, epoch, { textGrad: method.textGrad(state.globalStep), caption: method.caption }),
    activeGroups: (step) => method.activeGroups(step),
    optimizerStep: async (accLoss, lrs, step) => {
      // Over the groups that train at this step, on host copies (on cpu the storage itself).
      const active = method.activeGroups(step);
      const params = method.params.filter((p) => active.has(p.group));
      const { grads, skip } = await checkedGradients(params, accLoss, step + 1, nanGuard, checkpoints.advice(), c.max_grad_norm);
      if (!skip) {
        const values = await Promise.all(params.map(async (p) => (await p.tensor.data()) as Float32Array));
        optimizer.update(params.map((p, i) => ({ name: p.name, group: p.group, data: values[i] })), grads, lrs);
        params.forEach((p, i) => p.tensor.assign(values[i]));
        method.afterUpdate?.();
      }
      for (const p of method.params) p.tensor.grad = null;
      await device.collect?.();
      return skip;
    },
  }, hooks);

  const finalPath = await checkpoints.finish(state, plan.epochs, state.globalStep >= plan.maxTrainSteps, interrupted);
  return { finalPath, saved: checkpoints.saved, steps: state.globalStep, losses: state.losses, samples, model, method, data, interrupted, stateDir: checkpoints.stateWritten ? checkpoints.stateDir : null };
}

export { isDir as isFolderOutput };
