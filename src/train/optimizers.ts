// Optimizers over the LoRA parameters, as the sd-scripts choices: AdamW (torch), AdamW8bit
// (blockwise 8-bit states), Lion, Prodigy (prodigyopt) and SGD with Nesterov momentum. They work on
// f32 arrays in place of the parameter tensors and expose their state for exact resume.
export interface ParamSlot {
  name: string;
  group: string;
  /** Current values (updated in place by step). */
  data: Float32Array;
}

export interface ParamGroup {
  name: string;
  lr: number;
}

export interface OptimizerState {
  step: number;
  scalars: Record<string, number>;
  /** name -> state arrays (f32; 8-bit states are widened). */
  tensors: Record<string, Float32Array>;
}

export abstract class Optimizer {
  step = 0;
  constructor(readonly groups: Map<string, ParamGroup>, readonly args: Record<string, string>) {}
  /** lrs: the scheduled learning rate per group. */
  abstract update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void;
  abstract stateDict(): OptimizerState;
  abstract loadState(s: OptimizerState): void;
  /** sd-scripts' ss_optimizer string. */
  abstract describe(): string;
  protected num(key: string, d: number): number {
    const v = this.args[key];
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`optimizer_args: ${key}=${v} is not a number`);
    return n;
  }
  protected pair(key: string, d: [number, number]): [number, number] {
    const v = this.args[key];
    if (v === undefined) return d;
    const p = v.replace(/[()[\]\s]/g, '').split(',').map(Number);
    if (p.length !== 2 || p.some((x) => !Number.isFinite(x))) throw new Error(`optimizer_args: ${key}=${v} must be two numbers like 0.9,0.999`);
    return [p[0], p[1]];
  }
  protected argString(): string {
    const e = Object.entries(this.args);
    return e.length ? `(${e.map(([k, v]) => `${k}=${v}`).join(',')})` : '';
  }
}

function stateArrays(store: Map<string, Float32Array[]>, name: string, n: number, count: number): Float32Array[] {
  let s = store.get(name);
  if (!s) { s = Array.from({ length: count }, () => new Float32Array(n)); store.set(name, s); }
  return s;
}

function dump(store: Map<string, Float32Array[]>, labels: string[]): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [k, arrs] of store) arrs.forEach((a, i) => { out[`${k}::${labels[i]}`] = a; });
  return out;
}

function restore(store: Map<string, Float32Array[]>, tensors: Record<string, Float32Array>, labels: string[]): void {
  store.clear();
  for (const [key, a] of Object.entries(tensors)) {
    const i = key.lastIndexOf('::');
    const name = key.slice(0, i), li = labels.indexOf(key.slice(i + 2));
    if (li < 0) continue;
    const s = store.get(name) ?? new Array<Float32Array>(labels.length);
    s[li] = Float32Array.from(a);
    store.set(name, s);
  }
}

export class AdamW extends Optimizer {
  private s = new Map<string, Float32Array[]>();
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const [b1, b2] = this.pair('betas', [0.9, 0.999]);
    const eps = this.num('eps', 1e-8), wd = this.num('weight_decay', 0.01);
    const bc1 = 1 - b1 ** this.step, bc2 = 1 - b2 ** this.step;
    slots.forEach((p, k) => {
      const lr = lrs.get(p.group) ?? 0;
      const g = grads[k], x = p.data;
      const [m, v] = stateArrays(this.s, p.name, x.length, 2);
      const stepSize = lr / bc1, sq = Math.sqrt(bc2);
      for (let i = 0; i < x.length; i++) {
        x[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        x[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / sq + eps);
      }
    });
  }
  stateDict(): OptimizerState { return { step: this.step, scalars: {}, tensors: dump(this.s, ['exp_avg', 'exp_avg_sq']) }; }
  loadState(st: OptimizerState): void { this.step = st.step; restore(this.s, st.tensors, ['exp_avg', 'exp_avg_sq']); }
  describe(): string { return `torch.optim.adamw.AdamW${this.argString()}`; }
}

/**
 * AdamW with both moments stored in 8 bits per value, blockwise (256 values share one f32 absmax),
 * with square-root companding for the signed first moment and fourth-root for the second.
 */
