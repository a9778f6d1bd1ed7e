// One training run per output_dir: a lock file holding the PID and host of the run that owns the
// folder. Two runs into one folder would interleave their logs, step files and final LoRAs.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = '.sdlora-train.lock';

interface LockInfo { pid: number; host: string; startedAt: string }

export interface RunLock { file: string; release(): void }

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

function readLock(file: string): LockInfo | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as LockInfo; } catch { return null; }
}

/** Takes the lock of `dir` or throws naming the run that holds it; a lock whose process is gone is replaced. */
export function acquireRunLock(dir: string, log: (m: string) => void): RunLock {
  const file = path.join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
      return { file, release: () => { if (readLock(file)?.pid === me.pid) rmSync(file, { force: true }); } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const other = readLock(file);
    // A lock from another host cannot be checked; an unreadable one is a half-written lock of a killed run.
    if (other && (other.host !== me.host || alive(other.pid))) {
      throw new Error(`${dir}: another sdlora training run is using this output_dir (pid ${other.pid} on ${other.host}, since ${other.startedAt}). `
        + `Wait for it to finish or use another output_dir; if that run is gone, delete ${file}`);
    }
    log(`note: removed a stale lock of a run that no longer exists${other ? ` (pid ${other.pid})` : ''}: ${file}`);
    rmSync(file, { force: true });
  }
  throw new Error(`${file}: could not take the output_dir lock (another run took it at the same moment)`);
}
