// Optimizers over the LoRA parameters, sdlora's own implementations of the sd-scripts choices:
// the published update rules of AdamW (torch.optim.AdamW), Lion (Chen et al. 2023), Prodigy
// (Mishchenko & Defazio) and SGD with Nesterov momentum, plus an AdamW with blockwise 8-bit
// states. They work on f32 arrays in place of the parameter tensors and expose their state for
// exact resume. No Python library runs, so ss_optimizer names sdlora's classes.
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
  /** optimizer_args keys this optimizer understands; any other key is an error, never ignored. */
  protected abstract readonly known: string[];
  constructor(readonly groups: Map<string, ParamGroup>, readonly args: Record<string, string>) {}
  /** Throws for optimizer_args this optimizer does not implement (createOptimizer calls it). */
  checkArgs(): void {
    const unknown = Object.keys(this.args).filter((k) => !this.known.includes(k));
    if (unknown.length) throw new Error(`optimizer_args ${unknown.join(', ')} not supported by sdlora's ${this.constructor.name} (it takes: ${this.known.join(', ') || 'none'})`);
  }
  /** lrs: the scheduled learning rate per group. */
  abstract update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void;
  abstract stateDict(): OptimizerState;
  abstract loadState(s: OptimizerState): void;
  protected num(key: string, d: number): number {
    const v = this.args[key];
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`optimizer_args: ${key}=${v} is not a number`);
    return n;
  }
  protected bool(key: string, d: boolean): boolean {
    const v = this.args[key];
    if (v === undefined) return d;
    if (/^true$/i.test(v)) return true;
    if (/^false$/i.test(v)) return false;
    throw new Error(`optimizer_args: ${key}=${v} must be True or False`);
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
  /** ss_optimizer: sdlora's class and the arguments given. */
  protected abstract readonly label: string;
  describe(): string { return `sdlora.optimizers.${this.label}${this.argString()}`; }
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

/** torch.optim.AdamW's rule: decoupled weight decay, bias-corrected moments, optional AMSGrad. */
export class AdamW extends Optimizer {
  protected readonly known = ['betas', 'eps', 'weight_decay', 'amsgrad'];
  protected readonly label = 'AdamW';
  private s = new Map<string, Float32Array[]>();
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    this.step++;
    const [b1, b2] = this.pair('betas', [0.9, 0.999]);
    const eps = this.num('eps', 1e-8), wd = this.num('weight_decay', 0.01), ams = this.bool('amsgrad', false);
    const bc1 = 1 - b1 ** this.step, bc2 = 1 - b2 ** this.step;
    slots.forEach((p, k) => {
      const lr = lrs.get(p.group) ?? 0;
      const g = grads[k], x = p.data;
      const [m, v, vMax] = stateArrays(this.s, p.name, x.length, ams ? 3 : 2);
      const stepSize = lr / bc1, sq = Math.sqrt(bc2);
      for (let i = 0; i < x.length; i++) {
        x[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        let vv = v[i];
        if (ams) { vMax[i] = Math.max(vMax[i], v[i]); vv = vMax[i]; }
        x[i] -= (stepSize * m[i]) / (Math.sqrt(vv) / sq + eps);
      }
    });
  }
  stateDict(): OptimizerState { return { step: this.step, scalars: {}, tensors: dump(this.s, ADAM_LABELS) }; }
  loadState(st: OptimizerState): void { this.step = st.step; restore(this.s, st.tensors, ADAM_LABELS); }
}
const ADAM_LABELS = ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'];

/**
 * AdamW with both moments stored in 8 bits per value, blockwise (256 values share one f32 absmax),
 * with square-root companding for the signed first moment and fourth-root for the second. This is
 * sdlora's own scheme, not bitsandbytes' dynamic quantization map, and its metadata says so.
 */
export class AdamW8bit extends Optimizer {
  static BLOCK = 256;
  protected readonly known = ['betas', 'eps', 'weight_decay'];
  protected readonly label = 'AdamW8bit';
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
  describe(): string { return `${super.describe()} (blockwise 8-bit state, not bitsandbytes)`; }
}

/** Lion (Chen et al. 2023, as lion-pytorch): sign of the interpolated momentum; decay times lr. */
export class Lion extends Optimizer {
  protected readonly known = ['betas', 'weight_decay'];
  protected readonly label = 'Lion';
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
}

/** torch.optim.SGD's rule with nesterov=True (which needs momentum > 0 and no dampening). */
export class SGDNesterov extends Optimizer {
  protected readonly known = ['momentum', 'weight_decay', 'dampening', 'nesterov'];
  protected readonly label = 'SGDNesterov';
  private s = new Map<string, Float32Array[]>();
  override checkArgs(): void {
    super.checkArgs();
    if (this.num('momentum', 0.9) <= 0 || this.num('dampening', 0) !== 0 || !this.bool('nesterov', true)) {
      throw new Error('SGDNesterov: Nesterov momentum needs momentum > 0, dampening=0 and nesterov=True');
    }
  }
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
}

interface ProdigyParamState { m: Float32Array | null; v: Float32Array; s: Float32Array; p0: Float32Array }

/**
 * Prodigy (Mishchenko & Defazio), the rule of prodigyopt 1.x: d grows from d0 by the ratio of the
 * weighted gradient-displacement sum to the |s| sum. Every group shares one lr (the largest; a
 * group with another non-zero lr is an error, as in prodigyopt). lr is about 1.
 */
export class Prodigy extends Optimizer {
  protected readonly known = ['betas', 'beta3', 'eps', 'weight_decay', 'decouple', 'use_bias_correction', 'safeguard_warmup', 'd0', 'd_coef', 'growth_rate', 'slice_p'];
  protected readonly label = 'Prodigy';
  private s = new Map<string, ProdigyParamState>();
  private d = NaN;
  private dMax = NaN;
  private dNumerator = 0;
  private param(name: string, x: Float32Array, sliceP: number, beta1: number): ProdigyParamState {
    let st = this.s.get(name);
    if (!st) {
      const ns = Math.ceil(x.length / sliceP);
      st = { m: beta1 > 0 ? new Float32Array(x.length) : null, v: new Float32Array(x.length), s: new Float32Array(ns), p0: new Float32Array(ns) };
      for (let j = 0; j < ns; j++) st.p0[j] = x[j * sliceP];
      this.s.set(name, st);
    }
    return st;
  }
  update(slots: ParamSlot[], grads: Float32Array[], lrs: Map<string, number>): void {
    const [b1, b2] = this.pair('betas', [0.9, 0.999]);
    const b3 = this.num('beta3', Math.sqrt(b2));
    const eps = this.num('eps', 1e-8), wd = this.num('weight_decay', 0), d0 = this.num('d0', 1e-6);
    const dCoef = this.num('d_coef', 1), growth = this.num('growth_rate', Infinity), sliceP = this.num('slice_p', 1);
    const decouple = this.bool('decouple', true), biasCorr = this.bool('use_bias_correction', false), safeguard = this.bool('safeguard_warmup', false);
    if (Number.isNaN(this.d)) { this.d = d0; this.dMax = d0; }
    const lr = Math.max(...lrs.values());
    for (const [g, l] of lrs) if (l !== lr && l !== 0) throw new Error(`Prodigy: every parameter group needs the same lr (or 0); ${g} has ${l}, another ${lr}`);
    const d = this.d;
    const dlr = d * lr * (biasCorr ? Math.sqrt(1 - b2 ** (this.step + 1)) / (1 - b1 ** (this.step + 1)) : 1);
    let delta = 0, dDenom = 0;
    const gs = slots.map((p, k) => {
      const x = p.data, st = this.param(p.name, x, sliceP, b1);
      let g = grads[k];
      if (wd !== 0 && !decouple) g = g.map((gi, i) => gi + wd * x[i]);
      if ((lrs.get(p.group) ?? 0) > 0) {
        let dot = 0;
        for (let j = 0; j < st.s.length; j++) {
          const i = j * sliceP;
          dot += g[i] * (st.p0[j] - x[i]);
          st.s[j] = b3 * st.s[j] + (d / d0) * (safeguard ? d : dlr) * g[i];
          dDenom += Math.abs(st.s[j]);
        }
        delta += (d / d0) * dlr * dot;
        for (let i = 0; i < x.length; i++) {
          if (st.m) st.m[i] = b1 * st.m[i] + d * (1 - b1) * g[i];
          st.v[i] = b2 * st.v[i] + d * d * (1 - b2) * g[i] * g[i];
        }
      }
      return g;
    });
    // prodigyopt returns before touching d or the weights when every s is zero.
    if (dDenom === 0) return;
    this.dNumerator = this.dNumerator * b3 + delta;
    if (lr > 0) {
      const dHat = (dCoef * this.dNumerator) / dDenom;
      let nd = d === d0 ? Math.max(d, dHat) : d;
      this.dMax = Math.max(this.dMax, dHat);
      nd = Math.min(this.dMax, nd * growth);
      this.d = nd;
    }
    slots.forEach((p, k) => {
      const x = p.data, st = this.s.get(p.name)!, g = gs[k];
      for (let i = 0; i < x.length; i++) {
        const denom = Math.sqrt(st.v[i]) + this.d * eps;
        if (wd !== 0 && decouple) x[i] -= wd * dlr * x[i];
        x[i] -= st.m ? (dlr * st.m[i]) / denom : (dlr * this.d * g[i]) / denom;
      }
    });
    this.step++;
  }
  get dValue(): number { return this.d; }
  stateDict(): OptimizerState {
    const tensors: Record<string, Float32Array> = {};
    for (const [k, st] of this.s) {
      if (st.m) tensors[`${k}::exp_avg`] = st.m;
      Object.assign(tensors, { [`${k}::exp_avg_sq`]: st.v, [`${k}::s`]: st.s, [`${k}::p0`]: st.p0 });
    }
    return { step: this.step, scalars: { d: this.d, d_max: this.dMax, d_numerator: this.dNumerator }, tensors };
  }
  loadState(st: OptimizerState): void {
    this.step = st.step; this.d = st.scalars.d; this.dMax = st.scalars.d_max; this.dNumerator = st.scalars.d_numerator;
    this.s.clear();
    for (const key of Object.keys(st.tensors)) {
      if (!key.endsWith('::exp_avg_sq')) continue;
      const k = key.slice(0, -'::exp_avg_sq'.length), t = (l: string) => st.tensors[`${k}::${l}`];
      this.s.set(k, { m: t('exp_avg') ? Float32Array.from(t('exp_avg')) : null, v: Float32Array.from(t('exp_avg_sq')), s: Float32Array.from(t('s')), p0: Float32Array.from(t('p0')) });
    }
  }
}

export function createOptimizer(type: string, groups: Map<string, ParamGroup>, args: Record<string, string>): Optimizer {
  const o = ((): Optimizer => {
    switch (type.toLowerCase()) {
      case 'adamw': return new AdamW(groups, args);
      case 'adamw8bit': return new AdamW8bit(groups, args);
      case 'lion': return new Lion(groups, args);
      case 'prodigy': return new Prodigy(groups, args);
      case 'sgdnesterov': return new SGDNesterov(groups, args);
      default: throw new Error(`optimizer_type "${type}" is not supported (AdamW, AdamW8bit, Lion, Prodigy, SGDNesterov)`);
    }
  })();
  o.checkArgs();
  return o;
}
