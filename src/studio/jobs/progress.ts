// Speed and time left of a run from its step reports: it/s as a moving average over the last
// steps (the first step includes model loading and would skew a plain average).
export class SpeedMeter {
  private times: [number, number][] = [];

  add(step: number, time: number): { itPerSec: number | null } {
    this.times.push([step, time]);
    if (this.times.length > 20) this.times.shift();
    if (this.times.length < 2) return { itPerSec: null };
    const [s0, t0] = this.times[0], [s1, t1] = this.times[this.times.length - 1];
    return { itPerSec: t1 > t0 ? ((s1 - s0) * 1000) / (t1 - t0) : null };
  }
}

export function etaSeconds(step: number, maxSteps: number, itPerSec: number | null): number | null {
  return itPerSec && itPerSec > 0 ? Math.max(0, (maxSteps - step) / itPerSec) : null;
}
