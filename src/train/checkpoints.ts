// Saves of a training run: the trained output (a LoRA file, an embedding, a model), the training
// state for exact resume, periodic and epoch saves with pruning, the save on an unexpected error
// and the final save (full disk: a fallback folder). Shared by the LoRA trainer and the method loop.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { saveDespiteFullDisk, skipIfDiskFull } from './disk-full.js';
import { lossPlotSvg } from './loss-plot.js';
import { type NanAdvice, TrainingDiverged } from './nan-guard.js';
import type { Optimizer } from './optimizers.js';
import type { TrainOptions } from './options.js';
import { type TrainState, loadState, saveState } from './state.js';
import { testPoint } from './test-hooks.js';

export interface At { step: number; epoch: number }
/** The state as of an optimizer step, and how many losses it had (the loss log only grows). */
export interface Boundary { st: TrainState; nLosses: number }

/**
 * The state a run starts from. With resume: the saved one, once `restore` has checked it against
 * this run and loaded its trained tensors (it returns the state to go on with), with the optimizer
 * state and the RNG restored. Otherwise `fresh`, and the loss log of an earlier run goes.
 */
export async function startState(c: TrainOptions, log: (m: string) => void, fresh: TrainState, o: {
  optimizer: Optimizer; rng: E.Rng; restore: (r: Awaited<ReturnType<typeof loadState>>) => TrainState;
}): Promise<TrainState> {
  if (!c.resume) {
    const logFile = path.join(c.output_dir, `${c.output_name ?? 'last'}-loss.jsonl`);
    if (existsSync(logFile)) rmSync(logFile);
    return fresh;
  }
  const r = await loadState(c.resume, log);
  const state = o.restore(r);
  o.optimizer.loadState(r.optimizer);
  o.rng.setState(state.rng);
  log(`resumed at step ${state.globalStep}, epoch ${state.epoch}`);
  return state;
}

export interface CheckpointOptions {
  c: TrainOptions;
  log: (m: string) => void;
  /** What the messages call the output ("LoRA", "weights") and what a non-finite one is ("a broken LoRA", "it"). */
  what: string;
  broken: string;
  /** Where the output of a stem goes (a file, or a folder). */
  outputPath(stem: string): string;
  /** Epoch outputs may be folders (pruning removes those too). */
  folderOutputs?: boolean;
  /** The trained tensors: checked finite before a save, and written to the state. */
  params(): [string, Tensor][];
  write(target: string, at: At): Promise<void>;
  optimizer: Optimizer;
  /** The state to save now (the run's state with the current RNG). */
  current(): TrainState;
  /** Added to every saved state (a method's settings). */
  stateExtra?: Record<string, unknown>;
  /** A periodic save that meets a full disk is skipped with a warning (disk-full.ts). */
  skipFullDisk?: boolean;
  /** The final save falls back to another folder on a full disk. */
  fullDisk?: { bytes: number; fallbackDir?: string };
}

export class Checkpoints {
  readonly saved: string[] = [];
  readonly name: string;
  readonly stateDir: string;
  stateWritten = false;

  constructor(private readonly o: CheckpointOptions) {
    this.name = o.c.output_name ?? 'last';
    this.stateDir = path.join(o.c.output_dir, `${this.name}-state`);
  }

  stepTarget(step: number): string { return this.o.outputPath(`${this.name}-step${String(step).padStart(8, '0')}`); }
  epochTarget(epoch: number): string { return this.o.outputPath(`${this.name}-${String(epoch).padStart(6, '0')}`); }

  /** Writes the output, refusing one that holds NaN or Inf (it would render black images). */
  async output(target: string, at: At): Promise<void> {
    for (const [name, t] of this.o.params()) {
      if (!((await t.data()) as Float32Array).every(Number.isFinite)) {
        throw new TrainingDiverged(`step ${at.step}: ${name} holds NaN or Inf; not saving ${this.o.broken} (try a lower learning_rate)`);
      }
    }
    await this.o.write(target, at);
    this.saved.push(target);
  }

  async state(st: TrainState = this.o.current()): Promise<void> {
    await saveState(this.stateDir, { ...st, ...this.o.stateExtra } as TrainState, this.o.params(), this.o.optimizer.stateDict());
    this.stateWritten = true;
  }

  /** A step or epoch save: the output, and the state with save_state. */
  async periodic(target: string, at: At): Promise<void> {
    const save = async () => {
      await this.output(target, at);
      if (this.o.c.save_state) await this.state();
    };
    if (this.o.skipFullDisk) await skipIfDiskFull(save, `the save at step ${at.step}`, this.o.log);
    else await save();
  }

  /** Epoch outputs at or below `belowEpoch` go (save_last_n_epochs). */
  prune(belowEpoch: number): void {
    const dir = this.o.c.output_dir;
    const re = new RegExp(`^${this.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d{6})${this.o.folderOutputs ? '(\\.safetensors)?' : '\\.safetensors'}$`);
    for (const f of readdirSync(dir)) {
      const m = re.exec(f);
      if (m && Number(m[1]) <= belowEpoch) rmSync(path.join(dir, f), { recursive: true, force: true });
    }
  }

  /** What the NaN guard tells the user to fall back on. */
  advice(): NanAdvice {
    const c = this.o.c;
    return { learningRate: c.learning_rate, mixedPrecision: c.mixed_precision, maxGradNorm: c.max_grad_norm, lastSave: this.saved.at(-1) ?? null, stateDir: this.stateWritten ? this.stateDir : null };
  }

  /** On an unexpected error: the output and state of the last optimizer step, so no finished step is lost. */
  async emergency({ st, nLosses }: Boundary, err: Error): Promise<void> {
    if (st.globalStep === 0) return;
    const target = this.stepTarget(st.globalStep);
    try {
      await this.output(target, { step: st.globalStep, epoch: st.epoch });
      await this.state({ ...st, losses: st.losses.slice(0, nLosses) });
      this.o.log(`error after step ${st.globalStep}; its ${this.o.what} and state are saved: ${target}, resume with resume=${this.stateDir}`);
    } catch (e2) {
      this.o.log(`error: could not save the ${this.o.what} after the error (${(e2 as Error).message}); the original error follows (${err.message})`);
    }
  }

  /** The save at the end of the run (interrupted, finished or stopped early); returns the final output, if any. */
  async finish(state: TrainState, epochs: number, finished: boolean, interrupted: boolean): Promise<string | null> {
    const { c, log } = this.o;
    let finalPath: string | null = null;
    if (interrupted) {
      await testPoint('interrupt-save');
      await this.output(this.stepTarget(state.globalStep), { step: state.globalStep, epoch: state.epoch });
      await this.state();
    } else if (finished) {
      const at = { step: state.globalStep, epoch: epochs };
      const target = this.o.outputPath(this.name);
      if (this.o.fullDisk) {
        finalPath = await saveDespiteFullDisk(target, (f) => this.output(f, at), { ...this.o.fullDisk, log });
        if (c.save_state) await this.state().catch((e: Error) => log(`warning: the ${this.o.what} is saved, but not the training state: ${e.message}`));
      } else {
        finalPath = target;
        await this.output(target, at);
        if (c.save_state) await this.state();
      }
    } else if (c.save_state) {
      await this.state();
    }
    writeFileSync(path.join(c.output_dir, `${this.name}-loss.svg`), lossPlotSvg(state.losses, `${this.name}: loss per step`));
    return finalPath;
  }
}
