// `sdlora inspect <file>`: tensors and metadata of a safetensors file, and for a LoRA-family file
// its algorithm, rank, alpha and base family.
import { checkpointLabel } from '../families/index.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { describeLoRA } from '../lora/formats/describe.js';

export async function inspect(file: string, opts: { limit: number }): Promise<void> {
  const f = await SafetensorsFile.open(file);
  try {
    const keys = f.keys();
    let bytes = 0;
    for (const e of f.entries.values()) bytes += e.end - e.begin;
    console.log(`${file}: ${keys.length} tensors, ${(bytes / 1048576).toFixed(2)} MiB`);
    const model = await checkpointLabel(new Set(keys), (k) => f.read(k));
    if (model) console.log(`model: ${model} checkpoint`);
    const lora = await describeLoRA(f);
    if (lora.applicable) {
      console.log(`LoRA: ${lora.algorithms.join(' + ')}, ${lora.modules} modules, rank ${lora.rank}, alpha ${lora.alpha}, base ${lora.family}`);
    }
    for (const k of keys.slice(0, opts.limit)) {
      const e = f.entries.get(k)!;
      console.log(`  ${k}  ${e.dtype} [${e.shape.join(', ')}]`);
    }
    if (keys.length > opts.limit) console.log(`  ... ${keys.length - opts.limit} more (--limit)`);
    const meta = Object.entries(f.metadata);
    if (meta.length) {
      console.log('metadata:');
      for (const [k, v] of meta) console.log(`  ${k}: ${v.length > 120 ? `${v.slice(0, 117)}...` : v}`);
    }
  } finally {
    await f.close();
  }
}
