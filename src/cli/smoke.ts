// `sdlora smoke`: a tiny conv + attention block forward and backward on the cpu backend, with a
// finite-difference check of one gradient, to show the engine works on this machine.
import * as E from '../engine/index.js';

export async function smoke(): Promise<void> {
  const t0 = performance.now();
  await E.initCpuBackend();
  const rng = new E.Rng(0);
  const x = E.randn([2, 8, 16, 16], rng);
  const w = E.mulScalar(E.randn([8, 8, 3, 3], rng), 0.1).detach().requireGrad();
  const wq = E.mulScalar(E.randn([8, 8], rng), 0.3).detach().requireGrad();
  const lossOf = (convW: E.Tensor) => {
    const h = E.silu(E.groupNorm(E.conv2d(x, convW, null, { padding: 1 }), 4, null, null));
    const seq = E.transpose(E.reshape(h, [2, 8, 256]));
    const q = E.linear(seq, wq);
    return E.mean(E.square(E.attention(q, q, seq)));
  };
  const loss = lossOf(w);
  loss.backward();
  const g = w.grad!.dataSync()[5];
  const eps = 1e-2;
  const bump = (d: number) => {
    const a = Float32Array.from(w.dataSync());
    a[5] += d;
    return E.noGrad(() => lossOf(E.tensor(a, w.shape)).item());
  };
  const fd = (bump(eps) - bump(-eps)) / (2 * eps);
  console.log(`loss ${loss.item().toFixed(6)}`);
  console.log(`d loss / d w[5]: autograd ${g.toExponential(4)}, finite difference ${fd.toExponential(4)}`);
  console.log(`done in ${(performance.now() - t0).toFixed(0)} ms`);
  if (Math.abs(g - fd) > 1e-2 * Math.abs(fd) + 1e-5) throw new Error('smoke: gradient mismatch');
}
