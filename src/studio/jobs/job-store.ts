// The studio's job queue on disk: SQLite (sql.js, no native build) in <workspace>/jobs/jobs.sqlite.
// Every change is written back atomically (temp file + rename), so a crash or a restart of the
// studio never loses the queue or leaves a half-written database.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import initSqlJs, { type Database } from 'sql.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';

export type JobStatus = 'queued' | 'running' | 'stopping' | 'done' | 'failed' | 'cancelled' | 'stopped';

export interface JobRecord {
  id: number;
  name: string;
  status: JobStatus;
  position: number;
  /** sd-scripts options as the studio resolved them (paths inside the workspace). */
  config: Record<string, unknown>;
  device: string;
  created: number;
  started: number | null;
  finished: number | null;
  step: number;
  maxSteps: number;
  epoch: number;
  epochs: number;
  loss: number | null;
  itPerSec: number | null;
  etaSec: number | null;
  error: string | null;
  stateDir: string | null;
  resumeFrom: string | null;
  output: string | null;
  worker: string | null;
  attempts: number;
}

const COLUMNS: [keyof JobRecord, string][] = [
  ['name', 'name'], ['status', 'status'], ['position', 'position'], ['config', 'config'], ['device', 'device'], ['created', 'created'],
  ['started', 'started'], ['finished', 'finished'], ['step', 'step'], ['maxSteps', 'max_steps'], ['epoch', 'epoch'], ['epochs', 'epochs'],
  ['loss', 'loss'], ['itPerSec', 'it_per_sec'], ['etaSec', 'eta_sec'], ['error', 'error'], ['stateDir', 'state_dir'], ['resumeFrom', 'resume_from'],
  ['output', 'output'], ['worker', 'worker'], ['attempts', 'attempts'],
];

const SCHEMA = `CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, status TEXT NOT NULL, position REAL NOT NULL, config TEXT NOT NULL,
  device TEXT NOT NULL, created INTEGER NOT NULL, started INTEGER, finished INTEGER, step INTEGER NOT NULL DEFAULT 0,
  max_steps INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0, epochs INTEGER NOT NULL DEFAULT 0, loss REAL,
  it_per_sec REAL, eta_sec REAL, error TEXT, state_dir TEXT, resume_from TEXT, output TEXT, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0)`;

export class JobStore {
  private flushTimer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  private constructor(private db: Database, readonly file: string) {}

  static async open(file: string): Promise<JobStore> {
    const require = createRequire(import.meta.url);
    const SQL = await initSqlJs({ locateFile: (f: string) => require.resolve(`sql.js/dist/${f}`) });
    const db = existsSync(file) ? new SQL.Database(readFileSync(file)) : new SQL.Database();
    db.run(SCHEMA);
    return new JobStore(db, file);
  }

  private row(r: Record<string, unknown>): JobRecord {
    const out: Record<string, unknown> = { id: r.id };
    for (const [k, col] of COLUMNS) out[k] = r[col];
    out.config = JSON.parse(r.config as string);
    return out as unknown as JobRecord;
  }

  list(): JobRecord[] {
    const st = this.db.prepare('SELECT * FROM jobs ORDER BY position, id');
    const out: JobRecord[] = [];
    while (st.step()) out.push(this.row(st.getAsObject()));
    st.free();
    return out;
  }

  get(id: number): JobRecord | undefined {
    const st = this.db.prepare('SELECT * FROM jobs WHERE id = ?');
    st.bind([id]);
    const r = st.step() ? this.row(st.getAsObject()) : undefined;
    st.free();
    return r;
  }

  add(j: Pick<JobRecord, 'name' | 'config' | 'device'> & Partial<JobRecord>): JobRecord {
    const pos = (this.db.exec('SELECT COALESCE(MAX(position), 0) + 1 FROM jobs')[0].values[0][0] as number);
    this.db.run('INSERT INTO jobs (name, status, position, config, device, created, resume_from) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [j.name, j.status ?? 'queued', pos, JSON.stringify(j.config), j.device, Date.now(), j.resumeFrom ?? null]);
    const id = this.db.exec('SELECT last_insert_rowid()')[0].values[0][0] as number;
    this.flush();
    return this.get(id)!;
  }

  update(id: number, patch: Partial<JobRecord>, opts: { lazy?: boolean } = {}): JobRecord {
    const cols = COLUMNS.filter(([k]) => k in patch);
    if (cols.length) {
      const vals = cols.map(([k]) => (k === 'config' ? JSON.stringify(patch[k]) : (patch[k] as never) ?? null));
      this.db.run(`UPDATE jobs SET ${cols.map(([, c]) => `${c} = ?`).join(', ')} WHERE id = ?`, [...vals, id]);
    }
    // Progress ticks are written at most once a second; state changes at once.
    if (opts.lazy) this.flushSoon(); else this.flush();
    return this.get(id)!;
  }

  /** Puts a job at the end of the queue (a resumed or retried job waits behind the queued ones). */
  requeue(id: number, patch: Partial<JobRecord>): JobRecord {
    const pos = (this.db.exec('SELECT COALESCE(MAX(position), 0) + 1 FROM jobs')[0].values[0][0] as number);
    this.db.run('UPDATE jobs SET position = ? WHERE id = ?', [pos, id]);
    return this.update(id, { ...patch, status: 'queued' });
  }

  /** Moves a queued job one place up or down among the jobs. */
  move(id: number, direction: 'up' | 'down'): void {
    const jobs = this.list();
    const i = jobs.findIndex((j) => j.id === id);
    const k = direction === 'up' ? i - 1 : i + 1;
    if (i < 0 || k < 0 || k >= jobs.length) return;
    this.db.run('UPDATE jobs SET position = ? WHERE id = ?', [jobs[k].position, jobs[i].id]);
    this.db.run('UPDATE jobs SET position = ? WHERE id = ?', [jobs[i].position, jobs[k].id]);
    this.flush();
  }

  private flushSoon(): void {
    this.flushTimer ??= setTimeout(() => { this.flushTimer = null; void this.flush(); }, 1000);
  }

  /** Writes the database file; writes are chained so an older snapshot never lands after a newer one. */
  flush(): Promise<void> {
    const data = this.db.export();
    this.writing = this.writing.then(() => writeBufferAtomic(this.file, data)).catch((e) => console.error(`studio: cannot save the job queue: ${(e as Error).message}`));
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    await this.flush();
    this.db.close();
  }
}
