// Choosing the compute backend from a `device` option (config key, --device flag). `auto` (the
// default) takes webgpu only on a hardware adapter: a software Vulkan/D3D rasterizer (lavapipe,
// llvmpipe, SwiftShader, WARP) is correct but slower than the cpu backend, so it counts as none.
import type { Backend } from './backend.js';
import { cpuBackend, initCpuBackend } from './cpu/cpu-backend.js';
import { type AdapterReport, probeAdapter } from './webgpu/device.js';
import { getWebGPUBackend } from './webgpu/webgpu-backend.js';

export const DEVICES = ['auto', 'cpu', 'webgpu'] as const;

/** The device a run uses and why, for `doctor` and the first lines of every run. */
export interface DeviceChoice {
  backend: Backend;
  /** 'cpu' or 'webgpu'. */
  name: 'cpu' | 'webgpu';
  /** The adapter in words, when there is one. */
  adapter?: string;
  /** Whether a hardware GPU adapter was found (also when cpu was asked for). */
  hardwareGpu: boolean;
  reason: string;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

/** Whether an adapter is a software rasterizer: the fallback flag, or a known software driver name. */
export function isSoftwareAdapter(r: AdapterReport): boolean {
  if (r.isFallback) return true;
  return [r.architecture, r.device, r.description, r.vendor].some((s) => typeof s === 'string' && SOFTWARE.test(s));
}

const adapterName = (r: AdapterReport) => [r.vendor, r.device].filter(Boolean).join(' ') || r.description || 'unnamed adapter';

/** What `auto` would take on this machine, without creating a device. */
export async function autoDevice(): Promise<{ name: 'cpu' | 'webgpu'; adapter?: string; hardwareGpu: boolean; reason: string }> {
  if (process.env.SDLORA_NO_WEBGPU === '1') return { name: 'cpu', hardwareGpu: false, reason: 'auto: SDLORA_NO_WEBGPU=1' };
  const r = await probeAdapter();
  if (!r.found) return { name: 'cpu', hardwareGpu: false, reason: `auto: no WebGPU adapter (${r.reason?.split('.')[0] ?? 'none'})` };
  const name = adapterName(r);
  if (isSoftwareAdapter(r)) return { name: 'cpu', adapter: name, hardwareGpu: false, reason: `auto: the only WebGPU adapter, ${name}, is a software rasterizer (slower than the cpu backend)` };
  return { name: 'webgpu', adapter: name, hardwareGpu: true, reason: `auto: hardware WebGPU adapter ${name}` };
}

let last: DeviceChoice | undefined;
/** The choice made by the latest selectBackend call (undefined before any). */
export const lastDeviceChoice = (): DeviceChoice | undefined => last;

/** The backend for `device` with the reason it was chosen; webgpu without an adapter rejects with the reason and what to install. */
export async function chooseDevice(device: string | undefined): Promise<DeviceChoice> {
  await initCpuBackend(); // the cpu backend also serves host-side work (optimizer, file tools)
  const d = device ?? 'auto';
  if (d === 'cpu') last = { backend: cpuBackend, name: 'cpu', hardwareGpu: false, reason: 'device = cpu was asked for' };
  else if (d === 'webgpu') {
    const backend = await getWebGPUBackend();
    const r = (backend as unknown as { ctx?: { report?: AdapterReport } }).ctx?.report;
    last = { backend, name: 'webgpu', adapter: r ? adapterName(r) : undefined, hardwareGpu: r ? !isSoftwareAdapter(r) : true, reason: `device = webgpu was asked for${r && isSoftwareAdapter(r) ? ' (software adapter: slow)' : ''}` };
  } else if (d === 'auto') {
    const a = await autoDevice();
    last = { ...a, backend: a.name === 'webgpu' ? await getWebGPUBackend() : cpuBackend };
  } else throw new Error(`device "${device}": expected one of ${DEVICES.join(', ')}`);
  return last;
}

/** The backend for `device` (default `auto`). */
export async function selectBackend(device: string | undefined): Promise<Backend> {
  return (await chooseDevice(device)).backend;
}
