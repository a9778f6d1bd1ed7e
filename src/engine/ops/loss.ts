// Losses used by the trainer.
import type { Tensor } from '../tensor.js';
import { square, sub } from './elementwise.js';
import { mean } from './reduce.js';

/** mean((a - b)^2), torch's F.mse_loss with reduction "mean". */
export const mseLoss = (a: Tensor, b: Tensor): Tensor => mean(square(sub(a, b)));
