// `sdlora embeddings list <dir>`: the Textual Inversion embeddings of a folder as txt2img
// --embeddings-dir finds them (prompt word, vectors, widths, A1111 hash); and that loading step.
import type { Command } from 'commander';
import { type EmbeddingEntry, EmbeddingLibrary } from '../infer/embeddings.js';
import type { SDModel } from '../models/sd-model.js';

/** Registers the folder's embeddings with the model; says which files were left out and why. */
export async function loadEmbeddings(dir: string, model: SDModel): Promise<EmbeddingEntry[]> {
  const lib = await EmbeddingLibrary.scan(dir);
  const loaded = await lib.applyTo(model);
  for (const s of lib.skipped) console.error(`embedding ${s.path} skipped: ${s.reason}`);
  return loaded;
}

const family = (shapes: Record<string, number[]>) => {
  if (shapes.clip_l && shapes.clip_g) return 'SDXL';
  const w = Object.values(shapes)[0]?.[1];
  return w === 768 ? 'SD 1.x' : w === 1024 ? 'SD 2.x' : `width ${w}`;
};

export function registerEmbeddingsCommand(program: Command): void {
  const cmd = program.command('embeddings').description('Textual Inversion embeddings');
  cmd.command('list').description('list the embeddings of a folder (subfolders included), as txt2img --embeddings-dir uses them')
    .argument('<dir>', 'embeddings folder').option('--json', 'JSON output')
    .action(async (dir: string, o: { json?: boolean }) => {
      const lib = await EmbeddingLibrary.scan(dir);
      if (o.json) {
        console.log(JSON.stringify({ embeddings: lib.entries.map((e) => ({ ...e, hash: e.sha256.slice(0, 12) })), skipped: lib.skipped }, null, 2));
        return;
      }
      for (const e of lib.entries) {
        const vectors = Object.values(e.shapes)[0][0];
        console.log(`${e.name}\t${vectors} vector${vectors === 1 ? '' : 's'}\t${family(e.shapes)} (${Object.entries(e.shapes).map(([k, s]) => `${k} [${s.join(', ')}]`).join(', ')})\t${e.sha256.slice(0, 12)}\t${e.path}`);
      }
      for (const s of lib.skipped) console.error(`skipped ${s.path}: ${s.reason}`);
      if (!lib.entries.length) console.log(`no embeddings in ${dir}`);
    });
}
