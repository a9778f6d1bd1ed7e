// Files a job keeps beside the queue database: its log and its loss per step (appended as the
// run goes, so the Jobs page can show them live and after a restart), in <workspace>/jobs/<id>/.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export class JobFiles {
  constructor(private readonly jobsDir: string) {}

  dir(id: number): string {
    const d = path.join(this.jobsDir, String(id));
    mkdirSync(d, { recursive: true });
    return d;
  }

  log(id: number, line: string): void {
    appendFileSync(path.join(this.dir(id), 'log.txt'), `${new Date().toISOString().slice(11, 19)} ${line}\n`);
  }

  loss(id: number, step: number, loss: number): void {
    appendFileSync(path.join(this.dir(id), 'loss.jsonl'), `${JSON.stringify({ step, loss })}\n`);
  }

  readLog(id: number, maxLines = 400): string[] {
    const f = path.join(this.dir(id), 'log.txt');
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).slice(-maxLines) : [];
  }

  /** Loss per step; a resumed run's steps replace the ones after its resume point. */
  readLoss(id: number): [number, number][] {
    const f = path.join(this.dir(id), 'loss.jsonl');
    if (!existsSync(f)) return [];
    const byStep = new Map<number, number>();
    for (const l of readFileSync(f, 'utf8').split('\n')) {
      if (!l) continue;
      try { const { step, loss } = JSON.parse(l); byStep.set(step, loss); } catch { /* a line cut by a crash */ }
    }
    return [...byStep].sort((a, b) => a[0] - b[0]);
  }
}
