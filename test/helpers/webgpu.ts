// The webgpu backend for tests: skipped when no adapter exists, unless SDLORA_REQUIRE_WEBGPU=1
// (CI), where a missing adapter fails the test instead.
import type { TestContext } from 'node:test';
import * as E from '../../src/engine/index.js';

export async function webgpuOrSkip(t: TestContext): Promise<E.WebGPUBackend | null> {
  try {
    return await E.getWebGPUBackend();
  } catch (e) {
    if (process.env.SDLORA_REQUIRE_WEBGPU === '1') throw e;
    t.skip(`no WebGPU adapter: ${(e as Error).message}`);
    return null;
  }
}
