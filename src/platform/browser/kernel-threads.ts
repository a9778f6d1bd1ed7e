// Browser side of the kernel threads seam (src/engine/cpu/kernel-threads.ts in Node): the kernels
// arrive precompiled (web/build.ts writes kernels.wasm with wabt at build time, so wabt never runs
// in the page) and each kernel thread is a Web Worker. Atomics.wait is only allowed off the main
// thread, so the engine itself runs in a worker too (web/src/engine-worker.ts).
// The seam's types are the Node module's (a type-only import: nothing of it reaches the bundle).
import type { KernelThread, KernelThreadData } from '../../engine/cpu/kernel-threads.js';

export type { KernelThread, KernelThreadData };

/** Where the page serves the precompiled kernels, relative to the engine worker's script. */
export const KERNELS_URL = 'kernels.wasm';

export async function kernelWasmBytes(): Promise<Uint8Array> {
  const r = await fetch(KERNELS_URL);
  if (!r.ok) throw new Error(`${KERNELS_URL}: HTTP ${r.status}; the page needs the kernels built by web/build.ts next to engine-worker.js`);
  return new Uint8Array(await r.arrayBuffer());
}

export async function kernelModule(): Promise<WebAssembly.Module> {
  if (typeof SharedArrayBuffer === 'undefined' || !(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated) {
    throw new Error('the wasm cpu backend needs SharedArrayBuffer: serve the page with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (sdlora web does)');
  }
  return WebAssembly.compile(await kernelWasmBytes() as BufferSource);
}

export function startKernelThread(loop: string, data: KernelThreadData): KernelThread {
  const src = `self.onmessage = (e) => { self.onmessage = null; self.postMessage('ready'); (${loop})(e.data); };`;
  const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
  const w = new Worker(url, { name: `sdlora-kernel-${data.index}` });
  const ready = new Promise<void>((res, rej) => {
    w.onmessage = () => { URL.revokeObjectURL(url); res(); };
    w.onerror = (e) => rej(new Error(`kernel worker ${data.index}: ${e.message}`));
  });
  w.postMessage(data);
  return { ready };
}

export function availableThreads(): number {
  const env = Number((globalThis as { process?: { env?: Record<string, string> } }).process?.env?.SDLORA_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}
