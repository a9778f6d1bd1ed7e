// kohya-ss/sd-scripts LoRA files: `<lora_name>.lora_down.weight`, `.lora_up.weight`, `.alpha`.
import type { Tensor } from '../engine/tensor.js';
import { SafetensorsFile } from '../io/safetensors.js';

export interface LoRAModuleWeights {
  name: string;
  down: Tensor;
  up: Tensor;
  /** alpha; the effective scale is alpha / rank. Missing in a file means alpha = rank. */
  alpha: number;
}

export interface LoRAFile {
  path: string;
  modules: Map<string, LoRAModuleWeights>;
  metadata: Record<string, string>;
  /** Keys this loader does not understand (other network types, DoRA scales...). */
  unsupportedKeys: string[];
}

export const rankOf = (m: LoRAModuleWeights): number => m.down.shape[0];
export const scaleOf = (m: LoRAModuleWeights): number => m.alpha / rankOf(m);

export async function loadLoRA(path: string): Promise<LoRAFile> {
  const f = await SafetensorsFile.open(path);
  try {
    const parts = new Map<string, Partial<{ down: Tensor; up: Tensor; alpha: number }>>();
    const unsupported: string[] = [];
    for (const key of f.keys()) {
      const m = /^(.*)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(key);
      if (!m) { unsupported.push(key); continue; }
      const p = parts.get(m[1]) ?? {};
      const t = await f.read(key);
      if (m[2] === 'alpha') p.alpha = t.dataSync()[0];
      else if (m[2] === 'lora_down.weight') p.down = t;
      else p.up = t;
      parts.set(m[1], p);
    }
    const modules = new Map<string, LoRAModuleWeights>();
    for (const [name, p] of parts) {
      if (!p.down || !p.up) throw new Error(`${path}: module "${name}" lacks its ${p.down ? 'lora_up' : 'lora_down'} weight`);
      const rank = p.down.shape[0];
      if (p.up.shape[1] !== rank) throw new Error(`${path}: module "${name}": lora_up [${p.up.shape}] does not match lora_down [${p.down.shape}]`);
      modules.set(name, { name, down: p.down, up: p.up, alpha: p.alpha ?? rank });
    }
    return { path, modules, metadata: f.metadata, unsupportedKeys: unsupported };
  } finally {
    await f.close();
  }
}
