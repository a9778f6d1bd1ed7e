// Accelerators the estimator knows: memory and dense FP16 tensor throughput (vendor figures,
// without sparsity), plus this project's own CPU backend.
export interface Device {
  id: string;
  name: string;
  memoryGB: number;
  /** Dense FP16/BF16 tensor TFLOP/s with FP32 accumulation. */
  tflops: number;
  /** Share of peak a diffusion training step reaches (assumption; calibrated for "cpu"). */
  efficiency: number;
}

export const DEVICES: Device[] = [
  { id: 'rtx-5070-ti', name: 'RTX 5070 Ti', memoryGB: 16, tflops: 87.9, efficiency: 0.35 },
  { id: 'rtx-5080', name: 'RTX 5080', memoryGB: 16, tflops: 112.6, efficiency: 0.35 },
  { id: 'rtx-5090', name: 'RTX 5090', memoryGB: 32, tflops: 209.5, efficiency: 0.35 },
  { id: 'rtx-4090', name: 'RTX 4090', memoryGB: 24, tflops: 165.2, efficiency: 0.35 },
  { id: 'rtx-4070', name: 'RTX 4070', memoryGB: 12, tflops: 58.3, efficiency: 0.35 },
  { id: 'rtx-3090', name: 'RTX 3090', memoryGB: 24, tflops: 71, efficiency: 0.35 },
  { id: 'rtx-3060', name: 'RTX 3060 12GB', memoryGB: 12, tflops: 25.6, efficiency: 0.35 },
  { id: 'h100', name: 'H100 SXM', memoryGB: 80, tflops: 989, efficiency: 0.3 },
  // sdlora's own cpu backend: ~70 GFLOP/s peak GEMM on 2 cores (relaxed-SIMD 4x8 kernel, 36 per
  // core). Efficiency is per counted FLOP, and the count takes every backward as twice the
  // forward, while a LoRA step computes only input gradients through the frozen base (about 3/4
  // of the count with checkpointing, 2/3 without): hence a figure near 1. Measured on 2026-12-01
  // (bench/run.ts, SD1.5 shapes): LoRA step at 256 px, batch 1, f32, no checkpointing, 0.69 counted
  // TFLOP in 8.0-8.9 s (1.17); at 512 px, batch 2, f16 weights, checkpointing, 7.54 in 120.5 s (0.89).
  { id: 'cpu', name: 'sdlora cpu backend (2 cores)', memoryGB: 24, tflops: 0.07, efficiency: 1.0 },
];

export function findDevice(id: string): Device {
  const k = id.toLowerCase().replace(/\s+/g, '-');
  const d = DEVICES.find((x) => x.id === k || x.name.toLowerCase() === id.toLowerCase());
  if (!d) throw new Error(`unknown GPU "${id}"; known: ${DEVICES.map((x) => x.id).join(', ')}`);
  return d;
}
