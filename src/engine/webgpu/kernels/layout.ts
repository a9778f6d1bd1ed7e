// Data movement on 32-bit words (f32 and i32 alike): strided gathers for permute and slice,
// strided scatters for concat, zero padding for the slice gradient, nearest upsampling and
// embedding lookups.
import { COORDS, FLAT_MAIN, PARAMS, RANK, bindings } from './common.js';

/** Y[i] = X[base + coords(i) . strides]. P: [n, rank, out shape x6, x strides x6, base]. */
export const gatherKernel = PARAMS + bindings(['X'], ['Y'], 'u32') + COORDS + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let rank = P[1];
  Y[i] = X[P[${2 + 2 * RANK}] + dotStrides(coords(i, rank, 2u), rank, ${2 + RANK}u)];`);

/** Y[base + coords(i) . strides] = X[i]. P: [n, rank, x shape x6, y strides x6, base]. */
export const scatterKernel = PARAMS + bindings(['X'], ['Y'], 'u32') + COORDS + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let rank = P[1];
  Y[P[${2 + 2 * RANK}] + dotStrides(coords(i, rank, 2u), rank, ${2 + RANK}u)] = X[i];`);

/** Slice gradient. P: [n, rank, shape x6, starts x6, box x6, gy strides x6]. */
export const padKernel = PARAMS + bindings(['GY'], ['Y']) + COORDS + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let rank = P[1];
  var c = coords(i, rank, 2u);
  var inside = true;
  for (var d = 0u; d < rank; d++) {
    let r = c[d] - P[${2 + RANK}u + d];  // wraps to a huge value below the start
    if (r >= P[${2 + 2 * RANK}u + d]) { inside = false; }
    c[d] = r;
  }
  if (!inside) { Y[i] = 0.0; return; }
  Y[i] = GY[dotStrides(c, rank, ${2 + 3 * RANK}u)];`);

/** [NC, H, W] -> [NC, 2H, 2W]. P: [n out, H, W]. */
export const upsampleKernel = PARAMS + bindings(['X'], ['Y']) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let H = P[1]; let W = P[2];
  let ow = i % (2u * W); let oh = (i / (2u * W)) % (2u * H); let nc = i / (4u * H * W);
  Y[i] = X[(nc * H + oh / 2u) * W + ow / 2u];`);

/** Sum of each 2x2 block. P: [n in, H, W]. */
export const upsampleGradKernel = PARAMS + bindings(['GY'], ['Y']) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let H = P[1]; let W = P[2];
  let w0 = i % W; let h = (i / W) % H; let nc = i / (H * W);
  let o = (nc * 2u * H + 2u * h) * 2u * W + 2u * w0;
  Y[i] = GY[o] + GY[o + 1u] + GY[o + 2u * W] + GY[o + 2u * W + 1u];`);

/** Y[t, d] = T[ids[t], d]. P: [count * dim, dim]. */
export const embeddingKernel = PARAMS + bindings(['IDS'], [], 'i32') + bindings(['T'], ['Y'], 'f32', 2) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let dim = P[1];
  Y[i] = T[u32(IDS[i / dim]) * dim + i % dim];`);

/** The ids in rows [r0, r0 + rows) of a table held in blocks; other outputs untouched. P: [count * dim, dim, r0, rows]. */
export const embeddingRangeKernel = PARAMS + bindings(['IDS'], [], 'i32') + bindings(['T'], ['Y'], 'f32', 2) + FLAT_MAIN(`
  if (i >= P[0]) { return; }
  let dim = P[1];
  let r = u32(IDS[i / dim]) - P[2];  // wraps to a huge value below the block
  if (r >= P[3]) { return; }
  Y[i] = T[r * dim + i % dim];`);

/** One invocation per column d adds every row of GY into its token's row (no atomics needed). P: [dim, count]. */
export const embeddingGradKernel = PARAMS + bindings(['IDS'], [], 'i32') + bindings(['GY'], ['Y'], 'f32', 2) + FLAT_MAIN(`
  let dim = P[0];
  if (i >= dim) { return; }
  for (var t = 0u; t < P[1]; t++) {
    let o = u32(IDS[t]) * dim + i;
    Y[o] = Y[o] + GY[t * dim + i];
  }`);
