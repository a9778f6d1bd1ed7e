// `sdlora doctor`: what this machine offers sdlora: the cpu backend's kernels and threads, and the
// WebGPU adapter (features, limits) or why there is none.
import os from 'node:os';
import * as E from '../engine/index.js';
import { kernelFlavor } from '../engine/cpu/kernel-threads.js';

const KEY_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'];

export async function doctor(o: { json?: boolean }): Promise<void> {
  const started = Date.now();
  let wasm = 'off (SDLORA_WASM=0)';
  if (process.env.SDLORA_WASM !== '0') {
    try { await E.initCpuBackend(); wasm = `WebAssembly SIMD GEMM (${kernelFlavor}) + softmax`; } catch (e) { wasm = `unavailable: ${(e as Error).message}`; }
  }
  const cpu = { node: process.version, platform: `${process.platform}-${process.arch}`, cores: os.availableParallelism(), memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1), kernels: wasm };
  const gpu = await E.probeAdapter();
  // What device = auto (the default) takes here, and why: the same rule every run applies.
  const auto = await E.autoDevice();
  if (o.json) {
    console.log(JSON.stringify({ cpu, webgpu: gpu, auto }, null, 2));
    return;
  }
  console.log('cpu backend');
  console.log(`  ${cpu.platform}, Node ${cpu.node}, ${cpu.cores} threads, ${cpu.memoryGB} GiB RAM`);
  console.log(`  kernels: ${cpu.kernels}`);
  console.log('webgpu backend');
  if (!gpu.found) {
    console.log(`  not available: ${gpu.reason}`);
  } else {
    console.log(`  adapter: ${[gpu.vendor, gpu.architecture, gpu.device].filter(Boolean).join(' / ')}${gpu.isFallback ? ' (software fallback: correct but slow)' : ''}`);
    if (gpu.description) console.log(`  driver: ${gpu.description}`);
    console.log(`  features used by sdlora: ${KEY_FEATURES.map((f) => `${f} ${gpu.features.includes(f) ? 'yes' : 'no'}`).join(', ')}`);
    if (gpu.subgroupMatrixConfigs !== undefined) console.log(`  subgroup matrix configs: ${gpu.subgroupMatrixConfigs}`);
    for (const [k, v] of Object.entries(gpu.limits)) console.log(`  ${k}: ${v}`);
    console.log(`  all features: ${gpu.features.join(', ')}`);
  }
  console.log(`device auto: ${auto.name} (${auto.reason})`);
  console.log(`(${Date.now() - started} ms)`);
}
