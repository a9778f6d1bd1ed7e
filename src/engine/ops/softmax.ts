// Softmax over the last axis.
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { computeType, like } from './util.js';

export function softmax(x: Tensor): Tensor {
  const dt = computeType('softmax', x);
  const cols = x.shape[x.rank - 1], rows = x.size / cols;
  const be = x.backend;
  const y = like(x, be.softmax(x.storage, rows, cols, dt), x.shape);
  return record(y, 'softmax', [x], (gy) => [like(x, be.softmaxGrad(y.storage, gy.storage, rows, cols, dt), x.shape)]);
}
