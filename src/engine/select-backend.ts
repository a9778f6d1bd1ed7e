// Choosing the compute backend from a `device` option (config key, --device flag).
import type { Backend } from './backend.js';
import { cpuBackend, initCpuBackend } from './cpu/cpu-backend.js';
import { getWebGPUBackend } from './webgpu/webgpu-backend.js';

export const DEVICES = ['cpu', 'webgpu'] as const;

/** The backend for `device`; webgpu without an adapter rejects with the reason and what to install. */
export async function selectBackend(device: string | undefined): Promise<Backend> {
  await initCpuBackend(); // the cpu backend also serves host-side work (optimizer, file tools)
  if (device === undefined || device === 'cpu') return cpuBackend;
  if (device === 'webgpu') return getWebGPUBackend();
  throw new Error(`device "${device}": expected one of ${DEVICES.join(', ')}`);
}
