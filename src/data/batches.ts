// Epoch plans: every bucket cut into batches (the last may be smaller), shuffled with a seed
// derived from the training seed and the epoch, so an interrupted run can replay the same order.
import { Rng } from '../engine/random.js';
import type { PreparedDataset, TrainImage } from './dataset.js';

export function batchesPerEpoch(datasets: PreparedDataset[]): number {
  let n = 0;
  for (const d of datasets) for (const list of d.buckets.values()) n += Math.ceil(list.length / d.spec.batchSize);
  return n;
}

function shuffle<T>(a: T[], rng: Rng): T[] {
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rng.uniform() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

/** The batches of epoch `epoch` (1-based), in training order. */
export function epochBatches(datasets: PreparedDataset[], seed: number, epoch: number): TrainImage[][] {
  const rng = new Rng((seed + epoch * 7919) >>> 0);
  const batches: TrainImage[][] = [];
  for (const d of datasets) {
    for (const list of d.buckets.values()) {
      const items = shuffle([...list], rng);
      for (let i = 0; i < items.length; i += d.spec.batchSize) batches.push(items.slice(i, i + d.spec.batchSize));
    }
  }
  return shuffle(batches, rng);
}

/** Steps and epochs as sd-scripts computes them (§2.7). */
export function stepPlan(batches: number, gradAccum: number, maxTrainSteps: number, maxTrainEpochs?: number): { maxTrainSteps: number; epochs: number; stepsPerEpoch: number } {
  const stepsPerEpoch = Math.ceil(batches / gradAccum);
  const steps = maxTrainEpochs ? maxTrainEpochs * stepsPerEpoch : maxTrainSteps;
  return { maxTrainSteps: steps, epochs: Math.ceil(steps / stepsPerEpoch), stepsPerEpoch };
}
