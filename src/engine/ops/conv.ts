// 2-D convolution (NCHW, OIHW weights) as torch.nn.functional.conv2d.
import type { ConvShapes } from '../backend.js';
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { computeType, like, weightOperand } from './util.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

export function conv2d(x: Tensor, wIn: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const { w, half } = weightOperand('conv2d', x, wIn);
  const stride = pair(opts.stride, 1), padding = pair(opts.padding, 0), groups = opts.groups ?? 1;
  if (x.rank !== 4 || w.rank !== 4) throw new Error(`conv2d: need input [N,C,H,W] and weight [O,C/g,KH,KW], got [${x.shape}] and [${w.shape}]`);
  const [n, cin, h, wd] = x.shape;
  const [cout, cg, kh, kw] = w.shape;
  if (cin !== cg * groups || cout % groups !== 0) throw new Error(`conv2d: input [${x.shape}] and weight [${w.shape}] do not match with groups=${groups}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== cout)) throw new Error(`conv2d: bias [${bias.shape}] does not match ${cout} output channels`);
  const oh = Math.floor((h + 2 * padding[0] - kh) / stride[0]) + 1;
  const ow = Math.floor((wd + 2 * padding[1] - kw) / stride[1]) + 1;
  if (oh < 1 || ow < 1) throw new Error(`conv2d: kernel [${kh},${kw}] larger than padded input [${h},${wd}]`);
  const s: ConvShapes = { x: x.shape, w: w.shape, out: [n, cout, oh, ow], stride, padding, groups, wHalf: half };
  const dt = computeType('conv2d', x, ...(half ? [] : [w]), ...(bias ? [bias] : []));
  const be = x.backend;
  const y = like(x, be.conv2d(x.storage, w.storage, bias ? bias.storage : null, s, dt), s.out);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(y, 'conv2d', inputs, (gy) => [
    x.requiresGrad ? like(x, be.conv2dGradInput(gy.storage, w.storage, s, dt), x.shape) : null,
    w.requiresGrad ? like(w, be.conv2dGradWeight(gy.storage, x.storage, s, dt), w.shape) : null,
    bias && bias.requiresGrad ? like(bias, be.sumTo(gy.storage, s.out, [1, cout, 1, 1], dt), bias.shape) : null,
  ]);
}
