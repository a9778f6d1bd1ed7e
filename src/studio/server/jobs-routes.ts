// Jobs page API: queue a training job (refused before it starts when the estimator says it
// cannot fit the chosen device), list and inspect jobs with live progress, loss, log and samples,
// and the queue actions: cancel, stop-and-save, resume, retry, reorder.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { prepareJobConfig } from '../jobs/job-config.js';
import type { JobFiles } from '../jobs/job-files.js';
import type { JobRecord, JobStore } from '../jobs/job-store.js';
import { stateDirOf } from '../jobs/local-runner.js';
import { HttpError, type Router, readJson, sendBytes, sendJson } from './http-kit.js';
import { estimateForm } from './train-routes.js';
import { type Workspace, checkSegment } from './workspace.js';

/** What runs the queue: this machine's runner, or the Redis dispatcher that hands jobs to workers. */
export interface JobRunner {
  tick(): void;
  stop(id: number): boolean | Promise<boolean>;
  cancel(id: number): boolean | Promise<boolean>;
  /** The order of queued jobs changed (the Redis dispatcher passes it on to jobs it handed over). */
  reordered?(): void | Promise<void>;
}

export function registerJobRoutes(r: Router, ws: Workspace, store: JobStore, files: JobFiles, runner: JobRunner): void {
  const job = (id: string): JobRecord => {
    const n = Number(id);
    const j = Number.isInteger(n) ? store.get(n) : undefined;
    if (!j) throw new HttpError(404, `no job ${id}`);
    return j;
  };
  const publicJob = (j: JobRecord) => ({ ...j, config: { ...j.config, train_data_dir: path.basename(String(j.config.train_data_dir)), output_dir: ws.relative(String(j.config.output_dir)) }, output: j.output ? ws.relative(j.output) : null, stateDir: j.stateDir ? ws.relative(j.stateDir) : null, resumeFrom: j.resumeFrom ? ws.relative(j.resumeFrom) : null });
  const sampleDir = (j: JobRecord) => path.join(String(j.config.output_dir), 'sample');

  r.add('GET', '/api/jobs', (_q, res) => sendJson(res, 200, { jobs: store.list().map(publicJob) }));

  r.add('POST', '/api/jobs', async (req, res) => {
    const b = await readJson<{ values: Record<string, unknown>; estimateDevice?: string; overwrite?: boolean }>(req);
    if (!b.values || typeof b.values !== 'object') throw new HttpError(400, 'values (the training options) are required');
    const prepared = await prepareJobConfig(ws, b.values, { overwrite: b.overwrite === true });
    // Two live jobs writing one output folder would replace each other's files (and the second would find it locked).
    const clash = store.list().find((j) => ['queued', 'running', 'stopping'].includes(j.status) && j.config.output_dir === prepared.outputDir);
    if (clash) throw new HttpError(409, `job ${clash.id} (${clash.status}) already writes loras/${prepared.name}; choose another output name`);
    const est = estimateForm(b.values, b.estimateDevice ?? 'cpu');
    if (!est.fits) throw new HttpError(400, `refused: the estimate needs ${est.vramGB.toFixed(1)} GB but ${est.device} has less memory; lower the resolution, batch or rank, or turn on gradient checkpointing`, { estimate: est });
    const j = store.add({ name: prepared.name, config: prepared.config, device: est.device });
    files.log(j.id, `queued (estimate on ${est.device}: ${est.vramGB.toFixed(2)} GB, ${est.secondsPerStep.toFixed(2)} s/step)`);
    runner.tick();
    sendJson(res, 201, { job: publicJob(store.get(j.id)!) });
  });

  r.add('GET', '/api/jobs/:id', (_q, res, p) => {
    const j = job(p.id);
    const samples = existsSync(sampleDir(j)) ? readdirSync(sampleDir(j)).filter((f) => f.endsWith('.png')).sort() : [];
    sendJson(res, 200, { job: publicJob(j), loss: files.readLoss(j.id), log: files.readLog(j.id).map((l) => l.split(ws.root + path.sep).join('')), samples });
  });

  r.add('GET', '/api/jobs/:id/samples/:file', (_q, res, p) => {
    const j = job(p.id);
    const f = path.join(sampleDir(j), checkSegment(p.file, 'sample'));
    if (!f.endsWith('.png') || !existsSync(f)) throw new HttpError(404, `no sample "${p.file}"`);
    sendBytes(res, 'image/png', readFileSync(f));
  });

  r.add('POST', '/api/jobs/:id/cancel', async (_q, res, p) => {
    const j = job(p.id);
    if (j.status === 'queued') store.update(j.id, { status: 'cancelled', finished: Date.now() });
    else if (j.status === 'running' || j.status === 'stopping') { if (!(await runner.cancel(j.id))) throw new HttpError(409, `job ${j.id} is not running here`); }
    else throw new HttpError(409, `job ${j.id} is ${j.status}; only queued or running jobs can be cancelled`);
    sendJson(res, 200, { job: publicJob(store.get(j.id)!) });
  });

  r.add('POST', '/api/jobs/:id/stop', async (_q, res, p) => {
    const j = job(p.id);
    if (j.status !== 'running' || !(await runner.stop(j.id))) throw new HttpError(409, `job ${j.id} is ${j.status}; only a running job can stop and save`);
    sendJson(res, 200, { job: publicJob(store.get(j.id)!) });
  });

  // Resume: continue from the job's last saved state.
  r.add('POST', '/api/jobs/:id/resume', (_q, res, p) => {
    const j = job(p.id);
    if (!['stopped', 'failed', 'cancelled'].includes(j.status)) throw new HttpError(409, `job ${j.id} is ${j.status}; only a stopped, failed or cancelled job resumes`);
    const st = j.stateDir ?? stateDirOf(j);
    if (!existsSync(path.join(st, 'train_state.json'))) throw new HttpError(409, `job ${j.id} saved no training state to resume from; retry it instead`);
    store.requeue(j.id, { resumeFrom: st, error: null, worker: null });
    files.log(j.id, `queued to resume from ${ws.relative(st)}`);
    runner.tick();
    sendJson(res, 200, { job: publicJob(store.get(j.id)!) });
  });

  // Retry: start over; its LoRA files would be replaced, so that needs { overwrite: true }.
  r.add('POST', '/api/jobs/:id/retry', async (req, res, p) => {
    const j = job(p.id);
    const b = await readJson<{ overwrite?: boolean }>(req);
    if (!['done', 'failed', 'cancelled', 'stopped'].includes(j.status)) throw new HttpError(409, `job ${j.id} is ${j.status}`);
    const out = String(j.config.output_dir);
    if (!b.overwrite && existsSync(out) && readdirSync(out).some((f) => f.endsWith('.safetensors'))) throw new HttpError(409, `retrying replaces the LoRA files in ${ws.relative(out)}; confirm to overwrite`, { exists: true });
    store.requeue(j.id, { resumeFrom: null, error: null, step: 0, loss: null, output: null, worker: null });
    files.log(j.id, 'queued to run again from the start');
    runner.tick();
    sendJson(res, 200, { job: publicJob(store.get(j.id)!) });
  });

  r.add('POST', '/api/jobs/:id/move', async (req, res, p) => {
    const j = job(p.id);
    const b = await readJson<{ direction: string }>(req);
    if (b.direction !== 'up' && b.direction !== 'down') throw new HttpError(400, 'direction must be up or down');
    if (j.status !== 'queued') throw new HttpError(409, `job ${j.id} is ${j.status}; only queued jobs move`);
    store.move(j.id, b.direction);
    await runner.reordered?.();
    sendJson(res, 200, { jobs: store.list().map(publicJob) });
  });
}
