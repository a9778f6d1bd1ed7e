// The weight delta of one module at multiplier 1, in the base weight's shape: what A1111's
// network_*.py calc_updown and ComfyUI's weight_adapter calculate_weight add to a layer (the same
// formulas as lycoris/functional: loha make_weight(_tucker), lokr make_kron, locon + lora_mid),
// and DoRA's re-normalisation along LyCORIS' axis. Runs on the backend of the base weight.
import * as E from '../../engine/index.js';
import type { Tensor } from '../../engine/index.js';
import { type AdapterModule, type LoHaKind, type LoKrKind, scaleOfModule } from './kinds.js';

/** torch.finfo(float32).eps, which LyCORIS adds to the DoRA norm. */
const F32_EPS = 1.1920928955078125e-7;

/** [d0, ...] -> [d0, prod(rest)] */
const mat = (t: Tensor): Tensor => E.reshape(t, [t.shape[0], -1]);

/** einsum("i j k l, i p, j r -> p r k l", core, a, b): a Tucker core [R1, R2, kh, kw] between factors a [R1, P] and b [R2, Q]. */
export function rebuildTucker(core: Tensor, a: Tensor, b: Tensor): Tensor {
  const [r1, r2, ...kernel] = core.shape;
  const k = kernel.reduce((x, y) => x * y, 1);
  const p = a.shape[1], q = b.shape[1];
  // sum over j: [i, k, j] @ [j, r] -> [i, k * r]
  const u = E.reshape(E.matmul(E.reshape(E.permute(E.reshape(core, [r1, r2, k]), [0, 2, 1]), [r1 * k, r2]), b), [r1, k * q]);
  // sum over i: [p, i] @ [i, k * r] -> [p, k, r] -> [p, r, k]
  const v = E.reshape(E.matmul(E.transpose(a), u), [p, k, q]);
  return E.reshape(E.permute(v, [0, 2, 1]), [p, q, ...kernel]);
}

/** torch.kron(w1, w2) with w1 [a, b] unsqueezed to w2's rank: [a*c, b*d, ...kernel]. */
export function kron(w1: Tensor, w2: Tensor): Tensor {
  const [a, b] = w1.shape, [c, d, ...kernel] = w2.shape;
  const ones = kernel.map(() => 1);
  const prod = E.mul(E.reshape(w1, [a, 1, b, 1, ...ones]), E.reshape(w2, [1, c, 1, d, ...kernel]));
  return E.reshape(prod, [a * c, b * d, ...kernel]);
}

function lohaProduct(m: LoHaKind): Tensor {
  if (m.t1 && m.t2) return E.mul(rebuildTucker(m.t1, m.w1a, m.w1b), rebuildTucker(m.t2, m.w2a, m.w2b));
  return E.mul(E.matmul(mat(m.w1a), mat(m.w1b)), E.matmul(mat(m.w2a), mat(m.w2b)));
}

function lokrProduct(m: LoKrKind, base: readonly number[]): Tensor {
  const w1 = m.w1 ? mat(m.w1) : E.matmul(mat(m.w1a!), mat(m.w1b!));
  // w2's own shape: the base shape divided by w1's, with the base kernel.
  const w2Shape = [base[0] / w1.shape[0], base[1] / w1.shape[1], ...base.slice(2)];
  if (!w2Shape.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`lokr_w1 [${w1.shape}] does not divide the layer shape [${base}]`);
  let w2: Tensor;
  if (m.w2) w2 = m.w2;
  else if (m.t2) w2 = rebuildTucker(m.t2, m.w2a!, m.w2b!);
  else w2 = E.matmul(mat(m.w2a!), mat(m.w2b!));
  if (w2.size !== w2Shape.reduce((x, y) => x * y, 1)) throw new Error(`lokr_w2 (${w2.size} values) does not fit [${w2Shape}] (layer [${base}] / lokr_w1 [${w1.shape}])`);
  return kron(w1, E.reshape(w2, w2Shape));
}

/** The unscaled product of a module's factors (any shape with the layer's element count). */
function product(m: AdapterModule, base: readonly number[]): Tensor {
  switch (m.kind) {
    case 'lora': {
      const { up, down } = m.weights;
      if (m.mid) return rebuildTucker(m.mid, E.transpose(mat(up)), mat(down));
      return E.matmul(mat(up), mat(down));
    }
    case 'loha': return lohaProduct(m);
    case 'lokr': return lokrProduct(m, base);
    case 'full': return m.diff;
  }
}

/** Moves every tensor of a module to a backend (the model's), keeping the LoRA weights object when nothing moves. */
function onBackend(m: AdapterModule, be: E.Backend): AdapterModule {
  const mv = (t?: Tensor) => (t && t.backend !== be ? t.toBackend(be) : t);
  const o = Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v && typeof v === 'object' && 'shape' in v ? mv(v as Tensor) : v]));
  if (m.kind === 'lora') o.weights = { ...m.weights, down: mv(m.weights.down)!, up: mv(m.weights.up)! };
  return o as unknown as AdapterModule;
}

/**
 * DoRA (LyCORIS apply_weight_decompose): W' = (W + delta) * dora_scale / ||W + delta||, the norm
 * over every axis but the output one when dora_scale is [out, 1...], but the input one when it is
 * [1, in, 1...]. Returns W' - W.
 */
export function doraDelta(base: Tensor, delta: Tensor, doraScale: Tensor): Tensor {
  const w1 = E.add(base, delta);
  const [out, inp] = base.shape;
  const axes = base.shape.map((_, i) => i);
  let keep: number;
  if (doraScale.size === out && doraScale.shape[0] === out) keep = 0;
  else if (doraScale.size === inp && doraScale.rank >= 2 && doraScale.shape[1] === inp) keep = 1;
  else throw new Error(`dora_scale [${doraScale.shape}] is neither [${out}, 1...] (output axis) nor [1, ${inp}, 1...] (input axis) of the layer [${base.shape}]`);
  const norm = E.addScalar(E.sqrt(E.sum(E.square(w1), axes.filter((a) => a !== keep), true)), F32_EPS);
  const s = E.reshape(doraScale, norm.shape);
  return E.sub(E.mul(w1, E.div(s, norm)), base);
}

/** The module's weight delta at multiplier 1 for a base weight (f32, its layer's shape). */
export function moduleDelta(mod: AdapterModule, base: Tensor): Tensor {
  const m = onBackend(mod, base.backend);
  const p = product(m, base.shape);
  if (p.size !== base.size) throw new Error(`its weights give ${p.size} values [${p.shape}], the layer has [${base.shape}]`);
  const delta = E.mulScalar(E.reshape(p, base.shape), scaleOfModule(m));
  return m.doraScale ? doraDelta(base, delta, m.doraScale) : delta;
}

/** The bias delta of a full-diff module (null for every other kind). */
export function moduleBiasDelta(mod: AdapterModule): Tensor | null {
  return mod.kind === 'full' && mod.diffB ? mod.diffB : null;
}
