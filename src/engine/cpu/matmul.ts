// Batched matrix product on top of gemm: picks the strides that express the transposes.
import type { MatmulSpec } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, gemm, mat, rowBias } from './gemm.js';

/** Batched a @ b; with `bias` ([N]) every row of the product starts from it (linear's bias, in the same pass). */
export function matmul(a: FloatArray, b: FloatArray, s: MatmulSpec, dtype: FloatDType, bias?: FloatArray): FloatArray {
  const { M, N, K } = s;
  const y = allocArray(dtype, s.batch * M * N) as FloatArray;
  const init = bias ? rowBias(bias, M, N) : undefined;
  for (let i = 0; i < s.batch; i++) {
    const ao = s.aBatch === 1 ? 0 : i * M * K;
    const bo = s.bBatch === 1 ? 0 : i * K * N;
    gemm(M, N, K, s.transA ? mat(a, ao, 1, M) : mat(a, ao, K, 1), s.transB ? mat(b, bo, 1, K) : mat(b, bo, N, 1), y, i * M * N, false, init);
  }
  return y;
}
