// `sdlora worker --redis URL --dir WORKSPACE`: takes training jobs from the studio's BullMQ queue,
// one at a time, runs each in a train-process like the studio's local runner, and reports steps
// and log lines as job progress. A job that another worker left behind (it died: BullMQ's
// stalled-job check hands the job on) resumes from the last state saved in the shared workspace.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { attachTrainChild, forkTrainProcess } from './local-runner.js';
import { QUEUE_NAME, type RedisJobData, type RedisProgress, type RedisResult, cancelKey, fromPortable, redisConnection, stopKey, toPortable } from './redis-protocol.js';

export interface WorkerOptions { redis: string; dir: string; name?: string }

/** Lock and stalled-check timing: a dead worker's job is handed on within about 15 s. */
export const WORKER_TIMING = { lockDuration: 10000, stalledInterval: 5000, maxStalledCount: 3 };

export async function runWorker(o: WorkerOptions): Promise<void> {
  const root = path.resolve(o.dir);
  if (!existsSync(path.join(root, 'loras'))) throw new Error(`${root} is not a studio workspace (no loras folder); give --dir the studio's workspace as this machine sees it`);
  const name = o.name ?? `${os.hostname()}:${process.pid}`;
  const connection = redisConnection(o.redis);
  const control = new Redis(connection);

  const processor = async (job: Job<RedisJobData>): Promise<RedisResult> => {
    const config = fromPortable(job.data.config, root) as Record<string, unknown>;
    const stateDir = path.join(String(config.output_dir), `${String(config.output_name)}-state`);
    // A retried job (this worker or another died) continues from the state saved last.
    let resumeFrom = job.data.resumeFrom ? String(fromPortable(job.data.resumeFrom, root)) : null;
    if (!resumeFrom && (job.attemptsStarted > 1 || job.attemptsMade > 0 || job.stalledCounter > 0) && existsSync(path.join(stateDir, 'train_state.json'))) resumeFrom = stateDir;
    const report = (p: RedisProgress) => job.updateProgress(p as unknown as object).catch(() => undefined);
    await report({ kind: 'log', line: `worker ${name} starts the job${resumeFrom ? `, resuming from ${path.relative(root, resumeFrom)}` : ''}`, worker: name });
    const child = forkTrainProcess({ SDLORA_JOB_ORPHAN: 'exit' });
    let cancelled = false;
    const poll = setInterval(() => {
      void control.get(stopKey(job.data.studioJobId)).then((v) => { if (v) { void control.del(stopKey(job.data.studioJobId)); child.send({ type: 'stop' }); } });
      void control.get(cancelKey(job.data.studioJobId)).then((v) => { if (v) { void control.del(cancelKey(job.data.studioJobId)); cancelled = true; child.kill('SIGKILL'); } });
    }, 500);
    try {
      return await new Promise<RedisResult>((resolve, reject) => {
        let result: RedisResult | null = null, error: string | null = null;
        attachTrainChild(child, { config, resumeFrom }, (m) => {
          if (m.type === 'log') void report({ kind: 'log', line: m.line, worker: name });
          else if (m.type === 'step') void report({ kind: 'step', step: m.step, maxSteps: m.maxSteps, epoch: m.epoch, epochs: m.epochs, loss: m.loss, avgLoss: m.avgLoss, time: m.time, worker: name });
          else if (m.type === 'done') result = toPortable({ finalPath: m.finalPath, saved: m.saved, interrupted: m.interrupted, stateDir: m.stateDir, steps: m.steps }, root) as RedisResult;
          else if (m.type === 'error') error = m.message;
        }, (code, signal) => {
          if (cancelled) resolve({ finalPath: null, saved: [], interrupted: true, stateDir: null, steps: 0, cancelled: true });
          else if (result) resolve(result);
          else reject(new Error(error ?? `the training process ended without a result (${signal ?? `exit code ${code}`})`));
        });
      });
    } finally { clearInterval(poll); }
  };

  const worker = new Worker<RedisJobData, RedisResult>(QUEUE_NAME, processor, { connection, concurrency: 1, name, ...WORKER_TIMING });
  worker.on('error', (e) => console.error(`worker: ${e.message}`));
  worker.on('active', (j) => console.log(`worker ${name}: job ${j.data.studioJobId} started`));
  worker.on('completed', (j) => console.log(`worker ${name}: job ${j.data.studioJobId} finished`));
  worker.on('failed', (j, e) => console.log(`worker ${name}: job ${j?.data.studioJobId} failed: ${e.message}`));
  console.log(`sdlora worker ${name}: waiting for jobs on ${o.redis} (workspace ${root})`);
  await new Promise<void>((resolve) => {
    const stop = () => { void worker.close().then(() => control.quit()).then(() => resolve()); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
