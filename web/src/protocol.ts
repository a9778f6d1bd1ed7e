// Messages between the page (app.ts, or a test driving the page) and the engine worker. The
// engine runs in a worker because the wasm kernels' threads synchronise with Atomics.wait, which
// the page's main thread may not call.
export type Request =
  | { op: 'init'; device: 'auto' | 'cpu' | 'webgpu'; threads?: number; /** A lower storage binding limit in bytes (?maxBinding), to exercise weight splitting. */ maxBinding?: number }
  | { op: 'put'; files: { path: string; data: Blob | Uint8Array }[] }
  | { op: 'list'; dir: string }
  | { op: 'read'; path: string }
  /** An image file's RGB bytes as the data pipeline prepares them (src/data/images.ts: the page's decoder, then lanczos3 to `size` when given). */
  | { op: 'image'; path: string; size?: [number, number] }
  | { op: 'io-stats' }
  | { op: 'train'; steps: number; seed: number; dataset?: string; model?: string; out?: string; values?: Record<string, unknown> }
  | { op: 'generate'; model?: string; /** Configs for a single-file checkpoint of a non-standard size (the CLI's --config-dir). */ configDir?: string; prompt: string; negativePrompt?: string; loras: { path: string; weight: number }[]; width: number; height: number; steps: number; cfgScale: number; seed: number; sampler: string }
  | { op: 'parity'; goldenUrl: string; cases: Partial<GoldenCases> };

/** Folder names, under goldenUrl, of the golden cases the page checks (a part left out is not run; LoRA needs unet and text). */
export interface GoldenCases { unet: string; vae: string; text: string; lora: string }

export interface BackendInfo {
  name: 'webgpu' | 'cpu';
  /** Why this backend: the adapter found, or why WebGPU is not used. */
  reason: string;
  threads: number;
  adapter?: { description?: string; vendor?: string; architecture?: string; features: string[]; limits: Record<string, number> };
}

export type Event =
  | { type: 'progress'; step: number; maxSteps: number; loss: number; avgLoss: number; lr: number; ms: number }
  | { type: 'log'; text: string }
  | { type: 'image-step'; step: number; total: number };

export interface ParityCheck { name: string; maxDiff: number; tol: number; ok: boolean }
