// One training job in its own process (forked by the studio's local runner or by `sdlora
// worker`): the same resolveConfig + train() as `sdlora train`, reporting steps and log lines to
// the parent over IPC. A separate process keeps the studio responsive, lets "cancel" kill a run,
// and makes a crashed run a failed job instead of a crashed studio.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { resolveConfig } from '../../train/config.js';
import { train } from '../../train/trainer.js';

export interface TrainJobSpec {
  config: Record<string, unknown>;
  /** A state folder to continue from (stop-and-save, a failed run, a worker that died). */
  resumeFrom?: string | null;
}

export type TrainChildMessage =
  | { type: 'step'; step: number; maxSteps: number; epoch: number; epochs: number; loss: number; avgLoss: number; lr: number; time: number }
  | { type: 'log'; line: string }
  | { type: 'done'; finalPath: string | null; saved: string[]; samples: string[]; interrupted: boolean; stateDir: string | null; steps: number }
  | { type: 'error'; message: string };

const send = (m: TrainChildMessage) => new Promise<void>((resolve) => (process.send ? process.send(m, () => resolve()) : resolve()));

let stopRequested = false;
process.on('message', (m: { type: string; spec?: TrainJobSpec }) => {
  if (m.type === 'stop') stopRequested = true;
  if (m.type === 'start' && m.spec) void run(m.spec);
});
// The parent went away. Under the studio (closed): save and stop, so the run can resume later.
// Under a worker (SDLORA_JOB_ORPHAN=exit): the worker died, the queue hands the job to another
// worker that resumes from the last saved state, so this copy must not keep writing.
process.on('disconnect', () => {
  if (process.env.SDLORA_JOB_ORPHAN === 'exit') process.exit(1);
  stopRequested = true;
});

/**
 * Temp files of atomic writes (.<name>.<pid>.<time>.tmp) that a killed run left in its output
 * folder: never outputs (the rename never happened), so a run taking the folder over removes them.
 */
export function removeStaleTempFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const stale = readdirSync(dir).filter((f) => /^\..+\.\d+\.\d+\.tmp$/.test(f));
  for (const f of stale) rmSync(path.join(dir, f), { force: true });
  return stale;
}

async function run(spec: TrainJobSpec): Promise<void> {
  try {
    // One job owns its output folder (the studio and the queue run it once at a time).
    const stale = removeStaleTempFiles(String(spec.config.output_dir ?? ''));
    if (stale.length) await send({ type: 'log', line: `removed ${stale.length} unfinished temp file(s) of an interrupted run: ${stale.join(', ')}` });
    const values = { ...spec.config, ...(spec.resumeFrom ? { resume: spec.resumeFrom } : {}) };
    const cfg = resolveConfig([{ source: 'studio job', values, strict: true }]);
    const r = await train(cfg, {
      shouldStop: () => stopRequested,
      log: (line) => { void send({ type: 'log', line }); },
      onStep: (s) => { void send({ type: 'step', ...s, time: Date.now() }); },
    });
    await send({ type: 'done', finalPath: r.finalPath, saved: r.saved, samples: r.samples, interrupted: r.interrupted, stateDir: r.stateDir, steps: r.steps });
    process.exit(0);
  } catch (e) {
    await send({ type: 'error', message: (e as Error).message });
    process.exit(1);
  }
}
