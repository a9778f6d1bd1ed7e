// Jobs past one machine: the studio with --redis hands jobs to BullMQ on a real redis-server
// (started here on a free port, stopped by its pid), two `sdlora worker` processes share the
// queue, and a worker killed mid-job leaves the job to the other, which resumes from the last
// saved state; no output file is half-written.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { DEMO_IMAGES, tempStudio, tinyJob, waitFor } from './studio-helpers.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/sdlora.js');
const REDIS = process.env.SDLORA_REDIS_SERVER ?? '/usr/bin/redis-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const p = (srv.address() as net.AddressInfo).port; srv.close(() => resolve(p)); });
    srv.on('error', reject);
  });
}

const children: ChildProcess[] = [];
let redis: ChildProcess;
let redisUrl: string;
let s: Awaited<ReturnType<typeof tempStudio>>;
const workerOut: Record<string, string> = {};

function startWorker(name: string, dir: string): ChildProcess {
  const c = spawn(process.execPath, [BIN, 'worker', '--redis', redisUrl, '--dir', dir, '--name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  workerOut[name] = '';
  c.stdout!.on('data', (d) => { workerOut[name] += d; });
  c.stderr!.on('data', (d) => { workerOut[name] += d; });
  children.push(c);
  return c;
}

before(async () => {
  assert.ok(existsSync(REDIS), `no redis-server at ${REDIS}: apt-get install redis-server`);
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-redis-'));
  redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  redis.stdout!.on('data', (d) => { out += d; });
  await waitFor(() => /Ready to accept connections/.test(out), 15_000, 'redis-server to start');
  redisUrl = `redis://127.0.0.1:${port}`;
  s = await tempStudio({ redis: redisUrl });
  mkdirSync(path.join(s.workspace.root, 'datasets/ds/10_cross'), { recursive: true });
  for (const f of readdirSync(DEMO_IMAGES).filter((x) => x.endsWith('.png')).slice(0, 4)) cpSync(path.join(DEMO_IMAGES, f), path.join(s.workspace.root, 'datasets/ds/10_cross', f));
});

after(async () => {
  await s?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (redis && redis.exitCode === null) { redis.kill('SIGTERM'); await new Promise((r) => redis.once('exit', r)); }
});

it('two workers share the queue; a worker killed mid-job hands the job to the other, which resumes', { timeout: 400_000 }, async () => {
  const w1 = startWorker('w1', s.workspace.root);
  const w2 = startWorker('w2', s.workspace.root);
  await waitFor(() => /waiting for jobs/.test(workerOut.w1) && /waiting for jobs/.test(workerOut.w2), 60_000, 'both workers to start');
  const r = await s.api('POST', '/api/jobs', { values: tinyJob('ds', 'remote', { max_train_steps: 14, train_batch_size: 1, save_every_n_steps: 2 }) });
  assert.equal(r.status, 201, r.text);
  const id = r.body.job.id;
  const stateFile = path.join(s.workspace.root, 'loras/remote/remote-state/train_state.json');
  const job = async () => (await s.api('GET', `/api/jobs/${id}`)).body;
  // The job runs on one worker; progress reaches the studio through BullMQ.
  const running = await waitFor(async () => { const j = await job(); return j.job.status === 'running' && j.job.step >= 3 && existsSync(stateFile) && j; }, 180_000, 'progress from a worker and a saved state');
  const first = running.job.worker as string;
  assert.ok(['w1', 'w2'].includes(first), first);
  const victim = first === 'w1' ? w1 : w2, other = first === 'w1' ? 'w2' : 'w1';
  victim.kill('SIGKILL');
  // BullMQ's stalled-job check hands the job to the other worker, which resumes from the state.
  const done = await waitFor(async () => { const j = await job(); return ['done', 'failed'].includes(j.job.status) && j; }, 240_000, 'the job to finish on the other worker');
  assert.equal(done.job.status, 'done', `${done.job.error}\n${done.log.join('\n')}`);
  assert.equal(done.job.worker, other);
  assert.ok(done.log.some((l: string) => l.includes(`[${other}]`) && /resumed at step [1-9]\d*/.test(l)), done.log.join('\n'));
  assert.equal(done.job.step, 14);
  assert.ok(done.loss.length >= 10);
  // No half-written output: no temp files, and every LoRA file reads back whole.
  const out = path.join(s.workspace.root, 'loras/remote');
  const all = readdirSync(out, { recursive: true }).map(String);
  assert.deepEqual(all.filter((f) => f.endsWith('.tmp')), []);
  for (const f of all.filter((x) => x.endsWith('.safetensors'))) {
    const { tensors, metadata } = await loadSafetensors(path.join(out, f));
    assert.ok(Object.keys(tensors).length > 0, f);
    if (!f.includes('-state')) assert.equal(metadata.ss_output_name, 'remote', f);
  }
  assert.ok(existsSync(path.join(out, 'remote.safetensors')));
});

it('stop-and-save, the queue order, resume and cancel reach the workers', { timeout: 400_000 }, async () => {
  const job = async (id: number) => (await s.api('GET', `/api/jobs/${id}`)).body;
  const until = (id: number, want: string[]) => waitFor(async () => { const j = await job(id); return want.includes(j.job.status) && j; }, 180_000, `job ${id} to be ${want.join('/')}`);
  if (!Object.keys(workerOut).length) { startWorker('w3', s.workspace.root); await waitFor(() => /waiting for jobs/.test(workerOut.w3), 60_000, 'a worker'); }
  const post = async (values: Record<string, unknown>) => (await s.api('POST', '/api/jobs', { values })).body.job.id as number;
  const a = await post(tinyJob('ds', 'long', { max_train_steps: 300, train_batch_size: 1, save_every_n_steps: 2 }));
  await waitFor(async () => (await job(a)).job.step >= 3, 180_000, 'job a to run');
  const b = await post(tinyJob('ds', 'b'));
  const c = await post(tinyJob('ds', 'c'));
  assert.equal((await s.api('POST', `/api/jobs/${c}/move`, { direction: 'up' })).status, 200);
  assert.equal((await s.api('POST', `/api/jobs/${a}/stop`)).status, 200);
  const stopped = await until(a, ['stopped']);
  assert.ok(stopped.job.stateDir);
  const [jb, jc] = [await until(b, ['done']), await until(c, ['done'])];
  assert.ok(jc.job.started < jb.job.started, 'c, moved up, ran before b');
  assert.equal((await s.api('POST', `/api/jobs/${a}/resume`)).status, 200);
  await waitFor(async () => (await job(a)).log.some((l: string) => /resumed at step [1-9]/.test(l)) && (await job(a)).job.status === 'running', 180_000, 'job a to resume on a worker');
  assert.equal((await s.api('POST', `/api/jobs/${a}/cancel`)).status, 200);
  await until(a, ['cancelled']);
});
