// The trainer's loss options, checked inside real training steps on the tiny model: each
// micro-batch's latents, noise, timesteps and prediction are traced, and the test recomputes in
// float64, from sd-scripts' published formulas (spec §3.4-3.6, §4.8) and the golden scheduler's
// alphas_cumprod, what the noise, the noisy latents and the weighted loss must be. Also gradient
// accumulation (k micro-batches = one batch of k times the size) and scale_weight_norms.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { type MicroBatchTrace, train } from '../../src/train/trainer.js';
import { goldenCase } from '../helpers/golden.js';
import { TINY_LORA, trainFixture } from '../helpers/train-setup.js';

let runs = 0;
const fx = trainFixture('sdlora-loss-', {
  dataset: { name: 'star', repeats: 2, count: 2, size: 32, shapes: ['star'], seed: 3 },
  defaults: () => ({ ...TINY_LORA, max_train_steps: 1, seed: 5, output_dir: path.join(tmp, `run${runs++}`) }),
});
const { tmp, cfg } = fx;
const sameDir = path.join(tmp, 'same');
let acp: Float64Array;
const quiet = () => {};

/** One training step; the traces of its micro-batches. */
async function traced(v: Record<string, unknown>): Promise<MicroBatchTrace[]> {
  const out: MicroBatchTrace[] = [];
  await train(cfg(v), { log: quiet, onMicroBatch: (m) => out.push(m) });
  assert.ok(out.length > 0);
  return out;
}

const close = (a: number, b: number, rel: number, what: string) => assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-12), `${what}: ${a} vs ${b}`);

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface LossOpts { loss_type?: string; huber_schedule?: string; huber_c?: number; huber_scale?: number; v_parameterization?: boolean; min_snr_gamma?: number; debiased_estimation_loss?: boolean; scale_v_pred_loss_like_noise_pred?: boolean }

/** sd-scripts' loss of one micro-batch (train_network.py, spec §3.1 steps 6-7, §3.4, §3.5), in float64. */
function referenceLoss(m: MicroBatchTrace, o: LossOpts): number {
  const [B] = m.shape, per = m.latents.length / B;
  const c0 = o.huber_c ?? 0.1, scale = o.huber_scale ?? 1, type = o.loss_type ?? 'l2';
  let total = 0;
  for (let b = 0; b < B; b++) {
    const t = m.timesteps[b], a = acp[t];
    const c = o.huber_schedule === 'constant' ? c0 * scale
      : o.huber_schedule === 'exponential' ? Math.exp((-(-Math.log(c0) / 1000)) * t) * scale
      : (1 - c0) / (1 + Math.sqrt((1 - a) / a)) ** 2 + c0;
    let sum = 0;
    for (let j = b * per; j < (b + 1) * per; j++) {
      const target = o.v_parameterization ? Math.sqrt(a) * m.noise[j] - Math.sqrt(1 - a) * m.latents[j] : m.noise[j];
      const d = m.pred[j] - target;
      sum += type === 'l2' ? d * d : type === 'l1' ? Math.abs(d) : type === 'huber' ? 2 * c * (Math.sqrt(d * d + c * c) - c) : 2 * (Math.sqrt(d * d + c * c) - c);
    }
    let w = 1;
    const snr = a / (1 - a), s1000 = Math.min(snr, 1000);
    if (o.min_snr_gamma) w *= Math.min(snr, o.min_snr_gamma) / (o.v_parameterization ? snr + 1 : snr);
    if (o.scale_v_pred_loss_like_noise_pred) w *= s1000 / (s1000 + 1);
    if (o.debiased_estimation_loss) w *= o.v_parameterization ? 1 / (s1000 + 1) : 1 / Math.sqrt(s1000);
    total += (sum / per) * w;
  }
  return total / B;
}

/** The noisy latents are DDPM's q(x_t | x_0) with the traced noise. */
function assertNoisy(m: MicroBatchTrace): void {
  const per = m.latents.length / m.shape[0];
  const want = m.latents.map((x, j) => { const a = acp[m.timesteps[Math.floor(j / per)]]; return Math.sqrt(a) * x + Math.sqrt(1 - a) * m.noise[j]; });
  assert.ok(maxErr(m.noisy, want) < 1e-5, `noisy latents ${maxErr(m.noisy, want)}`);
}

/** PyTorch's bilinear resize (align_corners=False) of one [h, w] plane to [H, W], in float64. */
function upsample(src: ArrayLike<number>, h: number, w: number, H: number, W: number): Float64Array {
  const out = new Float64Array(H * W);
  const coord = (o: number, n: number, N: number) => { const x = Math.max(0, ((o + 0.5) * n) / N - 0.5); const i0 = Math.min(n - 1, Math.floor(x)); return [i0, Math.min(n - 1, i0 + 1), x - i0] as const; };
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const [y0, y1, fy] = coord(y, h, H), [x0, x1, fx] = coord(x, w, W);
    out[y * W + x] = (1 - fy) * ((1 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1]) + fy * ((1 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1]);
  }
  return out;
}