export class AdamW8bit extends Optimizer {
  static BLOCK = 256;
  private s = new Map<string, { m: Int8Array; v: Uint8Array; mMax: Float32Array; vMax: Float32Array }>();
  private state(name: string, n: number) {
    let st = this.s.get(name);
    if (!st) {
      const nb = Math.ceil(n / AdamW8bit.BLOCK);
      st = { m: new Int8Array(n), v: new Uint8Array(n), mMax: new Float32Array(nb), vMax: new Float32Array(nb) };
      this.s.set(name, st);
    }
    return st;
  }
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const [b1, b2] = this.pair('betas', [0.9, 0.999]);
    const eps = this.num('eps', 1e-8), wd = this.num('weight_decay', 0.01);
    const bc1 = 1 - b1 ** this.step, bc2 = 1 - b2 ** this.step;
    const B = AdamW8bit.BLOCK;
    const mBuf = new Float32Array(B), vBuf = new Float32Array(B);
    slots.forEach((p, k) => {
      const lr = lrs.get(p.group) ?? 0;
      const g = grads[k], x = p.data;
      const st = this.state(p.name, x.length);
      for (let b0 = 0, blk = 0; b0 < x.length; b0 += B, blk++) {
        const n = Math.min(B, x.length - b0);
        let mMax = 0, vMax = 0;
        for (let j = 0; j < n; j++) {
          const i = b0 + j;
          const q = st.m[i] / 127, r = st.v[i] / 255;
          const m = b1 * Math.sign(q) * q * q * st.mMax[blk] + (1 - b1) * g[i];
          const v = b2 * r * r * r * r * st.vMax[blk] + (1 - b2) * g[i] * g[i];
          mBuf[j] = m; vBuf[j] = v;
          mMax = Math.max(mMax, Math.abs(m)); vMax = Math.max(vMax, v);
          x[i] *= 1 - lr * wd;
          x[i] -= ((lr / bc1) * m) / (Math.sqrt(v / bc2) + eps);
        }
        st.mMax[blk] = mMax; st.vMax[blk] = vMax;
        for (let j = 0; j < n; j++) {
          st.m[b0 + j] = mMax ? Math.round(127 * Math.sign(mBuf[j]) * Math.sqrt(Math.abs(mBuf[j]) / mMax)) : 0;
          st.v[b0 + j] = vMax ? Math.round(255 * Math.sqrt(Math.sqrt(vBuf[j] / vMax))) : 0;
        }
      }
    });
  }
  stateDict(): OptimizerState {
    const tensors: Record<string, Float32Array> = {};
    for (const [k, st] of this.s) {
      tensors[`${k}::m8`] = Float32Array.from(st.m); tensors[`${k}::v8`] = Float32Array.from(st.v);
      tensors[`${k}::m_absmax`] = st.mMax; tensors[`${k}::v_absmax`] = st.vMax;
    }
    return { step: this.step, scalars: {}, tensors };
  }
  loadState(s: OptimizerState): void {
    this.step = s.step;
    this.s.clear();
    for (const key of Object.keys(s.tensors)) {
      if (!key.endsWith('::m8')) continue;
      const k = key.slice(0, -4);
      this.s.set(k, { m: Int8Array.from(s.tensors[`${k}::m8`]), v: Uint8Array.from(s.tensors[`${k}::v8`]), mMax: Float32Array.from(s.tensors[`${k}::m_absmax`]), vMax: Float32Array.from(s.tensors[`${k}::v_absmax`]) });
    }
  }
  describe(): string { return `bitsandbytes.optim.adamw.AdamW8bit${this.argString()}`; }
}

export class Lion extends Optimizer {
  private s = new Map<string, Float32Array[]>();
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const [b1, b2] = this.pair('betas', [0.9, 0.99]);
    const wd = this.num('weight_decay', 0);
    slots.forEach((p, k) => {
      const lr = lrs.get(p.group) ?? 0;
      const g = grads[k], x = p.data;
      const [m] = stateArrays(this.s, p.name, x.length, 1);
      for (let i = 0; i < x.length; i++) {
        x[i] *= 1 - lr * wd;
        x[i] -= lr * Math.sign(b1 * m[i] + (1 - b1) * g[i]);
        m[i] = b2 * m[i] + (1 - b2) * g[i];
      }
    });
  }
  stateDict(): OptimizerState { return { step: this.step, scalars: {}, tensors: dump(this.s, ['exp_avg']) }; }
  loadState(s: OptimizerState): void { this.step = s.step; restore(this.s, s.tensors, ['exp_avg']); }
  describe(): string { return `lion_pytorch.lion_pytorch.Lion${this.argString()}`; }
}

