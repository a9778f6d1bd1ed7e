// device = auto: webgpu only on a hardware adapter (a software rasterizer counts as none), and the
// notice a run prints before step 1 (time of the whole run; a plain warning past an hour on cpu).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { deviceLine, runTimeLines } from '../../src/estimate/run-notice.js';
import { SD15_UNET_CONFIG } from '../../src/models/sd15-configs.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const report = (o: Partial<E.AdapterReport>): E.AdapterReport => ({ found: true, features: [], limits: {}, ...o });

describe('device choice', () => {
  it('counts lavapipe, llvmpipe, SwiftShader and fallback adapters as software, a discrete GPU as hardware', () => {
    assert.equal(E.isSoftwareAdapter(report({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-' })), true);
    assert.equal(E.isSoftwareAdapter(report({ vendor: 'google', device: 'SwiftShader Device (Subzero)' })), true);
    assert.equal(E.isSoftwareAdapter(report({ vendor: 'x', device: 'y', isFallback: true })), true);
    assert.equal(E.isSoftwareAdapter(report({ vendor: 'nvidia', architecture: 'blackwell', device: 'NVIDIA GeForce RTX 5080', description: 'NVIDIA: 570.86' })), false);
  });

  it('auto takes cpu on this machine and says why; cpu when asked says so', async () => {
    const probe = await E.probeAdapter();
    const auto = await E.chooseDevice(undefined);
    if (!probe.found) assert.match(auto.reason, /no WebGPU adapter/);
    else if (E.isSoftwareAdapter(probe)) {
      assert.equal(auto.name, 'cpu');
      assert.match(auto.reason, /software rasterizer/);
    } else assert.equal(auto.name, 'webgpu');
    assert.equal(auto.backend === E.cpuBackend, auto.name === 'cpu');
    assert.equal(E.lastDeviceChoice(), auto);
    const cpu = await E.chooseDevice('cpu');
    assert.match(deviceLine(cpu), /^device: cpu: device = cpu was asked for$/);
    await assert.rejects(E.chooseDevice('tpu'), /expected one of auto, cpu, webgpu/);
  });

  it('prints the whole run\'s time before step 1, and a plain warning with GPU times past an hour on cpu', () => {
    const unet = parseUNetConfig(SD15_UNET_CONFIG);
    const run = { unet, resolution: [512, 512] as [number, number], batch: 1, rank: 64, steps: 2000, mixedPrecision: true, gradientCheckpointing: true, cacheLatents: true, trainTextEncoder: false, optimizer: 'AdamW' };
    const cpu = runTimeLines(run, 'cpu');
    assert.match(cpu[0], /estimated time of the whole run \(2000 steps\) on the cpu: [\d.]+ (days|h) \([\d.]+ (days|h) to [\d.]+ (days|h)\)/);
    assert.match(cpu[1], /^WARNING: this run will take about [\d.]+ (days|h) on the CPU\. A GPU would take about .+ \(RTX 4070\) to .+ \(RTX 4090\)/);
    const gpu = runTimeLines(run, 'webgpu');
    assert.equal(gpu.length, 1);
    assert.match(gpu[0], /on this GPU \(estimated as an RTX 4070\): [\d.]+ (h|min) \(/);
    const short = runTimeLines({ ...run, resolution: [64, 64], steps: 2 }, 'cpu');
    assert.equal(short.length, 1, 'no warning for a short cpu run');
  });
});
