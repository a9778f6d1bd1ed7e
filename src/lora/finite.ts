// Refusing LoRA files that hold NaN or Inf: a diverged training run writes such files, and
// applying one turns every generated image black without any error.
import { SafetensorsFile } from '../io/safetensors.js';

const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

/** The module a tensor key belongs to: `lora_unet_x.lora_down.weight` -> `lora_unet_x`. */
const moduleOf = (key: string): string => key.split('.')[0];

/** The modules of a LoRA (or any safetensors) file whose tensors hold NaN or Inf values. */
export async function nonFiniteModules(file: string): Promise<string[]> {
  const f = await SafetensorsFile.open(file);
  try {
    const bad = new Set<string>();
    for (const key of f.keys()) {
      if (!FLOAT_DTYPES.has(f.entries.get(key)!.dtype) || bad.has(moduleOf(key))) continue;
      const data = (await f.read(key)).dataSync();
      if (!data.every(Number.isFinite)) bad.add(moduleOf(key));
    }
    return [...bad];
  } finally {
    await f.close();
  }
}

/** Throws, naming the modules, when the file holds non-finite values. */
export async function assertFinite(file: string): Promise<void> {
  const bad = await nonFiniteModules(file);
  if (!bad.length) return;
  const shown = bad.slice(0, 5).join(', ') + (bad.length > 5 ? ` and ${bad.length - 5} more` : '');
  throw new Error(`${file}: ${bad.length} LoRA module(s) hold NaN or Inf values (${shown}); the training run that wrote it diverged. `
    + 'Use an earlier save of that run, or retrain with a lower learning rate');
}
