// `sdlora studio --redis URL`: the queue in SQLite stays the studio's record (order, history,
// logs), but jobs run on `sdlora worker` processes through BullMQ. Queued jobs are handed to
// BullMQ in queue order; worker reports (progress events) update the record as the local runner's
// child reports do; stop-and-save and cancel reach the worker through Redis keys.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobFiles } from './job-files.js';
import type { JobStore } from './job-store.js';
import { stateDirOf } from './local-runner.js';
import { SpeedMeter, etaSeconds } from './progress.js';
import { QUEUE_NAME, type RedisJobData, type RedisProgress, type RedisResult, cancelKey, fromPortable, redisConnection, stopKey, toPortable } from './redis-protocol.js';

const DISPATCHED = 'redis queue';

export class RedisDispatcher {
  private meters = new Map<number, SpeedMeter>();

  private constructor(private readonly queue: Queue<RedisJobData>, private readonly events: QueueEvents, private readonly control: Redis, private readonly store: JobStore, private readonly files: JobFiles, private readonly root: string) {}

  static async start(url: string, store: JobStore, files: JobFiles, root: string): Promise<RedisDispatcher> {
    const connection = redisConnection(url);
    const queue = new Queue<RedisJobData>(QUEUE_NAME, { connection });
    const events = new QueueEvents(QUEUE_NAME, { connection });
    const control = new Redis(connection);
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), control.ping()]);
    const d = new RedisDispatcher(queue, events, control, store, files, root);
    d.listen();
    await d.reconcile();
    return d;
  }

  /** After a studio restart: jobs that finished or failed on the workers meanwhile get their outcome. */
  private async reconcile(): Promise<void> {
    for (const j of this.store.list()) {
      if (!['queued', 'running', 'stopping'].includes(j.status) || !j.worker) continue;
      const bull = await this.queue.getJob(`studio-${j.id}-${j.attempts}`);
      const state = bull ? await bull.getState() : 'missing';
      if (state === 'completed') this.finish(j.id, bull!.returnvalue as unknown as RedisResult);
      else if (state === 'failed' || state === 'missing') {
        const why = state === 'failed' ? bull!.failedReason : 'the job is no longer in the Redis queue';
        this.files.log(j.id, `failed while the studio was away: ${why}`);
        this.store.update(j.id, { status: 'failed', error: why, finished: Date.now(), stateDir: existsSync(stateDirOf(j)) ? stateDirOf(j) : null });
      }
    }
  }

  private finish(id: number, value: RedisResult | string): void {
    const r = fromPortable(typeof value === 'string' ? JSON.parse(value) : value, this.root) as RedisResult;
    const status = r.cancelled ? 'cancelled' : r.interrupted ? 'stopped' : 'done';
    this.files.log(id, `${status}${r.finalPath ? `: ${r.finalPath}` : ''}`);
    this.store.update(id, { status, output: r.finalPath ?? r.saved.at(-1) ?? null, stateDir: r.stateDir, finished: Date.now(), etaSec: 0, ...(r.steps ? { step: r.steps } : {}) });
  }

  private studioId(bullId: string): number | null {
    const m = /^studio-(\d+)-/.exec(bullId);
    return m ? Number(m[1]) : null;
  }

  private listen(): void {
    this.events.on('progress', ({ jobId, data }) => {
      const id = this.studioId(jobId);
      const p = data as unknown as RedisProgress;
      if (id === null || !this.store.get(id) || typeof p !== 'object') return;
      if (p.kind === 'log') { this.files.log(id, `[${p.worker}] ${p.line}`); if (this.store.get(id)!.status === 'queued') this.store.update(id, { status: 'running', worker: p.worker, started: Date.now() }); return; }
      const meter = this.meters.get(id) ?? new SpeedMeter();
      this.meters.set(id, meter);
      const { itPerSec } = meter.add(p.step, p.time);
      this.files.loss(id, p.step, p.loss);
      const cur = this.store.get(id)!;
      this.store.update(id, { status: cur.status === 'stopping' ? 'stopping' : 'running', worker: p.worker, step: p.step, maxSteps: p.maxSteps, epoch: p.epoch, epochs: p.epochs, loss: p.avgLoss, itPerSec, etaSec: etaSeconds(p.step, p.maxSteps, itPerSec) }, { lazy: true });
    });
    this.events.on('completed', ({ jobId, returnvalue }) => {
      const id = this.studioId(jobId);
      if (id === null || !this.store.get(id)) return;
      this.finish(id, returnvalue as unknown as RedisResult | string);
    });
    this.events.on('failed', async ({ jobId, failedReason }) => {
      const id = this.studioId(jobId);
      if (id === null || !this.store.get(id)) return;
      const job = await this.queue.getJob(jobId);
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1);
      this.files.log(id, `${final ? 'failed' : 'attempt failed, retrying'}: ${failedReason}`);
      if (final) {
        const j = this.store.get(id)!;
        this.store.update(id, { status: 'failed', error: failedReason, finished: Date.now(), stateDir: existsSync(stateDirOf(j)) ? stateDirOf(j) : null });
      }
    });
    this.events.on('stalled', ({ jobId }) => {
      const id = this.studioId(jobId);
      if (id !== null) this.files.log(id, 'the worker running this job stopped answering; the job goes back to the queue and resumes from its last saved state');
    });
  }

  /** Hands every queued, not yet dispatched job to BullMQ, in the studio's queue order. */
  tick(): void {
    const queued = this.store.list().filter((j) => j.status === 'queued' && j.worker !== DISPATCHED);
    for (const j of queued) {
      this.store.update(j.id, { worker: DISPATCHED, attempts: j.attempts + 1 });
      const data: RedisJobData = { studioJobId: j.id, config: toPortable(j.config, this.root) as Record<string, unknown>, resumeFrom: j.resumeFrom ? String(toPortable(j.resumeFrom, this.root)) : null };
      void this.queue.add('train', data, { jobId: `studio-${j.id}-${j.attempts + 1}`, attempts: 3, backoff: { type: 'fixed', delay: 2000 }, priority: Math.max(1, Math.min(2 ** 21, Math.round(j.position))), removeOnComplete: 100, removeOnFail: 100 })
        .catch((e: Error) => { this.files.log(j.id, `cannot queue on Redis: ${e.message}`); this.store.update(j.id, { status: 'failed', error: e.message, worker: null }); });
    }
  }

  /** BullMQ takes lower priorities first: the studio's queue positions become the priorities of waiting jobs. */
  async reordered(): Promise<void> {
    for (const j of this.store.list().filter((x) => x.status === 'queued' && x.worker === DISPATCHED)) {
      const bull = await this.queue.getJob(`studio-${j.id}-${j.attempts}`);
      if (bull && (await bull.getState()) === 'prioritized') await bull.changePriority({ priority: Math.max(1, Math.min(2 ** 21, Math.round(j.position))) });
    }
  }

  async stop(id: number): Promise<boolean> {
    await this.control.set(stopKey(id), '1', 'EX', 3600);
    this.store.update(id, { status: 'stopping' });
    return true;
  }

  async cancel(id: number): Promise<boolean> {
    await this.control.set(cancelKey(id), '1', 'EX', 3600);
    return true;
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    await this.control.quit();
  }
}

