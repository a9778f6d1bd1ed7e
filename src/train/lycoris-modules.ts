// Trainable LyCORIS modules (KohakuBlueleaf/LyCORIS lycoris/modules/locon.py, loha.py, lokr.py) in
// LyCORIS' default "rebuild" forward: the module's weight delta is built from its factors on every
// call (scale alpha/rank once), its output rows are masked by rank_dropout, DoRA (dora_wd)
// renormalises W + delta with the trainable `dora_scale`, and the layer's op runs once more with
// the delta as its weight. The delta formulas are the use path's (src/lora/formats/delta.ts), so a
// saved file applies exactly as it trained. Initialisation follows LyCORIS, so step 0 is a no-op:
//   LoCon: lora_down (and Tucker lora_mid) kaiming-uniform(a=sqrt 5), lora_up 0.
//   LoHa:  hada_w1_b, hada_w2_b ~ N(0, 1), hada_w1_a ~ N(0, 0.1), hada_w2_a = 0, Tucker t1/t2 ~ N(0, 0.1).
//   LoKr:  lokr_w1 (or w1_a, w1_b) and lokr_w2_a (and t2) kaiming-uniform, lokr_w2 or lokr_w2_b = 0.
//   DoRA:  dora_scale = ||W|| per output row ([out, 1(, 1, 1)]), or per input column with wd_on_output=False.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { LayerAdapter } from '../lora/adapter.js';
import type { LoRAComponent } from '../lora/components.js';
import { doraDelta, moduleDelta } from '../lora/formats/delta.js';
import type { AdapterModule } from '../lora/formats/kinds.js';

export type LycorisAlgo = 'locon' | 'loha' | 'lokr';

/** What LyCORIS' kohya create_network passes to every module (network_args, parsed). */
export interface LycorisModuleOptions {
  algo: LycorisAlgo;
  /** Tucker decomposition of kxk convs (use_tucker / use_cp / use_conv_cp). */
  useTucker: boolean;
  /** LoKr: the Kronecker factor size (-1: as balanced as possible). */
  factor: number;
  /** LoKr: w1 as w1_a @ w1_b too (when the rank is below half of w1's larger side). */
  decomposeBoth: boolean;
  /** LoKr: never decompose w2. */
  fullMatrix: boolean;
  /** LoKr: the larger factor of the output dimension goes to w1. */
  unbalancedFactorization: boolean;
  /** DoRA weight decomposition; normalised over the output axis unless wdOnOutput is false. */
  doraWd: boolean;
  wdOnOutput: boolean;
  /** scale = alpha / sqrt(rank) (stored alpha = alpha * sqrt(rank), so loaders get the same scale). */
  rsLora: boolean;
  rankDropout: number;
  moduleDropout: number;
}

/**
 * LyCORIS' factorization(): dimension = m * n with m <= n, m the divisor closest to `factor` (or
 * to sqrt(dimension) when factor < 0) without m + n growing or m passing factor.
 */
export function factorization(dimension: number, factor = -1): [number, number] {
  if (factor > 0 && dimension % factor === 0) {
    const m = factor, n = dimension / factor;
    return m > n ? [n, m] : [m, n];
  }
  const limit = factor < 0 ? dimension : factor;
  let m = 1, n = dimension;
  while (m < n) {
    let next = m + 1;
    while (dimension % next !== 0) next++;
    const nextN = dimension / next;
    if (next + nextN > m + n || next > limit) break;
    m = next; n = nextN;
  }
  return m > n ? [n, m] : [m, n];
}

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** torch.nn.init.kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = shape[1] * kernel. */
function kaiming(shape: number[], rng: E.Rng): Tensor {
  const bound = 1 / Math.sqrt(count(shape.slice(1)));
  return E.tensor(Float32Array.from({ length: count(shape) }, () => (rng.uniform() * 2 - 1) * bound), shape);
}

function normal(shape: number[], std: number, rng: E.Rng): Tensor {
  return E.tensor(Float32Array.from({ length: count(shape) }, () => rng.normal() * std), shape);
}

/** One LyCORIS module on one layer. `params` holds the trainable tensors by their file key suffix. */
export class LycorisModule implements LayerAdapter {
  training = false;
  multiplier = 1;

  constructor(
    readonly name: string, readonly path: string, readonly component: LoRAComponent,
    readonly algo: LycorisAlgo,
    /** Trainable tensors by key suffix (`hada_w1_a`, `lokr_w2_b`, `lora_down.weight`, `dora_scale`, ...). */
    readonly params: Map<string, Tensor>,
    /** The `alpha` LyCORIS stores (alpha * rank / r_factor; LoKr with two full factors: its rank). */
    readonly alpha: number,
    /** The layer's weight shape [out, in(, kh, kw)]. */
    readonly shape: readonly number[],
    private readonly opts: Pick<LycorisModuleOptions, 'rankDropout' | 'moduleDropout'>,
    private readonly rng: E.Rng,
  ) {}

