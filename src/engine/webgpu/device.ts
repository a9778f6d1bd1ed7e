// Finding a WebGPU adapter and device: navigator.gpu in browsers, the `webgpu` package (Dawn) in
// Node. Every failure becomes an error that says why and what to install; nothing here crashes
// the process when no adapter exists.

import { type SubgroupMatrixConfig, pickMatrixGemm } from './kernels/gemm.js';

export interface AdapterReport {
  found: boolean;
  /** Why no adapter was found (only when found is false). */
  reason?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallback?: boolean;
  features: string[];
  limits: Record<string, number>;
  subgroupMatrixConfigs?: number;
  /** The subgroup-matrix f16 GEMM this adapter could use (it is used once it passes a check on the device), or why none. */
  matrixGemm?: { candidate: string | null; why: string };
}

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  report: AdapterReport;
  /** Optional features the device was created with. */
  features: Set<string>;
  /** WGSL language extensions of this implementation (navigator.gpu.wgslLanguageFeatures). */
  languageFeatures: Set<string>;
}

// Features sdlora uses when present; none is required.
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'];
// Limits raised to the adapter's maximum (defaults are too small for 64x64 tiles and big tensors).
const RAISED_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxStorageBuffersPerShaderStage'];

const LIMIT_NAMES = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage', 'maxBindGroups', 'minSubgroupSize', 'maxSubgroupSize',
];

export const NO_ADAPTER_HELP =
  'On Linux without a GPU, install Mesa >= 25 (lavapipe), e.g. on Debian 12: mesa-vulkan-drivers and libvulkan1 from bookworm-backports; ' +
  'with a GPU, install its Vulkan driver. Run `sdlora doctor` to see what was found.';

let gpuPromise: Promise<GPU> | null = null;

/** navigator.gpu where it exists, else the Dawn bindings from the `webgpu` package. */
async function getGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  let mod: { create: (opts: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new Error(`WebGPU: the "webgpu" package (Dawn for Node) could not be loaded: ${(e as Error).message}. Run npm install.`);
  }
  Object.assign(globalThis, mod.globals);
  // Dawn switches, e.g. "backend=vulkan adapter=NVIDIA" (see the webgpu package's README).
  const opts = (process.env.SDLORA_DAWN_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  return mod.create(opts);
}

function describe(adapter: GPUAdapter): AdapterReport {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  const lim = adapter.limits as unknown as Record<string, number | undefined>;
  for (const k of LIMIT_NAMES) if (typeof lim[k] === 'number') limits[k] = lim[k]!;
  const subgroupMatrix = (info as unknown as { subgroupMatrixConfigs?: SubgroupMatrixConfig[] }).subgroupMatrixConfigs;
  const pick = pickMatrixGemm([...adapter.features].map(String), subgroupMatrix, (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize ?? limits.maxSubgroupSize);
  return {
    found: true,
    vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
    isFallback: (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    features: [...adapter.features].map(String).sort(),
    limits,
    subgroupMatrixConfigs: subgroupMatrix?.length,
    matrixGemm: { candidate: pick.cfg?.label ?? null, why: pick.why },
  };
}

/** The GPU entry point and its preferred adapter (null when there is none). */
async function findAdapter(): Promise<{ gpu: GPU; adapter: GPUAdapter | null }> {
  gpuPromise ??= getGpu();
  const gpu = await gpuPromise;
  return { gpu, adapter: await gpu.requestAdapter({ powerPreference: 'high-performance' }) };
}

/** Looks for an adapter without creating a device (for `sdlora doctor`). */
export async function probeAdapter(): Promise<AdapterReport> {
  try {
    const { adapter } = await findAdapter();
    if (!adapter) return { found: false, reason: `no WebGPU adapter. ${NO_ADAPTER_HELP}`, features: [], limits: {} };
    return describe(adapter);
  } catch (e) {
    return { found: false, reason: (e as Error).message, features: [], limits: {} };
  }
}

let ctxPromise: Promise<GpuContext> | null = null;

/** The process-wide device, created on first use with the adapter's maximum limits. */
export function gpuContext(): Promise<GpuContext> {
  ctxPromise ??= (async () => {
    const { gpu, adapter } = await findAdapter();
    if (!adapter) throw new Error(`WebGPU: no adapter found. ${NO_ADAPTER_HELP}`);
    const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    const lim = adapter.limits as unknown as Record<string, number>;
    for (const k of RAISED_LIMITS) if (typeof lim[k] === 'number') requiredLimits[k] = lim[k];
    const device = await adapter.requestDevice({ requiredFeatures: features as GPUFeatureName[], requiredLimits });
    device.addEventListener?.('uncapturederror', (ev) => {
      console.error(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
    });
    const lang = (gpu as unknown as { wgslLanguageFeatures?: Set<string> }).wgslLanguageFeatures;
    return { device, adapter, report: describe(adapter), features: new Set(features), languageFeatures: new Set(lang ?? []) };
  })();
  ctxPromise.catch(() => { ctxPromise = null; });
  return ctxPromise;
}
