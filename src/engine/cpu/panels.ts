// The packed GEMM's panel shape, shared by the kernels' WebAssembly text and the host code that
// lays out their memory (a module of its own: the kernel generators import each other).

/**
 * Rows of A per packed panel. 4 x 8 (8 accumulators) measured 25 GFLOP/s on one core where 6 x 8
 * reached 19: V8 keeps one xmm register as scratch, so 12 accumulators + B + splat + the product
 * spill. With relaxed_madd (no product temporary) 4 x 8 reaches 36.
 */
export const MR = 4;
/** Columns of B per packed panel (two f32x4 vectors). */
export const NR = 8;
/** Depth of one K block of packed operands (at most; gemm.ts kBlocks splits K evenly). */
export const KC_MAX = 256;
