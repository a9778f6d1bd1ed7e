// Writing LoRA files the way sd-scripts does: tensors ordered as the safetensors library orders
// them (by dtype, then name), ss_* metadata, and the sshs_* hashes A1111 reads.
import { createHash } from 'node:crypto';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { onHost, serializeSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { LoRAModuleWeights } from './lora-file.js';

export type SavePrecision = 'F32' | 'F16' | 'BF16';

/** name -> tensor pairs in safetensors' write order (all LoRA tensors share one dtype: by name). */
export function loraTensors(modules: Iterable<LoRAModuleWeights>): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const m of modules) {
    out.push([`${m.name}.alpha`, E.tensor([m.alpha], [], 'f32', E.cpuBackend)]);
    out.push([`${m.name}.lora_down.weight`, m.down.detach()]);
    out.push([`${m.name}.lora_up.weight`, m.up.detach()]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * sshs_model_hash: sha256 of the data buffer. sshs_legacy_hash: first 8 hex of sha256 over
 * [1 MiB, 1 MiB + 64 KiB) of the serialization whose metadata holds only the ss_* keys.
 */
export function loraHashes(tensors: [string, Tensor][], metadata: Record<string, string>, precision: SavePrecision): { model: string; legacy: string } {
  const ssOnly = Object.fromEntries(Object.entries(metadata).filter(([k]) => k.startsWith('ss_')));
  const { header, data } = serializeSafetensors(tensors, ssOnly, precision);
  const h = createHash('sha256');
  for (const d of data) h.update(d);
  const full = Buffer.concat([header, ...data]);
  const legacy = createHash('sha256').update(full.subarray(0x100000, 0x100000 + 0x10000)).digest('hex').slice(0, 8);
  return { model: h.digest('hex'), legacy };
}

/** Writes the LoRA atomically, adding the sshs_* hashes to the metadata. */
export async function saveLoRA(path: string, modules: Iterable<LoRAModuleWeights>, metadata: Record<string, string>, precision: SavePrecision = 'F32'): Promise<Record<string, string>> {
  return saveLoRATensors(path, loraTensors(modules), metadata, precision);
}

/** saveLoRA for a file's tensors in write order (LyCORIS networks: their own keys). */
export async function saveLoRATensors(path: string, entries: [string, Tensor][], metadata: Record<string, string>, precision: SavePrecision = 'F32'): Promise<Record<string, string>> {
  const tensors = await onHost(entries);
  const { model, legacy } = loraHashes(tensors, metadata, precision);
  const meta = { ...metadata, sshs_model_hash: model, sshs_legacy_hash: legacy };
  await saveSafetensors(path, tensors, meta, precision);
  return meta;
}

/** The "addnet" hash of an existing file: sha256 of everything after the header. */
export async function addnetHash(file: string): Promise<string> {
  const { open } = await import('node:fs/promises');
  const fh = await open(file, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const start = 8 + Number(len.readBigUInt64LE(0));
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 20);
    for (let pos = start; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (!bytesRead) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return h.digest('hex');
  } finally {
    await fh.close();
  }
}
