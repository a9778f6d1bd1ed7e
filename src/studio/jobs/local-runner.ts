// Runs the studio's queue on this machine: one job at a time (training takes every core), each in
// a forked train-process. It turns the child's reports into the job record, its log and loss
// files; a child that exits without reporting "done" leaves a failed job that can resume from the
// state it last saved.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobFiles } from './job-files.js';
import type { JobRecord, JobStore } from './job-store.js';
import { SpeedMeter, etaSeconds } from './progress.js';
import type { TrainChildMessage, TrainJobSpec } from './train-process.js';

const CHILD = fileURLToPath(new URL('./train-process.ts', import.meta.url));

/** Forks a train-process with tsx loaded (the package runs from its TypeScript sources). */
export function forkTrainProcess(env: Record<string, string> = {}): ChildProcess {
  return fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ...env } });
}

export function stateDirOf(job: Pick<JobRecord, 'config'>): string {
  return path.join(String(job.config.output_dir), `${String(job.config.output_name)}-state`);
}

/** Handles one child's messages for one job: the same logic serves the local runner and `sdlora worker`. */
export function attachTrainChild(child: ChildProcess, spec: TrainJobSpec, onMessage: (m: TrainChildMessage) => void, onExit: (code: number | null, signal: NodeJS.Signals | null, gotResult: boolean) => void): void {
  let gotResult = false;
  let stderrTail = '';
  child.stdout?.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) onMessage({ type: 'log', line: l }); });
  child.stderr?.on('data', (d: Buffer) => {
    stderrTail = (stderrTail + d.toString()).slice(-4000);
    for (const l of d.toString().split('\n')) if (l.trim()) onMessage({ type: 'log', line: l });
  });
  child.on('message', (m: TrainChildMessage) => { if (m.type === 'done' || m.type === 'error') gotResult = true; onMessage(m); });
  child.on('exit', (code, signal) => onExit(code, signal, gotResult));
  child.send({ type: 'start', spec });
  void stderrTail;
}

export class LocalRunner {
  private running: { id: number; child: ChildProcess; cancel: boolean } | null = null;
  private closed = false;

  constructor(private readonly store: JobStore, private readonly files: JobFiles) {}

  /** After a restart: a job the store thinks is running has no process any more. */
  recover(): void {
    for (const j of this.store.list()) {
      if (j.status === 'running' || j.status === 'stopping') {
        const st = stateDirOf(j);
        this.files.log(j.id, 'the studio stopped while this job ran');
        this.store.update(j.id, { status: 'failed', error: `the studio stopped while the job ran${existsSync(st) ? '; resume continues from its last saved state' : ''}`, finished: Date.now(), stateDir: existsSync(st) ? st : null });
      }
    }
  }

  isRunning(id: number): boolean { return this.running?.id === id; }

  /** Starts the next queued job when none runs. */
  tick(): void {
    if (this.running || this.closed) return;
    const next = this.store.list().find((j) => j.status === 'queued');
    if (!next) return;
    this.start(next);
  }

  private start(job: JobRecord): void {
    const spec: TrainJobSpec = { config: job.config, resumeFrom: job.resumeFrom };
    const child = forkTrainProcess();
    // The record names the training process, so a look at the Jobs page (or a test) finds it.
    this.store.update(job.id, { status: 'running', started: Date.now(), finished: null, error: null, worker: `local pid ${child.pid}`, attempts: job.attempts + 1 });
    this.files.log(job.id, spec.resumeFrom ? `starting, resuming from ${spec.resumeFrom}` : 'starting');
    const meter = new SpeedMeter();
    this.running = { id: job.id, child, cancel: false };
    attachTrainChild(child, spec, (m) => {
      if (m.type === 'log') this.files.log(job.id, m.line);
      else if (m.type === 'step') {
        const { itPerSec } = meter.add(m.step, m.time);
        this.files.loss(job.id, m.step, m.loss);
        this.store.update(job.id, { step: m.step, maxSteps: m.maxSteps, epoch: m.epoch, epochs: m.epochs, loss: m.avgLoss, itPerSec, etaSec: etaSeconds(m.step, m.maxSteps, itPerSec) }, { lazy: true });
      } else if (m.type === 'done') {
        const stopped = m.interrupted;
        this.files.log(job.id, stopped ? `stopped at step ${m.steps}; saved ${m.saved.at(-1) ?? 'nothing'}` : `done: ${m.finalPath}`);
        this.store.update(job.id, { status: stopped ? 'stopped' : 'done', output: m.finalPath ?? m.saved.at(-1) ?? null, stateDir: m.stateDir, finished: Date.now(), etaSec: 0, step: m.steps });
      } else if (m.type === 'error') {
        this.files.log(job.id, `error: ${m.message}`);
        this.store.update(job.id, { status: 'failed', error: m.message, finished: Date.now(), stateDir: existsSync(stateDirOf(job)) ? stateDirOf(job) : null });
      }
    }, (code, signal, gotResult) => {
      const wasCancel = this.running?.cancel;
      this.running = null;
      if (wasCancel) {
        this.files.log(job.id, 'cancelled');
        this.store.update(job.id, { status: 'cancelled', finished: Date.now(), stateDir: existsSync(stateDirOf(job)) ? stateDirOf(job) : null });
      } else if (!gotResult) {
        const why = `the training process ended without a result (${signal ? `signal ${signal}` : `exit code ${code}`})`;
        this.files.log(job.id, why);
        this.store.update(job.id, { status: 'failed', error: why, finished: Date.now(), stateDir: existsSync(stateDirOf(job)) ? stateDirOf(job) : null });
      }
      setImmediate(() => this.tick());
    });
  }

  /** Stop-and-save: the run saves its state and a LoRA at the next step, then ends as "stopped". */
  stop(id: number): boolean {
    if (this.running?.id !== id) return false;
    tell(this.running.child, { type: 'stop' });
    this.store.update(id, { status: 'stopping' });
    return true;
  }

  cancel(id: number): boolean {
    if (this.running?.id !== id) return false;
    this.running.cancel = true;
    this.running.child.kill('SIGKILL');
    return true;
  }

  /** Studio shutdown: ask the running job to save and stop, and wait for it (bounded). */
  async close(timeoutMs = 30000): Promise<void> {
    this.closed = true;
    const r = this.running;
    if (!r || exited(r.child)) return;
    tell(r.child, { type: 'stop' });
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { r.child.kill('SIGKILL'); resolve(); }, timeoutMs);
      r.child.once('exit', () => { clearTimeout(t); resolve(); });
    });
  }
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

/**
 * A message to the train process unless its channel is already closed: a child just killed (a
 * cancel) closes the channel before its 'exit' event, and it is going away in any case.
 */
export function tell(c: ChildProcess, msg: unknown): void {
  if (c.connected) c.send(msg as object, (err) => { if (err && c.connected) console.error(`train process: ${err.message}`); });
}
