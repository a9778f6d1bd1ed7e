// A LoRA folder as A1111 sees it: every .safetensors below it (subfolders included), named by
// file basename, also reachable by its ss_output_name alias or its relative path (ComfyUI style).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile } from '../io/safetensors.js';
import { type LoRASummary, describeLoRA } from './formats/describe.js';

export interface LibraryEntry {
  name: string;
  alias: string;
  /** Path relative to the library root, without extension, '/'-separated. */
  relName: string;
  path: string;
  metadata: Record<string, string>;
  bytes: number;
  /** Algorithm, rank, alpha and base family, from the header. */
  summary: LoRASummary;
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.safetensors$/i.test(e.name)) out.push(p);
  }
}

export class LoRALibrary {
  private constructor(readonly root: string, readonly entries: LibraryEntry[], readonly problems: string[]) {}

  static async scan(root: string): Promise<LoRALibrary> {
    let files: string[] = [];
    try { walk(root, files); } catch (e) { throw new Error(`${root}: cannot read the LoRA folder (${(e as Error).message})`); }
    files = files.sort();
    const entries: LibraryEntry[] = [];
    const problems: string[] = [];
    for (const file of files) {
      try {
        const f = await SafetensorsFile.open(file);
        const metadata = f.metadata;
        let summary: LoRASummary;
        try { summary = await describeLoRA(f); } catch (e) { throw new Error(`${file}: ${(e as Error).message}`); } finally { await f.close(); }
        const name = path.basename(file).replace(/\.safetensors$/i, '');
        entries.push({
          name, alias: metadata.ss_output_name || name, path: file, metadata, bytes: statSync(file).size, summary,
          relName: path.relative(root, file).replace(/\.safetensors$/i, '').split(path.sep).join('/'),
        });
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    return new LoRALibrary(root, entries, problems);
  }

  /** By relative path, then file name (the last one scanned wins, as in A1111), then alias. */
  resolve(name: string): LibraryEntry {
    const byRel = this.entries.find((e) => e.relName === name);
    if (byRel) return byRel;
    const byName = this.entries.filter((e) => e.name === name);
    if (byName.length) return byName[byName.length - 1];
    const byAlias = this.entries.filter((e) => e.alias === name);
    if (byAlias.length === 1) return byAlias[0];
    if (byAlias.length > 1) throw new Error(`LoRA "${name}" is ambiguous: ${byAlias.map((e) => e.relName).join(', ')} share that alias; use the file name`);
    throw new Error(`LoRA "${name}" not found in ${this.root}`);
  }
}
