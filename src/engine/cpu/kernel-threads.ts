// Node side of the kernel threads seam: compiles the kernels' WebAssembly text with wabt and runs
// the worker loop in worker_threads. The browser build swaps this module for
// src/platform/browser/kernel-threads.ts (Web Workers, kernels precompiled at build time), so
// wasm-pool.ts holds the one scheduling code path for both.
import { Worker } from 'node:worker_threads';
import os from 'node:os';
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

/** The kernels' binary: the same text the browser build precompiles (web/build.ts). */
export async function kernelWasmBytes(): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('gemm.wat', gemmWat(), { simd: true, threads: true });
  const { buffer } = parsed.toBinary({});
  parsed.destroy();
  return new Uint8Array(buffer);
}

export async function kernelModule(): Promise<WebAssembly.Module> {
  return WebAssembly.compile(await kernelWasmBytes());
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

export function availableThreads(): number {
  const env = Number(process.env.SDLORA_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, os.availableParallelism());
}
