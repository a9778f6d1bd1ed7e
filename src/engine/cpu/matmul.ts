// Batched matrix product on top of gemm: picks the strides that express the transposes.
import type { MatmulSpec } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, gemm, mat } from './gemm.js';

export function matmul(a: FloatArray, b: FloatArray, s: MatmulSpec, dtype: FloatDType): FloatArray {
  const { M, N, K } = s;
  const y = allocArray(dtype, s.batch * M * N) as FloatArray;
  for (let i = 0; i < s.batch; i++) {
    const ao = s.aBatch === 1 ? 0 : i * M * K;
    const bo = s.bBatch === 1 ? 0 : i * K * N;
    gemm(M, N, K, s.transA ? mat(a, ao, 1, M) : mat(a, ao, K, 1), s.transB ? mat(b, bo, 1, K) : mat(b, bo, N, 1), y, i * M * N, false);
  }
  return y;
}
