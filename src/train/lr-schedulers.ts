// Learning-rate schedules as the Hugging Face transformers functions sd-scripts uses (§3.11):
// the factor that multiplies each parameter group's base learning rate at a step.
export interface ScheduleOptions {
  name: string;
  totalSteps: number;
  /** A value below 1 is a fraction of totalSteps. */
  warmupSteps: number;
  numCycles: number;
  power: number;
  /** polynomial's lr_end relative to the base lr (HF: 1e-7 absolute). */
  baseLr: number;
}

export function lrFactor(step: number, o: ScheduleOptions): number {
  const T = o.totalSteps;
  const w = o.warmupSteps < 1 ? Math.floor(o.warmupSteps * T) : o.warmupSteps;
  if (o.name !== 'constant' && step < w) return step / Math.max(1, w);
  const p = (step - w) / Math.max(1, T - w);
  switch (o.name) {
    case 'constant': case 'constant_with_warmup': return 1;
    case 'linear': return Math.max(0, (T - step) / Math.max(1, T - w));
    case 'cosine': return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * p)));
    case 'cosine_with_restarts': return p >= 1 ? 0 : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((o.numCycles * p) % 1))));
    case 'polynomial': {
      const lrEnd = 1e-7;
      if (o.baseLr <= lrEnd) return 1;
      if (step > T) return lrEnd / o.baseLr;
      return ((o.baseLr - lrEnd) * (1 - p) ** o.power + lrEnd) / o.baseLr;
    }
    default: throw new Error(`lr_scheduler "${o.name}" is not supported`);
  }
}
