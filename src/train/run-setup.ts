// The first stages of a training run, shared by the LoRA trainer (trainer.ts) and the method loop
// (method-loop.ts): the base model (family options, external VAE), the data and the step plan,
// the frozen weights' storage and device, and the starting state.
import { mkdirSync } from 'node:fs';
import * as E from '../engine/index.js';
import type { DatasetSpec } from '../data/dataset-spec.js';
import { type DataSummary, prepareData } from '../data/dataset.js';
import { batchesPerEpoch, stepPlan } from '../data/batches.js';
import { datasetConfigSpecs, folderModeSpecs } from '../data/specs.js';
import { resolveModel } from '../models/hub.js';
import { type SDModel, loadSDModel, moveModel } from '../models/sd-model.js';
import { loadExternalVae } from '../models/external-vae.js';
import { checkBaseModel } from './base-model-check.js';
import type { TrainConfig } from './config.js';
import { applyFamilyOptions } from './family-training.js';
import { type TrainOptions, typed } from './options.js';
import { acquireRunLock } from './run-lock.js';
import type { TrainState } from './state.js';
import { resetTestHooks } from './test-hooks.js';

/**
 * Runs `body` on the configured device under the output folder's run lock. Everything the run
 * creates (weights moved over, trained tensors, noise, ids) lives on that device.
 */
export async function withTrainingRun<T>(cfg: TrainConfig, log: (m: string) => void, body: (device: E.Backend) => Promise<T>): Promise<T> {
  const device = await E.selectBackend(typed(cfg).device);
  resetTestHooks();
  mkdirSync(typed(cfg).output_dir, { recursive: true });
  const lock = acquireRunLock(typed(cfg).output_dir, log);
  // Mixed precision fp16 on webgpu: matmul and conv2d in f16 (f32 accumulation) where the device
  // has shader-f16. bf16 keeps f32 arithmetic (f16's range is not bf16's).
  const gpu = device instanceof E.WebGPUBackend ? device : null;
  const halfBefore = gpu?.setHalfCompute(typed(cfg).mixed_precision === 'fp16');
  try {
    return await E.withBackend(device, () => body(device));
  } finally {
    if (gpu) gpu.setHalfCompute(halfBefore!);
    lock.release();
  }
}

export interface TrainingModel { model: SDModel; modelPath: string; vaePath?: string }

/** The base model as training wants it: v-prediction, external VAE, family options applied. */
export async function loadTrainingModel(cfg: TrainConfig, c: TrainOptions, rng: E.Rng, log: (m: string) => void, bf16Note?: string): Promise<TrainingModel> {
  const modelPath = await resolveModel(c.pretrained_model_name_or_path, log);
  const randomState = { save: () => rng.getState(), restore: (s: unknown) => rng.setState(s as number[]) };
  const model = await loadSDModel(modelPath, { unet: { gradientCheckpointing: c.gradient_checkpointing, randomState } });
  checkBaseModel(c, model, log);
  if (c.v_parameterization) model.scheduler = { ...model.scheduler, prediction_type: 'v_prediction' };
  const vaePath = (cfg as { vae?: string }).vae;
  if (vaePath) { model.vae = await loadExternalVae(vaePath, model.vae); log(`vae: ${vaePath}`); }
  if (bf16Note !== undefined && c.mixed_precision === 'bf16') log(bf16Note);
  for (const n of applyFamilyOptions(cfg, model.family, c.v_parameterization ? 'v_prediction' : model.prediction)) log(`note: ${n}`);
  return { model, modelPath, vaePath };
}

/** Frozen weights to f16 storage under mixed precision (the trained tensors stay f32), then onto the device. */
export function toTrainingDevice(model: SDModel, c: TrainOptions, device: E.Backend): void {
  if (c.mixed_precision !== 'no') for (const w of [model.unet.weights, ...model.textEncoders.map((t) => t.weights)]) w.toHalfStorage();
  moveModel(model, device);
}

export interface TrainingData { specs: DatasetSpec[]; data: DataSummary; nBatches: number; plan: ReturnType<typeof stepPlan> }

/** The datasets (dataset_config or folder mode) and the step plan. */
export async function loadTrainingData(cfg: TrainConfig, c: TrainOptions, log: (m: string) => void): Promise<TrainingData> {
  const { specs, warnings } = c.dataset_config ? { specs: datasetConfigSpecs(c.dataset_config, cfg), warnings: [] as string[] } : folderModeSpecs(cfg);
  const data = await prepareData(specs, { skipBad: c.skip_bad });
  for (const w of [...warnings, ...data.warnings]) log(`warning: ${w}`);
  const nBatches = batchesPerEpoch(data.datasets);
  const plan = stepPlan(nBatches, c.gradient_accumulation_steps, c.max_train_steps, c.max_train_epochs);
  log(`${data.numTrainImages} training images (repeats included), ${data.numRegImages} regularization, ${nBatches} batches per epoch, ${plan.epochs} epochs, ${plan.maxTrainSteps} steps`);
  return { specs, data, nBatches, plan };
}

/** The state of a run that starts at step 0. */
export function freshState(seed: number, extra: Partial<TrainState> = {}): TrainState {
  return {
    globalStep: 0, epoch: 1, batchInEpoch: 0, rng: [], seed, sessionId: Math.floor(Math.random() * 2 ** 32),
    startedAt: Date.now() / 1000, losses: [], optimizer: { step: 0, scalars: {} }, ...extra,
  };
}