/**
 * sd-scripts' noise (custom_train_functions.apply_noise_offset, pyramid_noise_like): offset
 * o·randn(B, C, 1, 1) first, then for i < N: r ~ U(2, 4), add upsample(randn at (h/r^i, w/r^i))·d^i,
 * stop once a side is 1, divide by the (unbiased) std. The draws replay sdlora's RNG from the traced state.
 */
function referenceNoise(m: MicroBatchTrace, offset: number, iterations: number, discount: number): Float64Array {
  const [B, C, h, w] = m.shape;
  const rng = new E.Rng(0);
  rng.setState(m.noiseRngState);
  const n = Float64Array.from(m.baseNoise);
  if (offset) for (let p = 0; p < B * C; p++) { const o = offset * rng.normal(); for (let j = 0; j < h * w; j++) n[p * h * w + j] += o; }
  if (iterations) {
    for (let i = 0; i < iterations; i++) {
      const r = rng.uniform() * 2 + 2;
      const hh = Math.max(1, Math.trunc(h / r ** i)), ww = Math.max(1, Math.trunc(w / r ** i));
      const draw = Float64Array.from({ length: B * C * hh * ww }, () => rng.normal());
      for (let p = 0; p < B * C; p++) {
        const up = upsample(draw.subarray(p * hh * ww, (p + 1) * hh * ww), hh, ww, h, w);
        for (let j = 0; j < h * w; j++) n[p * h * w + j] += up[j] * discount ** i;
      }
      if (hh === 1 || ww === 1) break;
    }
    const mean = n.reduce((a, v) => a + v, 0) / n.length;
    const std = Math.sqrt(n.reduce((a, v) => a + (v - mean) ** 2, 0) / (n.length - 1));
    for (let j = 0; j < n.length; j++) n[j] /= std;
  }
  return n;
}

