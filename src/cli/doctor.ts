// `sdlora doctor`: what this machine offers sdlora: the cpu backend's kernels and threads, and the
// WebGPU adapter (features, limits) or why there is none.
import os from 'node:os';
import * as E from '../engine/index.js';
import { halfGemmSupport } from '../engine/webgpu/kernels/gemm.js';
import { kernelFlavor } from '../engine/cpu/kernel-threads.js';
import { cpuKernelThreads } from '../engine/cpu/cpu-backend.js';

const KEY_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'];

export async function doctor(o: { json?: boolean }): Promise<void> {
  const started = Date.now();
  // What the engine itself set up (it honours SDLORA_WASM=0 and SDLORA_THREADS), not a reading of the variables.
  let failed = '';
  try { await E.initCpuBackend(); } catch (e) { failed = `WebAssembly kernels unavailable (${(e as Error).message}): plain JS`; }
  const k = cpuKernelThreads();
  const kernels = k.wasm ? `WebAssembly SIMD GEMM (${kernelFlavor}) + softmax` : failed || `plain JS${process.env.SDLORA_WASM === '0' ? ' (SDLORA_WASM=0)' : ''}`;
  const cpu = { node: process.version, platform: `${process.platform}-${process.arch}`, cores: os.availableParallelism(), threads: k.threads, memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1), kernels };
  const gpu = await E.probeAdapter();
  // What device = auto (the default) takes here, and why: the same rule every run applies.
  const auto = await E.autoDevice();
  if (o.json) {
    console.log(JSON.stringify({ cpu, webgpu: gpu, auto }, null, 2));
    return;
  }
  console.log('cpu backend');
  console.log(`  ${cpu.platform}, Node ${cpu.node}, ${cpu.cores} cores, ${cpu.memoryGB} GiB RAM`);
  const env = process.env.SDLORA_THREADS;
  const why = !k.wasm ? '' : env === undefined || env.trim() === '' ? ' (all cores; SDLORA_THREADS sets it)' : ' (SDLORA_THREADS)';
  console.log(`  kernels: ${cpu.kernels} on ${cpu.threads} thread${cpu.threads === 1 ? '' : 's'}${why}`);
  console.log('webgpu backend');
  if (!gpu.found) {
    console.log(`  not available: ${gpu.reason}`);
  } else {
    console.log(`  adapter: ${[gpu.vendor, gpu.architecture, gpu.device].filter(Boolean).join(' / ')}${gpu.isFallback ? ' (software fallback: correct but slow)' : ''}`);
    if (gpu.description) console.log(`  driver: ${gpu.description}`);
    console.log(`  features used by sdlora: ${KEY_FEATURES.map((f) => `${f} ${gpu.features.includes(f) ? 'yes' : 'no'}`).join(', ')}`);
    const half = halfGemmSupport(gpu.features);
    console.log(`  GEMM arithmetic (matmul, conv2d, attention): ${half.ok ? 'f16 operands with f32 accumulation under mixed_precision fp16 (shader-f16), f32 otherwise; SDLORA_WEBGPU_F16=0 forces f32' : `f32 (${half.why})`}`);
    if (gpu.subgroupMatrixConfigs !== undefined) console.log(`  subgroup matrix configs: ${gpu.subgroupMatrixConfigs}`);
    const mx = gpu.matrixGemm;
    if (mx) console.log(`  subgroup-matrix GEMM (tensor cores, f16 GEMMs): ${mx.candidate ? `${mx.candidate}, used once it matches the host's product on the device` : `not used (${mx.why})`}`);
    for (const [k, v] of Object.entries(gpu.limits)) console.log(`  ${k}: ${v}`);
    console.log(`  all features: ${gpu.features.join(', ')}`);
  }
  console.log(`device auto: ${auto.name} (${auto.reason})`);
  console.log(`(${Date.now() - started} ms)`);
}
