// Full training state for exact resume: LoRA weights, optimizer state, step/epoch/batch position,
// the RNG state and the loss log, in <output_dir>/<name>-state/ (written atomically).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { writeBufferAtomic } from '../io/atomic-write.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { OptimizerState } from './optimizers.js';

export interface TrainState {
  globalStep: number;
  epoch: number;
  /** Micro-batches of `epoch` already consumed. */
  batchInEpoch: number;
  rng: number[];
  seed: number;
  sessionId: number;
  startedAt: number;
  losses: { step: number; loss: number }[];
  optimizer: { step: number; scalars: Record<string, number> };
}

export async function saveState(dir: string, st: TrainState, params: [string, Tensor][], opt: OptimizerState): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const tensors: [string, Tensor][] = [...params.map(([k, t]) => [`param::${k}`, t.detach()] as [string, Tensor])];
  for (const [k, a] of Object.entries(opt.tensors)) tensors.push([`opt::${k}`, E.tensor(a, [a.length])]);
  await saveSafetensors(path.join(tmp, 'state.safetensors'), tensors);
  const json = { ...st, optimizer: { step: opt.step, scalars: opt.scalars } };
  await writeBufferAtomic(path.join(tmp, 'train_state.json'), Buffer.from(JSON.stringify(json, (_, v) => (typeof v === 'number' && Number.isNaN(v) ? 'NaN' : v))));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

export async function loadState(dir: string): Promise<{ state: TrainState; params: Map<string, Tensor>; optimizer: OptimizerState }> {
  const jf = path.join(dir, 'train_state.json'), sf = path.join(dir, 'state.safetensors');
  if (!existsSync(jf) || !existsSync(sf)) throw new Error(`${dir}: not a saved training state (needs train_state.json and state.safetensors)`);
  const state = JSON.parse(readFileSync(jf, 'utf8'), (_, v) => (v === 'NaN' ? NaN : v)) as TrainState;
  const { tensors } = await loadSafetensors(sf);
  const params = new Map<string, Tensor>(), opt: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('param::')) params.set(k.slice(7), t);
    else if (k.startsWith('opt::')) opt[k.slice(5)] = t.dataSync() as Float32Array;
  }
  return { state, params, optimizer: { step: state.optimizer.step, scalars: state.optimizer.scalars, tensors: opt } };
}
