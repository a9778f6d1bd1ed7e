// Full training state for exact resume: LoRA weights, optimizer state, step/epoch/batch position,
// the RNG state, the loss log and the network configuration, in <output_dir>/<name>-state/.
// The folder is replaced so that a kill at any moment leaves one complete state on disk.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { writeBufferAtomic } from '../io/atomic-write.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { NetworkConfig } from './network-config.js';
import type { OptimizerState } from './optimizers.js';
import { testPoint } from './test-hooks.js';

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
  /** The settings that shape the LoRA tensors (absent in states of older versions). */
  network?: NetworkConfig;
}

const JSON_FILE = 'train_state.json', TENSOR_FILE = 'state.safetensors';
/** The new state is written here first, and the previous one is moved here during the swap. */
const newDir = (dir: string) => `${dir}.new`, oldDir = (dir: string) => `${dir}.old`;
/** train_state.json is written last, so a folder holding both files is complete. */
const isComplete = (dir: string) => existsSync(path.join(dir, JSON_FILE)) && existsSync(path.join(dir, TENSOR_FILE));

export async function saveState(dir: string, st: TrainState, params: [string, Tensor][], opt: OptimizerState): Promise<void> {
  recoverState(dir);
  const tmp = newDir(dir);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const tensors: [string, Tensor][] = [...params.map(([k, t]) => [`param::${k}`, t.detach()] as [string, Tensor])];
    for (const [k, a] of Object.entries(opt.tensors)) tensors.push([`opt::${k}`, E.tensor(a, [a.length])]);
    await saveSafetensors(path.join(tmp, TENSOR_FILE), tensors);
    const json = { ...st, optimizer: { step: opt.step, scalars: opt.scalars } };
    await writeBufferAtomic(path.join(tmp, JSON_FILE), Buffer.from(JSON.stringify(json, (_, v) => (typeof v === 'number' && Number.isNaN(v) ? 'NaN' : v))));
  } catch (e) {
    // An incomplete new state (a full disk) is useless; the previous one is untouched.
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  await testPoint('state-written');
  // Swap: old aside, new in, old deleted. Between any two renames one complete state exists.
  if (existsSync(dir)) renameSync(dir, oldDir(dir));
  await testPoint('state-aside');
  renameSync(tmp, dir);
  await testPoint('state-swapped');
  rmSync(oldDir(dir), { recursive: true, force: true });
}

/**
 * Finishes or undoes a swap that a kill interrupted; returns what it did (null: nothing to do).
 * A complete `.new` is the newest state; otherwise the state folder, then `.old`, is the last good one.
 */
export function recoverState(dir: string): string | null {
  const fresh = newDir(dir), old = oldDir(dir);
  if (!existsSync(fresh) && !existsSync(old)) return null;
  let note: string;
  if (isComplete(fresh)) {
    // The kill came after the new state was complete: it is the newest, use it.
    rmSync(dir, { recursive: true, force: true });
    renameSync(fresh, dir);
    note = 'completed a save that was interrupted (the newest state is used)';
  } else if (isComplete(dir)) {
    note = 'removed the leftovers of an interrupted save';
  } else if (isComplete(old)) {
    rmSync(dir, { recursive: true, force: true });
    renameSync(old, dir);
    note = 'an interrupted save was rolled back to the previous state';
  } else {
    return null;
  }
  rmSync(fresh, { recursive: true, force: true });
  rmSync(old, { recursive: true, force: true });
  return `${dir}: ${note}`;
}

export async function loadState(dir: string, log: (m: string) => void = () => undefined): Promise<{ state: TrainState; params: Map<string, Tensor>; optimizer: OptimizerState }> {
  const recovered = recoverState(dir);
  if (recovered) log(`note: ${recovered}`);
  const jf = path.join(dir, JSON_FILE), sf = path.join(dir, TENSOR_FILE);
  if (!existsSync(jf) || !existsSync(sf)) throw new Error(`${dir}: not a saved training state (needs ${JSON_FILE} and ${TENSOR_FILE})`);
  const state = JSON.parse(readFileSync(jf, 'utf8'), (_, v) => (v === 'NaN' ? NaN : v)) as TrainState;
  const { tensors } = await loadSafetensors(sf);
  const params = new Map<string, Tensor>(), opt: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('param::')) params.set(k.slice(7), t);
    else if (k.startsWith('opt::')) opt[k.slice(5)] = t.dataSync() as Float32Array;
  }
  return { state, params, optimizer: { step: state.optimizer.step, scalars: state.optimizer.scalars, tensors: opt } };
}