describe('training loss options (traced inside the trainer)', () => {
  before(async () => {
    await fx.setup();
    writeShapeDataset(sameDir, { name: 'one', repeats: 3, count: 1, size: 32, shapes: ['circle'], seed: 4 });
    acp = Float64Array.from((await loadSafetensors(path.join(goldenCase('schedulers'), 'io.safetensors'))).tensors.alphas_cumprod.dataSync());
  });

  it('l2 on epsilon: the target is the noise that made the noisy latents', async () => {
    for (const m of await traced({})) {
      assertNoisy(m);
      assert.deepEqual([...m.noise], [...m.baseNoise], 'no noise option: plain N(0, 1) noise');
      close(m.loss, referenceLoss(m, {}), 1e-5, 'l2 loss');
    }
  });

  it('v-prediction: target sqrt(acp)·noise - sqrt(1-acp)·x0', async () => {
    for (const m of await traced({ v_parameterization: true })) {
      close(m.loss, referenceLoss(m, { v_parameterization: true }), 1e-5, 'v loss');
      assert.ok(Math.abs(m.loss - referenceLoss(m, {})) > 1e-3 * m.loss, 'differs from the epsilon loss');
    }
  });

  it('l1, huber and smooth_l1 with each huber_schedule (constant, exponential, snr) and huber_c / huber_scale', async () => {
    for (const m of await traced({ loss_type: 'l1' })) close(m.loss, referenceLoss(m, { loss_type: 'l1' }), 1e-5, 'l1');
    for (const loss_type of ['huber', 'smooth_l1']) {
      for (const huber_schedule of ['constant', 'exponential', 'snr']) {
        const o = { loss_type, huber_schedule, huber_c: 0.3, huber_scale: 1.7 };
        for (const m of await traced(o)) {
          const want = referenceLoss(m, o);
          close(m.loss, want, 1e-5, `${loss_type}/${huber_schedule}`);
          // The schedule matters for this batch: another c would give another loss.
          for (const other of ['constant', 'exponential', 'snr'].filter((s) => s !== huber_schedule)) {
            assert.ok(Math.abs(referenceLoss(m, { ...o, huber_schedule: other }) - want) > 1e-4 * want, `${loss_type}: ${huber_schedule} vs ${other} distinguishable`);
          }
        }
      }
    }
  });

  it('min-SNR-gamma, debiased estimation and v-pred scaling weight the per-sample loss', async () => {
    for (const o of [
      { min_snr_gamma: 5 }, { min_snr_gamma: 2, v_parameterization: true }, { debiased_estimation_loss: true },
      { debiased_estimation_loss: true, v_parameterization: true }, { min_snr_gamma: 5, debiased_estimation_loss: true },
      { v_parameterization: true, scale_v_pred_loss_like_noise_pred: true, min_snr_gamma: 5 },
    ] as LossOpts[]) {
      // Timesteps below 100 have SNR > 9, so every weight here differs from 1.
      for (const m of await traced({ ...o, max_timestep: 100 })) {
        close(m.loss, referenceLoss(m, o), 1e-5, JSON.stringify(o));
        const plain = referenceLoss(m, { v_parameterization: o.v_parameterization });
        assert.ok(Math.abs(m.loss - plain) > 1e-3 * plain, `${JSON.stringify(o)} changes the loss of this batch`);
      }
    }
  });

  it('noise_offset, multires noise and both (offset first) follow sd-scripts', async () => {
    for (const [v, off, it_, disc] of [
      [{ noise_offset: 0.3 }, 0.3, 0, 0],
      [{ multires_noise_iterations: 6, multires_noise_discount: 0.3 }, 0, 6, 0.3],
      [{ noise_offset: 0.1, multires_noise_iterations: 3, multires_noise_discount: 0.5 }, 0.1, 3, 0.5],
    ] as [Record<string, unknown>, number, number, number][]) {
      for (const m of await traced(v)) {
        const want = referenceNoise(m, off, it_, disc);
        assert.ok(maxErr(m.noise, want) < 1e-5, `${JSON.stringify(v)}: noise off by ${maxErr(m.noise, want)}`);
        assert.ok(maxErr(m.noise, m.baseNoise) > 0.05, 'the option changed the noise');
        assertNoisy(m);
        close(m.loss, referenceLoss(m, {}), 1e-5, 'loss against the option noise');
      }
    }
  });

  it('k micro-batches give the LoRA of one batch of k times the size (to 1e-5)', async () => {
    // One image repeated 3 times, latents cached: the two runs see the same samples and draws.
    // SGD moves the weights by a fixed multiple of the gradient, so the LoRAs compare gradients.
    const base = { train_data_dir: sameDir, cache_latents: true, optimizer_type: 'SGDNesterov', learning_rate: 10, max_grad_norm: 0 };
    const one = await train(cfg({ ...base, train_batch_size: 3 }), { log: quiet });
    const acc = await train(cfg({ ...base, train_batch_size: 1, gradient_accumulation_steps: 3 }), { log: quiet });
    const unacc = await train(cfg({ ...base, train_batch_size: 1, max_train_steps: 1 }), { log: quiet });
    assert.equal(one.steps, 1);
    assert.equal(acc.steps, 1);
    const a = (await loadSafetensors(one.finalPath!)).tensors, b = (await loadSafetensors(acc.finalPath!)).tensors, u = (await loadSafetensors(unacc.finalPath!)).tensors;
    let worst = 0, scale = 0, diffSingle = 0;
    for (const k of Object.keys(a).filter((k) => k.endsWith('lora_up.weight'))) {
      worst = Math.max(worst, maxErr(a[k].dataSync(), b[k].dataSync()));
      scale = Math.max(scale, ...[...a[k].dataSync()].map(Math.abs));
      diffSingle = Math.max(diffSingle, maxErr(a[k].dataSync(), u[k].dataSync()));
    }
    assert.ok(scale > 0, 'the step moved lora_up');
    assert.ok(worst <= 1e-5 * scale, `accumulated vs one batch: ${worst} (update scale ${scale})`);
    assert.ok(diffSingle > 1e-2 * scale, 'a single micro-batch step differs (the comparison can fail)');
  });

  it('scale_weight_norms rescales each module whose scale·up@down norm is over the limit by sqrt(ratio)', async () => {
    const base = { learning_rate: 0.05, network_args: ['conv_dim=4', 'conv_alpha=1'], max_grad_norm: 0 };
    const free = await loadLoRA((await train(cfg(base), { log: quiet })).finalPath!);
    const norm = (up: E.Tensor, down: E.Tensor, alpha: number) => {
      const r = down.shape[0], U = up.dataSync(), D = down.dataSync(), out = up.shape[0], rest = D.length / r;
      let sq = 0;
      for (let o = 0; o < out; o++) for (let i = 0; i < rest; i++) {
        let v = 0;
        for (let k = 0; k < r; k++) v += U[o * r + k] * D[k * rest + i];
        sq += ((alpha / r) * v) ** 2;
      }
      return Math.sqrt(sq);
    };
    const norms = new Map([...free.modules].map(([k, m]) => [k, norm(m.up, m.down, m.alpha)]));
    const sorted = [...norms.values()].sort((x, y) => x - y);
    const limit = sorted[Math.floor(sorted.length / 2)];
    const capped = await loadLoRA((await train(cfg({ ...base, scale_weight_norms: limit }), { log: quiet })).finalPath!);
    let scaled = 0;
    for (const [k, m] of free.modules) {
      const n = Math.max(norms.get(k)!, limit / 2), f = Math.sqrt(Math.min(n, limit) / n);
      if (f !== 1) scaled++;
      const c = capped.modules.get(k)!;
      for (const [got, t] of [[c.up, m.up], [c.down, m.down]] as const) {
        const want = t.dataSync().map((v) => v * f);
        assert.ok(maxErr(got.dataSync(), want) <= 1e-6 * Math.max(...want.map(Math.abs)), `${k}: scaled by ${f}`);
      }
    }
    assert.ok(scaled > 0 && scaled < norms.size, `some modules scaled (${scaled} of ${norms.size})`);
    assert.ok([...capped.modules.keys()].some((k) => capped.modules.get(k)!.down.shape.length === 4 && capped.modules.get(k)!.down.shape[2] === 3), 'a 3x3 LoCon module is covered');
  });
});
