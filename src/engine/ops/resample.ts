// Nearest-neighbour 2x upsampling (the UNet's Upsample2D before its conv).
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { computeType, like } from './util.js';

export function upsampleNearest2x(x: Tensor): Tensor {
  if (x.rank !== 4) throw new Error(`upsampleNearest2x: need [N,C,H,W], got [${x.shape}]`);
  const dt = computeType('upsampleNearest2x', x);
  const [n, c, h, w] = x.shape;
  const be = x.backend;
  const y = like(x, be.upsampleNearest2x(x.storage, x.shape, dt), [n, c, 2 * h, 2 * w]);
  return record(y, 'upsampleNearest2x', [x], (gy) => [like(x, be.upsampleNearest2xGrad(gy.storage, x.shape, dt), x.shape)]);
}
