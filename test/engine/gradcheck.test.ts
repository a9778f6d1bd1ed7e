// Every differentiable op's backward against finite differences in float64.
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { Rng, tensor } from '../../src/engine/index.js';
import { gradcheck, randT } from '../helpers/gradcheck.js';

const rng = new Rng(7);
const r = (shape: number[], scale = 1) => randT(shape, rng, scale).requireGrad();
const pos = (shape: number[]) => E.addScalar(E.abs(randT(shape, rng)), 0.5).detach().requireGrad();

describe('gradient checks (float64 finite differences)', () => {
  const unaries: [string, (x: E.Tensor) => E.Tensor, boolean][] = [
    ['neg', E.neg, false], ['exp', E.exp, false], ['log', E.log, true], ['sqrt', E.sqrt, true], ['rsqrt', E.rsqrt, true],
    ['square', E.square, false], ['sin', E.sin, false], ['cos', E.cos, false], ['tanh', E.tanh, false],
    ['sigmoid', E.sigmoid, false], ['relu', E.relu, false], ['silu', E.silu, false], ['gelu', E.gelu, false],
    ['geluTanh', E.geluTanh, false], ['quickGelu', E.quickGelu, false], ['abs', E.abs, true],
    ['mulScalar', (x) => E.mulScalar(x, -1.7), false], ['addScalar', (x) => E.addScalar(x, 0.3), false],
    ['powScalar', (x) => E.powScalar(x, 1.5), true],
  ];
  for (const [name, f, positive] of unaries) {
    it(name, () => gradcheck(f, [positive ? pos([3, 5]) : r([3, 5])]));
  }

  for (const [name, f] of [['add', E.add], ['sub', E.sub], ['mul', E.mul], ['div', E.div]] as const) {
    it(`${name} with broadcasting`, () => {
      gradcheck(f, [r([2, 3, 4]), name === 'div' ? pos([3, 1]) : r([3, 1])]);
      gradcheck(f, [r([1, 4]), name === 'div' ? pos([2, 3, 4]) : r([2, 3, 4])]);
      gradcheck(f, [r([2, 3]), name === 'div' ? pos([2, 3]) : r([2, 3])]);
    });
  }

  it('sum and mean over axes', () => {
    gradcheck((x) => E.sum(x, [0, 2]), [r([2, 3, 4])]);
    gradcheck((x) => E.sum(x, 1, true), [r([2, 3, 4])]);
    gradcheck((x) => E.mean(x), [r([2, 3, 4])]);
    gradcheck((x) => E.mean(x, -1), [r([2, 3, 4])]);
  });

  it('reshape, permute, transpose, slice, concat, chunk', () => {
    gradcheck((x) => E.reshape(x, [6, -1]), [r([2, 3, 4])]);
    gradcheck((x) => E.permute(x, [2, 0, 1]), [r([2, 3, 4])]);
    gradcheck((x) => E.transpose(x, 0, 2), [r([2, 3, 4])]);
    gradcheck((x) => E.slice(x, 1, 1, 3), [r([2, 4, 3])]);
    gradcheck((a, b) => E.concat([a, b], 1), [r([2, 3, 2]), r([2, 1, 2])]);
    gradcheck((x) => E.mul(E.chunk(x, 2, -1)[0], E.chunk(x, 2, -1)[1]), [r([3, 4])]);
  });

  it('matmul (batched and broadcast)', () => {
    gradcheck(E.matmul, [r([3, 4]), r([4, 5])]);
    gradcheck(E.matmul, [r([2, 3, 4]), r([2, 4, 5])]);
    gradcheck(E.matmul, [r([2, 3, 4]), r([4, 5])]);
    gradcheck(E.matmul, [r([3, 4]), r([2, 4, 5])]);
  });

  it('linear with and without bias', () => {
    gradcheck(E.linear, [r([2, 3, 4]), r([5, 4]), r([5])]);
    gradcheck((x, w) => E.linear(x, w), [r([3, 4]), r([5, 4])]);
  });

  it('conv2d: padding, stride, groups, pointwise', () => {
    gradcheck((x, w, b) => E.conv2d(x, w, b, { padding: 1 }), [r([2, 3, 5, 5]), r([4, 3, 3, 3]), r([4])]);
    gradcheck((x, w) => E.conv2d(x, w, null, { stride: 2, padding: 1 }), [r([1, 2, 6, 5]), r([3, 2, 3, 3])]);
    gradcheck((x, w, b) => E.conv2d(x, w, b, { groups: 2, padding: [0, 1] }), [r([1, 4, 4, 4]), r([6, 2, 3, 2]), r([6])]);
    gradcheck((x, w, b) => E.conv2d(x, w, b), [r([2, 3, 3, 4]), r([5, 3, 1, 1]), r([5])]);
  });

  it('group norm and layer norm', () => {
    gradcheck((x, g, b) => E.groupNorm(x, 2, g, b, 1e-5), [r([2, 4, 3, 3]), r([4]), r([4])]);
    gradcheck((x) => E.groupNorm(x, 3, null, null), [r([1, 6, 2, 2])]);
    gradcheck((x, g, b) => E.groupNormSilu(x, 2, g, b, 1e-5), [r([2, 4, 3, 3]), r([4]), r([4])]);
    gradcheck((x, g, b) => E.layerNorm(x, g, b), [r([2, 3, 5]), r([5]), r([5])]);
  });

  it('softmax', () => gradcheck(E.softmax, [r([3, 6])]));

  it('attention (plain, causal, Lq != Lk, Dv != D)', () => {
    gradcheck((q, k, v) => E.attention(q, k, v), [r([2, 4, 3]), r([2, 4, 3]), r([2, 4, 3])]);
    gradcheck((q, k, v) => E.attention(q, k, v, { causal: true }), [r([2, 5, 3]), r([2, 5, 3]), r([2, 5, 3])]);
    gradcheck((q, k, v) => E.attention(q, k, v, { scale: 0.7 }), [r([1, 2, 3, 4]), r([1, 2, 6, 4]), r([1, 2, 6, 2])]);
  });

  it('nearest 2x upsampling', () => gradcheck(E.upsampleNearest2x, [r([1, 2, 3, 2])]));

  it('embedding (gradient to the table)', () => {
    const ids = tensor([3, 0, 3, 1], [2, 2], 'i32');
    gradcheck((t) => E.embedding(ids, t), [r([5, 3])]);
  });

  it('mse loss', () => gradcheck(E.mseLoss, [r([2, 3]), r([2, 3])]));

  it('a composite graph that reuses tensors', () => {
    gradcheck((x, w) => {
      const h = E.silu(E.linear(x, w));
      return E.add(E.mul(h, h), E.softmax(h));
    }, [r([3, 4]), r([4, 4])]);
  });
});
