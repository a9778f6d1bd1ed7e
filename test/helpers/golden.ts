// Where the golden fixtures live: $SDLORA_GOLDEN_DIR or ../shared/data/golden.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function goldenDir(): string {
  const dir = process.env.SDLORA_GOLDEN_DIR ?? path.resolve(repoRoot, '../shared/data/golden');
  if (!existsSync(dir)) throw new Error(`golden fixtures not found at ${dir}; set SDLORA_GOLDEN_DIR`);
  return dir;
}
