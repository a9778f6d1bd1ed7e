// The epoch / batch loop of a training run, shared by the LoRA trainer and the method loop:
// micro-batches accumulated into optimizer steps, the lr schedule, the loss log, samples and
// saves on their schedule, Ctrl-C (shouldStop) between steps, and the save on an unexpected error.
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import * as E from '../engine/index.js';
import type { DataSummary, TrainImage } from '../data/dataset.js';
import type { SDModel } from '../models/sd-model.js';
import { epochBatches } from '../data/batches.js';
import type { Checkpoints } from './checkpoints.js';
import { lrFactor } from './lr-schedulers.js';
import { TrainingDiverged } from './nan-guard.js';
import type { ParamGroup } from './optimizers.js';
import type { TrainOptions } from './options.js';
import type { TrainState } from './state.js';
import type { MicroBatchTrace, StepInfo } from './step.js';
import { testPoint } from './test-hooks.js';

export interface LoopHooks {
  onStep?: (s: StepInfo) => void;
  /** Stop after this many optimizer steps in this run (tests of resume). */
  stopAfterSteps?: number;
  /** Polled between optimizer steps (Ctrl-C): when true, the run stops and saves. */
  shouldStop?: () => boolean;
}

/** What a caller of a training run (LoRA or method) may watch and steer. */
export interface RunHooks extends LoopHooks {
  log?: (msg: string) => void;
  /** Sees each micro-batch's tensors on the host (tests check the loss against the published formulas). */
  onMicroBatch?: (m: MicroBatchTrace) => void;
}

/** What a training run returns (the LoRA trainer adds its network, the method loop its method). */
export interface RunResult {
  finalPath: string | null;
  saved: string[];
  steps: number;
  losses: { step: number; loss: number }[];
  samples: string[];
  model: SDModel;
  data: DataSummary;
  /** Stopped early by `shouldStop`; the state and `saved`'s last output hold the step reached. */
  interrupted: boolean;
  /** The state folder written by this run, if any. */
  stateDir: string | null;
}

export interface LoopStages {
  c: TrainOptions;
  data: DataSummary;
  plan: { maxTrainSteps: number; epochs: number };
  nBatches: number;
  seed: number;
  rng: E.Rng;
  /** Mutated as the run goes. */
  state: TrainState;
  groups: Map<string, ParamGroup>;
  checkpoints: Checkpoints;
  sample(tag: string): Promise<void>;
  microStep(batch: TrainImage[], epoch: number): Promise<number>;
  /** Before the first micro-batch of each optimizer step. */
  atStepStart?(step: number): void;
  /** Groups updated at this (0-based) step; default all. */
  activeGroups?(step: number): Set<string>;
  /** The update with these learning rates; returns whether the NaN guard skipped it. */
  optimizerStep(accLoss: number, lrs: Map<string, number>, step: number): Promise<boolean>;
}

export async function trainLoop(s: LoopStages, hooks: LoopHooks): Promise<{ interrupted: boolean }> {
  const { c, state, rng, plan, checkpoints } = s;
  const name = checkpoints.name;
  const logFile = path.join(c.output_dir, `${name}-loss.jsonl`);
  const sched = { name: c.lr_scheduler, totalSteps: plan.maxTrainSteps, warmupSteps: c.lr_warmup_steps, numCycles: c.lr_scheduler_num_cycles, power: c.lr_scheduler_power };
  if (state.globalStep === 0 && c.sample_at_first) await s.sample('e000000');
  const accum = c.gradient_accumulation_steps;
  const stopAt = hooks.stopAfterSteps !== undefined ? state.globalStep + hooks.stopAfterSteps : Infinity;
  let micro = 0, accLoss = 0, interrupted = false;
  // The state as of the last optimizer step: what an emergency save writes, even mid-accumulation.
  const snapshot = (at: Partial<TrainState> = {}) => ({ st: { ...state, rng: rng.getState(), ...at }, nLosses: state.losses.length });
  let boundary = snapshot();
  try {
    outer: for (let epoch = state.epoch; epoch <= plan.epochs; epoch++) {
      const batches = epochBatches(s.data.datasets, s.seed, epoch);
      for (let bi = epoch === state.epoch ? state.batchInEpoch : 0; bi < batches.length; bi++) {
        if (state.globalStep >= plan.maxTrainSteps || state.globalStep >= stopAt) break outer;
        if (micro === 0) {
          boundary = snapshot({ epoch, batchInEpoch: bi });
          if (hooks.shouldStop?.()) { interrupted = true; break outer; }
          s.atStepStart?.(state.globalStep);
        }
        accLoss += await s.microStep(batches[bi], epoch);
        micro++;
        state.batchInEpoch = bi + 1;
        state.epoch = epoch;
        if (micro % accum !== 0 && bi !== batches.length - 1) continue;
        // Optimizer step
        const active = s.activeGroups?.(state.globalStep);
        const lrs = new Map<string, number>();
        const factor = lrFactor(state.globalStep, { ...sched, baseLr: c.learning_rate });
        for (const [k, g] of s.groups) if (!active || active.has(k)) lrs.set(k, g.lr * factor);
        const skip = await s.optimizerStep(accLoss, lrs, state.globalStep);
        state.globalStep++;
        const stepLoss = accLoss / (micro % accum || accum);
        accLoss = 0; micro = 0;
        if (!skip) state.losses.push({ step: state.globalStep, loss: stepLoss });
        boundary = snapshot();
        const recent = state.losses.slice(-Math.max(1, s.nBatches));
        const avg = recent.reduce((a, b) => a + b.loss, 0) / Math.max(1, recent.length);
        const lr0 = [...lrs.values()][lrs.size - 1] ?? 0;
        appendFileSync(logFile, `${JSON.stringify({ step: state.globalStep, epoch, loss: stepLoss, avr_loss: avg, lr: lr0, time: Date.now() / 1000, ...(skip ? { skipped: true } : {}) })}\n`);
        hooks.onStep?.({ step: state.globalStep, maxSteps: plan.maxTrainSteps, epoch, epochs: plan.epochs, loss: stepLoss, avgLoss: avg, lr: lr0 });
        await testPoint('step');
        if (c.sample_every_n_steps && !c.sample_every_n_epochs && state.globalStep % c.sample_every_n_steps === 0) await s.sample(String(state.globalStep).padStart(6, '0'));
        if (c.save_every_n_steps && state.globalStep % c.save_every_n_steps === 0 && state.globalStep < plan.maxTrainSteps) {
          await checkpoints.periodic(checkpoints.stepTarget(state.globalStep), { step: state.globalStep, epoch });
        }
      }
      // End of epoch
      if (state.batchInEpoch >= batches.length) {
        if (c.sample_every_n_epochs && epoch % c.sample_every_n_epochs === 0) await s.sample(`e${String(epoch).padStart(6, '0')}`);
        if (c.save_every_n_epochs && epoch % c.save_every_n_epochs === 0 && epoch < plan.epochs) {
          await checkpoints.periodic(checkpoints.epochTarget(epoch), { step: state.globalStep, epoch });
          if (c.save_last_n_epochs) checkpoints.prune(epoch - c.save_last_n_epochs * c.save_every_n_epochs);
        }
        state.epoch = epoch + 1;
        state.batchInEpoch = 0;
      }
    }
  } catch (e) {
    // A diverged network is not worth saving: the last good save stays the newest file.
    if (!(e instanceof TrainingDiverged)) await checkpoints.emergency(boundary, e as Error);
    throw e;
  }
  return { interrupted };
}
