// The final save when the disk is full (ENOSPC): the trained weights stay in memory, the user is
// told how much space is needed, and the file goes to fallback_output_dir, or is written again
// once the user has made room and sent SIGUSR1. Throwing would lose the whole finished run.
import { mkdirSync, statfsSync } from 'node:fs';
import path from 'node:path';

export interface DiskFullOptions {
  /** Bytes the file needs (about the size of the LoRA). */
  bytes: number;
  fallbackDir?: string;
  log: (m: string) => void;
}

export const isDiskFull = (e: unknown) => ['ENOSPC', 'EDQUOT'].includes((e as NodeJS.ErrnoException).code ?? '');
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

function freeBytes(dir: string): number | null {
  try { const s = statfsSync(dir); return s.bavail * s.bsize; } catch { return null; }
}

/** SIGUSR1: retry; SIGINT/SIGTERM: give up. */
function waitForRetrySignal(): Promise<boolean> {
  return new Promise((resolve) => {
    // Signal listeners alone do not keep Node's event loop alive.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const done = (retry: boolean) => () => {
      clearInterval(keepAlive);
      process.off('SIGUSR1', onRetry); process.off('SIGINT', onStop); process.off('SIGTERM', onStop);
      resolve(retry);
    };
    const onRetry = done(true), onStop = done(false);
    process.once('SIGUSR1', onRetry); process.once('SIGINT', onStop); process.once('SIGTERM', onStop);
  });
}

/** Runs a save; a full disk makes it a warning instead of an error. */
export async function skipIfDiskFull(save: () => Promise<void>, what: string, log: (m: string) => void): Promise<void> {
  try {
    await save();
  } catch (e) {
    if (!isDiskFull(e)) throw e;
    log(`warning: ${what} was skipped, the disk is full (${(e as Error).message}); training goes on, the last complete save is kept`);
  }
}

/** Writes `file` with `write`; on a full disk falls back or waits for a retry signal. Returns the path written. */
export async function saveDespiteFullDisk(file: string, write: (file: string) => Promise<void>, o: DiskFullOptions): Promise<string> {
  let target = file;
  for (;;) {
    try {
      await write(target);
      return target;
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      const dir = path.dirname(target), free = freeBytes(dir);
      o.log(`error: ${dir}: the disk is full while writing ${path.basename(target)}: it needs about ${mib(o.bytes)}${free === null ? '' : `, ${mib(free)} free`}. The trained LoRA is kept in memory.`);
      const fallback = o.fallbackDir ? path.join(o.fallbackDir, path.basename(file)) : null;
      if (fallback && target !== fallback) {
        o.log(`writing it to fallback_output_dir instead: ${fallback}`);
        mkdirSync(o.fallbackDir!, { recursive: true });
        target = fallback;
        continue;
      }
      // Listen before saying so: a SIGUSR1 without a listener would start Node's inspector instead.
      const retry = waitForRetrySignal();
      o.log(`Free some space, then send SIGUSR1 to retry (kill -USR1 ${process.pid}); Ctrl-C gives up. Next time, fallback_output_dir=<dir> writes elsewhere on its own.`);
      if (!(await retry)) throw new Error(`${target}: not saved, the disk is full (${(e as Error).message})`);
      target = file;
    }
  }
}