  /** In a text encoder (the 'te' learning-rate group). */
  get te(): boolean { return this.component.lrGroup === 'te'; }

  private p(k: string): Tensor | undefined { return this.params.get(k); }

  /** The module as the use path reads it from a file (formats/kinds.ts), on the live tensors. */
  adapterModule(): AdapterModule {
    const dora = { doraScale: this.p('dora_scale') };
    switch (this.algo) {
      case 'locon':
        return { kind: 'lora', name: this.name, weights: { name: this.name, down: this.p('lora_down.weight')!, up: this.p('lora_up.weight')!, alpha: this.alpha }, mid: this.p('lora_mid.weight'), ...dora };
      case 'loha':
        return { kind: 'loha', name: this.name, w1a: this.p('hada_w1_a')!, w1b: this.p('hada_w1_b')!, w2a: this.p('hada_w2_a')!, w2b: this.p('hada_w2_b')!, t1: this.p('hada_t1'), t2: this.p('hada_t2'), alpha: this.alpha, ...dora };
      case 'lokr':
        return { kind: 'lokr', name: this.name, w1: this.p('lokr_w1'), w1a: this.p('lokr_w1_a'), w1b: this.p('lokr_w1_b'), w2: this.p('lokr_w2'), w2a: this.p('lokr_w2_a'), w2b: this.p('lokr_w2_b'), t2: this.p('lokr_t2'), alpha: this.alpha, ...dora };
    }
  }

  /**
   * The weight change for a base weight (its layer's shape): multiplier * scale * product, rows
   * dropped by rank_dropout while training; with DoRA, (W + delta) renormalised minus W.
   */
  delta(base: Tensor): Tensor {
    const { doraScale, ...plain } = this.adapterModule();
    let d = moduleDelta(plain as AdapterModule, base);
    const p = this.opts.rankDropout;
    if (this.training && p) {
      // LyCORIS: one keep/drop draw per output row of the delta (torch.rand(out) > p), no rescale.
      const keep = Float32Array.from({ length: this.shape[0] }, () => (this.rng.uniform() > p ? 1 : 0));
      d = E.mul(d, E.tensor(keep, [this.shape[0], ...this.shape.slice(1).map(() => 1)], 'f32', d.backend));
    }
    if (doraScale) return E.mulScalar(doraDelta(base, d, doraScale), this.multiplier);
    return this.multiplier === 1 ? d : E.mulScalar(d, this.multiplier);
  }

  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor | null {
    if (this.training && this.opts.moduleDropout && this.rng.uniform() < this.opts.moduleDropout) return null;
    const w = this.component.weights;
    // DoRA needs the base values; the other kinds only its shape.
    const base = this.p('dora_scale') ? w.get(`${this.path}.weight`) : w.raw(`${this.path}.weight`);
    const d = this.delta(base);
    return d.rank === 4 ? E.conv2d(x, d, null, convOpts) : E.linear(x, d);
  }

  /** The module's file entries: `<name>.alpha` and every parameter under its LyCORIS key. */
  tensors(): [string, Tensor][] {
    return [[`${this.name}.alpha`, E.tensor([this.alpha], [], 'f32', E.cpuBackend)], ...[...this.params].map(([k, t]): [string, Tensor] => [`${this.name}.${k}`, t.detach()])];
  }

  /**
   * LyCORIS apply_max_norm (scale_weight_norms): when ||scale * product|| exceeds maxNorm, scale the
   * factors so that it is maxNorm (LoCon: lora_up; LoHa: hada_w1_a; LoKr: each factor by its root).
   * Works on host copies (`host`); the caller writes them back. Returns whether it scaled.
   */
  async applyMaxNorm(maxNorm: number, host: (t: Tensor) => Promise<Float32Array>): Promise<boolean> {
    const hostParams = new Map<string, Tensor>();
    for (const [k, t] of this.params) if (k !== 'dora_scale') hostParams.set(k, E.tensor(await host(t), [...t.shape], 'f32', E.cpuBackend));
    const onHost = new LycorisModule(this.name, this.path, this.component, this.algo, hostParams, this.alpha, this.shape, this.opts, this.rng);
    const norm0 = E.noGrad(() => {
      const d = moduleDelta(onHost.adapterModule(), E.zeros([...this.shape], 'f32', E.cpuBackend)).dataSync();
      let sq = 0;
      for (const v of d) sq += v * v;
      return Math.sqrt(sq);
    });
    const norm = Math.max(norm0, maxNorm / 2), ratio = Math.min(norm, maxNorm) / norm;
    if (ratio === 1) return false;
    let scaled: string[];
    if (this.algo === 'locon') scaled = ['lora_up.weight'];
    else if (this.algo === 'loha') scaled = ['hada_w1_a'];
    else scaled = ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'].filter((k) => this.params.has(k));
    const r = ratio ** (1 / scaled.length);
    for (const k of scaled) { const a = await host(this.params.get(k)!); for (let i = 0; i < a.length; i++) a[i] *= r; }
    return true;
  }
}

