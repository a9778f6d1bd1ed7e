// Textual Inversion embeddings for generation, as A1111 loads them from its embeddings folder:
// every .safetensors file below the folder (nested folders included), the file stem being the
// prompt word; a file holds one tensor [n, dim] (sd-scripts' `emb_params`, or any single key) for
// SD 1.x/2.x, or `clip_l` and `clip_g` for SDXL. The word stands for its n vectors wherever it
// appears as a whole word. A1111's hash of an embedding is the sha256 of the file, 12 hex shown
// (`TI hashes: "name: 0123456789ab"` in the infotext).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../engine/index.js';
import { reshape } from '../engine/ops/layout.js';
import { loadSafetensors } from '../io/safetensors.js';
import { cleanText } from '../models/clip-tokenizer.js';
import type { SDModel } from '../models/sd-model.js';
import { addEmbeddingWord } from '../train/textual-inversion.js';

export interface EmbeddingEntry {
  /** The prompt word (file stem). */
  name: string;
  path: string;
  /** sha256 of the file (A1111 shows the first 12 hex). */
  sha256: string;
  /** Tensor name -> [vectors, width]. */
  shapes: Record<string, number[]>;
}

const PICKLE = /\.(pt|bin|ckpt|pth)$/i;

export class EmbeddingLibrary {
  /** Files not used, and why. */
  readonly skipped: { path: string; reason: string }[] = [];
  private constructor(readonly dir: string, readonly entries: EmbeddingEntry[]) {}

  static async scan(dir: string): Promise<EmbeddingLibrary> {
    try { if (!statSync(dir).isDirectory()) throw new Error(); } catch { throw new Error(`${dir}: not an embeddings folder`); }
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p); else files.push(p);
      }
    };
    walk(dir);
    const lib = new EmbeddingLibrary(dir, []);
    const byName = new Map<string, string>();
    for (const f of files) {
      if (PICKLE.test(f)) { lib.skipped.push({ path: f, reason: 'pickle files are not loaded (unpickling can run code); convert it to .safetensors' }); continue; }
      if (!/\.safetensors$/i.test(f)) continue;
      const name = path.basename(f).replace(/\.safetensors$/i, '');
      const key = cleanText(name);
      if (byName.has(key)) { lib.skipped.push({ path: f, reason: `another embedding has the name "${name}" (${byName.get(key)})` }); continue; }
      try {
        const { tensors } = await loadSafetensors(f);
        const shapes = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.rank === 1 ? [1, t.shape[0]] : [...t.shape]]));
        if (!Object.keys(shapes).length || Object.values(shapes).some((s) => s.length !== 2)) throw new Error('not an embedding (needs [vectors, width] tensors)');
        byName.set(key, f);
        lib.entries.push({ name, path: f, sha256: createHash('sha256').update(readFileSync(f)).digest('hex'), shapes });
      } catch (e) {
        lib.skipped.push({ path: f, reason: (e as Error).message });
      }
    }
    return lib;
  }

  /**
   * Registers every embedding that fits the model's text encoders (widths, and one tensor or
   * clip_l/clip_g as the family needs); returns those loaded. The others are added to `skipped`.
   */
  async applyTo(model: SDModel): Promise<EmbeddingEntry[]> {
    const loaded: EmbeddingEntry[] = [];
    for (const e of this.entries) {
      const { tensors } = await loadSafetensors(e.path);
      const vectors = vectorsFor(model, tensors);
      if (typeof vectors === 'string') { this.skipped.push({ path: e.path, reason: vectors }); continue; }
      addEmbeddingWord(model, e.name, vectors);
      loaded.push(e);
    }
    return loaded;
  }
}

/** The vectors per text encoder of a file for this model, or why it does not fit. */
export function vectorsFor(model: Pick<SDModel, 'family' | 'textEncoders'>, tensors: Record<string, Tensor>): Tensor[] | string {
  const as2d = (t: Tensor) => (t.rank === 1 ? reshape(t.to('f32'), [1, t.shape[0]]) : t.to('f32'));
  const keys = Object.keys(tensors);
  let list: Tensor[];
  if (model.textEncoders.length === 1) {
    if (keys.length !== 1) return `an SD 1.x/2.x embedding holds one tensor (emb_params), this file has ${keys.join(', ')}`;
    list = [as2d(tensors[keys[0]])];
  } else {
    if (!tensors.clip_l || !tensors.clip_g) return `an SDXL embedding holds clip_l and clip_g, this file has ${keys.join(', ')}`;
    list = [as2d(tensors.clip_l), as2d(tensors.clip_g)];
  }
  for (const [i, t] of list.entries()) {
    const width = model.textEncoders[i].config.hidden_size;
    if (t.shape[1] !== width) return `vectors ${t.shape[1]} wide, text encoder ${i + 1} of this model takes ${width}`;
  }
  return list;
}

/** The embeddings whose word appears as a whole word in the prompt or negative prompt. */
export function embeddingsUsed(entries: EmbeddingEntry[], ...texts: string[]): EmbeddingEntry[] {
  const clean = texts.map((t) => cleanText(t)).join('\n');
  return entries.filter((e) => {
    const w = cleanText(e.name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(?<![\\p{L}\\p{N}])${w}(?![\\p{L}\\p{N}])`, 'u').test(clean);
  });
}

/** A1111's infotext field for the embeddings used. */
export function tiHashes(used: EmbeddingEntry[]): string | null {
  return used.length ? `TI hashes: "${used.map((e) => `${e.name}: ${e.sha256.slice(0, 12)}`).join(', ')}"` : null;
}
