// A one-line progress bar on stderr with rate and ETA (redrawn in place on a terminal, printed
// every 10% otherwise so logs stay short).
export class ProgressBar {
  private lastPct = -1;

  /**
   * `start` and `startDone`: when the measured work began and how much was done then (a bar made
   * at a run's first step measures from that step; the rate shows "?" until the second).
   */
  constructor(private label: string, private total: number, private unit = 'it', private start = performance.now(), private startDone = 0) {}

  update(done: number, extra = ''): void {
    const el = (performance.now() - this.start) / 1000;
    const rate = (done - this.startDone) / Math.max(el, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : NaN;
    const pct = Math.floor((100 * done) / this.total);
    const width = 24;
    const fill = Math.round((width * done) / this.total);
    const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total} ` +
      `${rate >= 1 ? `${rate.toFixed(2)} ${this.unit}/s` : rate > 0 ? `${(1 / rate).toFixed(2)} s/${this.unit}` : `? ${this.unit}/s`} ` +
      `elapsed ${fmt(el)} eta ${fmt(eta)}${extra ? ` ${extra}` : ''}`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}\x1b[K`);
      if (done >= this.total) process.stderr.write('\n');
    } else if (pct >= this.lastPct + 10 || done >= this.total) {
      this.lastPct = pct;
      process.stderr.write(`${line}\n`);
    }
  }
}

export function fmt(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