/**
 * A new module of `algo` on a layer with weight `base`, initialised as LyCORIS does. `dim`/`alpha`
 * are the ones LyCORIS picks for the layer (network_dim/alpha, conv_dim/conv_alpha for kxk convs).
 */
export function createLycorisModule(
  name: string, path: string, component: LoRAComponent, base: Tensor, dim: number, alphaIn: number,
  o: LycorisModuleOptions, rng: E.Rng,
): LycorisModule {
  const shape = base.shape;
  const [out, inp, ...kernel] = shape;
  const kk = count(kernel);
  const conv = kernel.length > 0;
  const tucker = o.useTucker && conv && kernel.some((k) => k !== 1);
  const params = new Map<string, Tensor>();
  let fullKron = false;
  if (o.algo === 'locon') {
    if (tucker) {
      params.set('lora_down.weight', kaiming([dim, inp, 1, 1], rng));
      params.set('lora_mid.weight', kaiming([dim, dim, ...kernel], rng));
    } else {
      params.set('lora_down.weight', kaiming([dim, inp, ...kernel], rng));
    }
    params.set('lora_up.weight', E.zeros(conv ? [out, dim, 1, 1] : [out, dim]));
  } else if (o.algo === 'loha') {
    if (tucker) {
      params.set('hada_t1', normal([dim, dim, ...kernel], 0.1, rng));
      params.set('hada_w1_a', normal([dim, out], 0.1, rng));
      params.set('hada_w1_b', normal([dim, inp], 1, rng));
      params.set('hada_t2', normal([dim, dim, ...kernel], 0.1, rng));
      params.set('hada_w2_a', E.zeros([dim, out]));
      params.set('hada_w2_b', normal([dim, inp], 1, rng));
    } else {
      params.set('hada_w1_a', normal([out, dim], 0.1, rng));
      params.set('hada_w1_b', normal([dim, inp * kk], 1, rng));
      params.set('hada_w2_a', E.zeros([out, dim]));
      params.set('hada_w2_b', normal([dim, inp * kk], 1, rng));
    }
  } else {
    const [inM, inN] = factorization(inp, o.factor);
    let [outL, outK] = factorization(out, o.factor);
    if (o.unbalancedFactorization) [outL, outK] = [outK, outL];
    // w1 [outL, inM] (the small factor), w2 [outK, inN(, kernel)] (the large one).
    const w1Split = o.decomposeBoth && dim < Math.max(outL, inM) / 2 && !o.fullMatrix;
    const w2Full = o.fullMatrix || dim >= Math.max(outK, inN) / 2;
    if (w1Split) {
      params.set('lokr_w1_a', kaiming([outL, dim], rng));
      params.set('lokr_w1_b', kaiming([dim, inM], rng));
    } else {
      params.set('lokr_w1', kaiming([outL, inM], rng));
    }
    if (w2Full) {
      params.set('lokr_w2', E.zeros([outK, inN, ...kernel]));
    } else if (tucker) {
      params.set('lokr_t2', kaiming([dim, dim, ...kernel], rng));
      params.set('lokr_w2_a', kaiming([dim, outK], rng));
      params.set('lokr_w2_b', E.zeros([dim, inN]));
    } else {
      params.set('lokr_w2_a', kaiming([outK, dim], rng));
      params.set('lokr_w2_b', E.zeros([dim, inN * kk]));
    }
    fullKron = !w1Split && w2Full;
  }
  // alpha 0 (or none) means alpha = rank; LoKr with two full factors uses scale 1 (alpha = rank).
  let alpha = !alphaIn || fullKron ? dim : alphaIn;
  if (o.rsLora) alpha *= dim / Math.sqrt(dim);
  if (o.doraWd) {
    const w = base.dtype === 'f32' ? base : base.to('f32');
    const axes = shape.map((_, i) => i).filter((a) => a !== (o.wdOnOutput ? 0 : 1));
    // [out, 1(, 1, 1)] (or [1, in(, 1, 1)]), computed where the weight lives (no host read on a GPU).
    params.set('dora_scale', E.noGrad(() => E.sqrt(E.sum(E.square(w), axes, true))));
  }
  for (const t of params.values()) t.requireGrad();
  return new LycorisModule(name, path, component, o.algo, params, alpha, shape, o, rng);
}
