// Node side of the kernel threads seam: compiles the kernels' WebAssembly text with wabt and runs
// the worker loop in worker_threads. The browser build swaps this module for
// src/platform/browser/kernel-threads.ts (Web Workers, kernels precompiled at build time), so
// wasm-pool.ts holds the one scheduling code path for both.
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { setFlagsFromString } from 'node:v8';
import wabtInit from 'wabt';
import { gemmWat } from './gemm-wat.js';

export interface KernelThreadData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  index: number;
}

export interface KernelThread {
  /** Settles once the thread has instantiated the module and waits for jobs. */
  ready: Promise<void>;
}

/**
 * The kernels' binary: the same text the browser build precompiles (web/build.ts, plain SIMD so
 * that every browser takes it); `relaxed` adds the fused multiply-add of relaxed SIMD.
 */
export async function kernelWasmBytes(relaxed = false): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('gemm.wat', gemmWat(relaxed), { simd: true, threads: true, relaxed_simd: relaxed } as Parameters<typeof wabt.parseWat>[2]);
  const { buffer } = parsed.toBinary({});
  parsed.destroy();
  return new Uint8Array(buffer);
}

/** Which GEMM kernel the pool runs: 'relaxed-simd' (FMA) or 'simd128'. Set by kernelModule(). */
export let kernelFlavor: 'relaxed-simd' | 'simd128' = 'simd128';

/**
 * The relaxed-SIMD module where the engine accepts it (+45% GEMM throughput measured on this
 * project's 2-core box), else the plain one. Node 20 ships relaxed SIMD behind a V8 flag, which
 * can be set before the first compile; Node 22 has it on. SDLORA_RELAXED_SIMD=0 keeps plain SIMD.
 */
export async function kernelModule(): Promise<WebAssembly.Module> {
  if (process.env.SDLORA_RELAXED_SIMD !== '0') {
    try {
      const bytes = await kernelWasmBytes(true);
      if (!WebAssembly.validate(bytes as BufferSource)) setFlagsFromString('--experimental-wasm-relaxed-simd');
      const m = await WebAssembly.compile(bytes as BufferSource);
      kernelFlavor = 'relaxed-simd';
      return m;
    } catch {
      // An engine without relaxed SIMD: the plain kernels compute the same products.
    }
  }
  kernelFlavor = 'simd128';
  return WebAssembly.compile((await kernelWasmBytes()) as BufferSource);
}

/** `loop` is the source of a function (data) => void that never returns until told to stop. */
export function startKernelThread(loop: string, data: KernelThreadData): KernelThread {
  const w = new Worker(`const { parentPort, workerData } = require('node:worker_threads');
parentPort.postMessage('ready');
(${loop})(workerData);`, { eval: true, workerData: data });
  // Idle kernel threads sleep in Atomics.wait; they must not keep the process alive.
  w.unref();
  return { ready: new Promise((res) => w.once('message', () => res())) };
}

/** SDLORA_THREADS, else every core; a value that is not a positive whole number is an error, not ignored. */
export function availableThreads(): number {
  const cores = Math.max(1, os.availableParallelism());
  const raw = process.env.SDLORA_THREADS;
  if (raw === undefined || raw.trim() === '') return cores;
  const env = Number(raw);
  if (Number.isInteger(env) && env > 0) return env;
  throw new Error(`SDLORA_THREADS=${raw}: expected a positive whole number of kernel threads (unset, it is every core: ${cores})`);
}
