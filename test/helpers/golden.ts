// Where the golden fixtures live ($SDLORA_GOLDEN_DIR or ../shared/data/golden) and what each case
// folder holds. A case's kind comes from its files and config, never from the folder name, so a
// held-out set with other folder names and configs is read the same way; a test asks for the kind
// it checks (an SD 1.x test asks for 'sd1-unet', not for the first UNet it finds).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function goldenDir(): string {
  const dir = process.env.SDLORA_GOLDEN_DIR ?? path.resolve(repoRoot, '../shared/data/golden');
  if (!existsSync(dir)) throw new Error(`golden fixtures not found at ${dir}; set SDLORA_GOLDEN_DIR`);
  return dir;
}

export type CaseKind =
  | 'sd1-unet' | 'sdxl-unet' | 'vae' | 'sd1-text' | 'sd2-text' | 'sdxl-text'
  | 'lora' | 'lora-backward' | 'sdxl-lora' | 'lycoris' | 'lora-tools' | 'schedulers';

export interface GoldenCase { name: string; dir: string; kind: CaseKind }

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

/** The kind of one case folder, or null when its files match no known kind. */
export function classify(dir: string): CaseKind | null {
  const files = new Set(readdirSync(dir));
  const has = (f: string) => files.has(f);
  if (has('scheduler_config.json') || has('scheduler_configs.json')) return 'schedulers';
  if (['svd_merge', 'resize_fixed', 'resize_sv_fro', 'extract'].some((s) => has(`${s}.safetensors`))) return 'lora-tools';
  if (['loha', 'lokr', 'dora', 'peft'].some((s) => has(`${s}.safetensors`))) return 'lycoris';
  if (has('lora_modules.txt')) return /^lora_te[12]_/m.test(readFileSync(path.join(dir, 'lora_modules.txt'), 'utf8')) ? 'sdxl-lora' : 'lora';
  if (has('config_te1.json') && has('config_te2.json')) return 'sdxl-text';
  if (has('config.json')) {
    const c = readJson(path.join(dir, 'config.json'));
    const cls = (c._class_name ?? c.model_type) as string;
    if (cls === 'UNet2DConditionModel') return c.addition_embed_type === 'text_time' ? 'sdxl-unet' : 'sd1-unet';
    if (cls === 'AutoencoderKL') return 'vae';
    if (cls === 'clip_text_model' || cls === 'CLIPTextModel') return [...files].some((f) => /_sd2\.safetensors$/.test(f)) ? 'sd2-text' : 'sd1-text';
    return null;
  }
  if (has('io.safetensors')) return 'lora-backward';
  return null;
}

export function allGoldenCases(): { cases: GoldenCase[]; unknown: string[] } {
  const root = goldenDir();
  const cases: GoldenCase[] = [], unknown: string[] = [];
  for (const d of readdirSync(root, { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    const dir = path.join(root, d.name);
    const kind = classify(dir);
    if (kind) cases.push({ name: d.name, dir, kind });
    else unknown.push(dir);
  }
  return { cases: cases.sort((a, b) => a.name.localeCompare(b.name)), unknown };
}

/** Every case folder of a kind (possibly none). */
export function goldenCases(kind: CaseKind): GoldenCase[] {
  return allGoldenCases().cases.filter((c) => c.kind === kind);
}

/**
 * The case folder of a kind. With `withFile`, the first such case holding that file (the SD 1.x
 * UNet backward case shares its weights with the forward case). Throws naming the kind.
 */
export function goldenCase(kind: CaseKind, withFile?: string): string {
  const all = goldenCases(kind);
  const c = withFile ? all.find((x) => existsSync(path.join(x.dir, withFile))) : all[0];
  if (!c) throw new Error(`no golden case of kind ${kind}${withFile ? ` with ${withFile}` : ''} in ${goldenDir()}`);
  return c.dir;
}

/** A file a case must have: a missing one fails, naming the file. */
export function requireFile(dir: string, file: string): string {
  const p = path.join(dir, file);
  if (!existsSync(p)) throw new Error(`golden case ${dir} lacks ${file}`);
  return p;
}

/** The LoRA module names a case lists in lora_modules.txt (first column, comment lines skipped). */
export function loraModuleNames(dir: string): string[] {
  return readFileSync(requireFile(dir, 'lora_modules.txt'), 'utf8').split('\n')
    .filter((l) => l.trim() && !l.startsWith('#')).map((l) => l.split('\t')[0]);
}
