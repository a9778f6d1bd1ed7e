// Latent arithmetic of the sampler steps as torch does it: diffusers' per-step scalars are float32
// 0-d tensors, so each is rounded to float32 before it meets the latent, and a division by a sigma
// stays a division (x * (1 / s) rounds differently).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';

/** x * s with s a float32 scalar. */
export const scale = (x: Tensor, s: number): Tensor => E.mulScalar(x, Math.fround(s));

/** x / s with s a float32 scalar. */
export const divide = (x: Tensor, s: number): Tensor => E.div(x, E.tensor([Math.fround(s)], [1], x.dtype as 'f32', x.backend));
