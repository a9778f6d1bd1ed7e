// Stops training at the first NaN/Inf loss or gradient (or skips up to skip_nan_steps of them):
// an update with such a gradient poisons every LoRA weight, and the run would go on to save a
// LoRA that renders black images.
export class TrainingDiverged extends Error {}

export interface NanAdvice {
  learningRate: number;
  mixedPrecision: string;
  maxGradNorm: number;
  lastSave: string | null;
  stateDir: string | null;
}

export class NanGuard {
  private skipped = 0;

  constructor(private allowedSkips: number, private log: (m: string) => void) {}

  /** What is not finite about this step, or null when the loss and every gradient are finite. */
  static problem(loss: number, grads: { name: string; data: Float32Array }[]): string | null {
    if (!Number.isFinite(loss)) return `the loss is ${loss}`;
    const bad = grads.find((g) => !g.data.every(Number.isFinite));
    return bad ? `the gradient of ${bad.name} holds NaN or Inf` : null;
  }

  /** True when the step must be skipped; throws when no skips are left. */
  check(step: number, problem: string | null, advice: NanAdvice): boolean {
    if (!problem) return false;
    if (this.skipped < this.allowedSkips) {
      this.skipped++;
      this.log(`warning: step ${step}: ${problem}; the update is skipped (${this.skipped} of skip_nan_steps ${this.allowedSkips})`);
      return true;
    }
    throw new TrainingDiverged(`training diverged at step ${step}: ${problem}. ${kept(advice)}\n${hints(advice)}`);
  }
}

function kept(a: NanAdvice): string {
  if (!a.lastSave) return 'Nothing was saved before this step.';
  return `The last good save is kept: ${a.lastSave}${a.stateDir ? ` (state ${a.stateDir})` : ''}.`;
}

function hints(a: NanAdvice): string {
  const tips = [`a lower learning_rate (now ${a.learningRate}, try ${a.learningRate / 10})`];
  if (a.mixedPrecision !== 'no') tips.push(`full precision (mixed_precision=no instead of ${a.mixedPrecision})`);
  if (!(a.maxGradNorm > 0)) tips.push('gradient clipping (max_grad_norm=1)');
  tips.push('skip_nan_steps=N to step over a few bad batches');
  return `Try: ${tips.join('; ')}.`;
}