export class SGDNesterov extends Optimizer {
  private s = new Map<string, Float32Array[]>();
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const mom = this.num('momentum', 0.9), wd = this.num('weight_decay', 0);
    slots.forEach((p, k) => {
      const lr = lrs.get(p.group) ?? 0;
      const g = grads[k], x = p.data;
      const [buf] = stateArrays(this.s, p.name, x.length, 1);
      for (let i = 0; i < x.length; i++) {
        const gi = g[i] + wd * x[i];
        buf[i] = this.step === 1 ? gi : mom * buf[i] + gi;
        x[i] -= lr * (gi + mom * buf[i]);
      }
    });
  }
  stateDict(): OptimizerState { return { step: this.step, scalars: {}, tensors: dump(this.s, ['momentum_buffer']) }; }
  loadState(s: OptimizerState): void { this.step = s.step; restore(this.s, s.tensors, ['momentum_buffer']); }
  describe(): string { return `torch.optim.sgd.SGD(nesterov=True${Object.keys(this.args).length ? ',' : ''}${this.argString().slice(1, -1)})`; }
}

/** Prodigy (Mishchenko & Defazio), following prodigyopt 1.0 without bias correction. lr ~ 1. */
export class Prodigy extends Optimizer {
  private s = new Map<string, Float32Array[]>();
  private d = 1e-6;
  private dMax = 1e-6;
  private dNumerator = 0;
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const [b1, b2] = this.pair('betas', [0.9, 0.999]);
    const b3 = this.num('beta3', Math.sqrt(b2));
    const eps = this.num('eps', 1e-8), wd = this.num('weight_decay', 0), d0 = this.num('d0', 1e-6);
    const dCoef = this.num('d_coef', 1), growth = this.num('growth_rate', Infinity);
    if (this.step === 1) { this.d = d0; this.dMax = d0; }
    const d = this.d;
    // Only the first group's lr counts, as in sd-scripts' D-Adaptation/Prodigy handling.
    const lr = lrs.values().next().value ?? 1;
    const dlr = d * lr;
    this.dNumerator *= b3;
    let dDenom = 0;
    slots.forEach((p, k) => {
      const g = grads[k], x = p.data;
      const [m, v, s, x0] = stateArrays(this.s, p.name, x.length, 4);
      if (this.step === 1) x0.set(x);
      let dot = 0;
      for (let i = 0; i < x.length; i++) {
        dot += g[i] * (x0[i] - x[i]);
        m[i] = b1 * m[i] + d * (1 - b1) * g[i];
        v[i] = b2 * v[i] + d * d * (1 - b2) * g[i] * g[i];
        s[i] = b3 * s[i] + (d / d0) * dlr * g[i];
        dDenom += Math.abs(s[i]);
      }
      this.dNumerator += (d / d0) * dlr * dot;
    });
    if (dDenom > 0) {
      const dHat = (dCoef * this.dNumerator) / dDenom;
      let nd = d === d0 ? Math.max(d, dHat) : d;
      this.dMax = Math.max(this.dMax, dHat);
      nd = Math.min(this.dMax, nd * growth);
      this.d = nd;
    }
    slots.forEach((p) => {
      const x = p.data;
      const [m, v] = this.s.get(p.name)!;
      for (let i = 0; i < x.length; i++) {
        x[i] *= 1 - wd * dlr;
        x[i] -= (dlr * m[i]) / (Math.sqrt(v[i]) + this.d * eps);
      }
    });
  }
  get dValue(): number { return this.d; }
  stateDict(): OptimizerState { return { step: this.step, scalars: { d: this.d, d_max: this.dMax, d_numerator: this.dNumerator }, tensors: dump(this.s, ['exp_avg', 'exp_avg_sq', 's', 'p0']) }; }
  loadState(st: OptimizerState): void {
    this.step = st.step; this.d = st.scalars.d; this.dMax = st.scalars.d_max; this.dNumerator = st.scalars.d_numerator;
    restore(this.s, st.tensors, ['exp_avg', 'exp_avg_sq', 's', 'p0']);
  }
  describe(): string { return `prodigyopt.prodigy.Prodigy${this.argString()}`; }
}

export function createOptimizer(type: string, groups: Map<string, ParamGroup>, args: Record<string, string>): Optimizer {
  switch (type.toLowerCase()) {
    case 'adamw': return new AdamW(groups, args);
    case 'adamw8bit': return new AdamW8bit(groups, args);
    case 'lion': return new Lion(groups, args);
    case 'prodigy': return new Prodigy(groups, args);
    case 'sgdnesterov': return new SGDNesterov(groups, args);
    default: throw new Error(`optimizer_type "${type}" is not supported (AdamW, AdamW8bit, Lion, Prodigy, SGDNesterov)`);
  }
}
