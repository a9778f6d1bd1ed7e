// Autograd semantics: accumulation, no-grad scopes, detach, checkpointing, dtype rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { Rng, tensor } from '../../src/engine/index.js';
import { maxAbsDiff, randT } from '../helpers/gradcheck.js';

const rng = new Rng(3);

describe('autograd', () => {
  it('accumulates gradients across backward calls and for reused leaves', () => {
    const x = tensor([1, 2, 3], [3], 'f64').requireGrad();
    E.sum(E.mul(x, x)).backward();
    assert.deepEqual([...x.grad!.dataSync()], [2, 4, 6]);
    E.sum(x).backward();
    assert.deepEqual([...x.grad!.dataSync()], [3, 5, 7]);
  });

  it('adds later gradients into a leaf\'s summed .grad in place without touching gradients that shared its storage', () => {
    // a + b hands both leaves the same gradient storage; the first sum makes each a .grad of its
    // own, which later backward calls may then add into (on cpu, in place).
    const a = tensor([1, 2], [2], 'f32').requireGrad(), b = tensor([3, 4], [2], 'f32').requireGrad();
    const w = tensor([1, 10], [2], 'f32');
    const run = () => E.sum(E.mul(E.add(a, b), w)).backward();
    run();
    const first = a.grad!;
    assert.equal(first.storage, b.grad!.storage);
    run();
    const summed = a.grad!;
    assert.notEqual(summed.storage, b.grad!.storage);
    run(); run();
    assert.deepEqual([...a.grad!.dataSync()], [4, 40]);
    assert.deepEqual([...b.grad!.dataSync()], [4, 40]);
    assert.deepEqual([...first.dataSync()], [1, 10]);
    assert.equal(a.grad, summed);
  });

  it('records nothing under noGrad and cuts the graph at detach', () => {
    const x = tensor([1, 2], [2], 'f64').requireGrad();
    const y = E.noGrad(() => E.mul(x, x));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    const z = E.sum(E.mul(x.detach(), x));
    z.backward();
    assert.deepEqual([...x.grad!.dataSync()], [1, 2]);
    assert.throws(() => E.sum(y).backward(), /does not require grad/);
  });

  it('checkpoint gives the same gradients (inputs and inner parameters) as the plain graph', () => {
    const w = randT([4, 4], rng).requireGrad();
    const b = randT([4], rng).requireGrad();
    const block = (h: E.Tensor) => E.silu(E.linear(E.gelu(E.linear(h, w, b)), w));
    const run = (useCkpt: boolean) => {
      w.grad = null; b.grad = null;
      const x = randT([3, 4], new Rng(5)).requireGrad();
      const y = useCkpt ? E.checkpoint(block, x) : block(x);
      E.sum(E.mul(y, y)).backward();
      return [x.grad!.dataSync(), w.grad!.dataSync(), b.grad!.dataSync()];
    };
    const plain = run(false), ck = run(true);
    for (let i = 0; i < 3; i++) assert.ok(maxAbsDiff(plain[i], ck[i]) < 1e-12);
  });

  it('refuses f16 and i32 in compute ops and casts on request', () => {
    const h = tensor([1.5, -2, 65504], [3], 'f32').to('f16');
    assert.equal(h.dtype, 'f16');
    assert.throws(() => E.exp(h), /storage only/);
    assert.deepEqual([...h.to('f32').dataSync()], [1.5, -2, 65504]);
    assert.throws(() => E.add(tensor([1], [1], 'f32'), tensor([1], [1], 'f64')), /mixed dtypes/);
  });

  it('reports shape errors with the shapes involved', () => {
    assert.throws(() => E.matmul(tensor([1, 2], [1, 2]), tensor([1, 2], [1, 2])), /inner sizes differ: \[1,2\] @ \[1,2\]/);
    assert.throws(() => E.add(tensor([1, 2], [2]), tensor([1, 2, 3], [3])), /cannot broadcast/);
    assert.throws(() => E.reshape(tensor([1, 2, 3], [3]), [2, 2]), /cannot view/);
  });

  it('reads back asynchronously', async () => {
    const t = tensor([4, 5], [2]);
    assert.deepEqual([...(await t.data())], [4, 5]);
  });
});
