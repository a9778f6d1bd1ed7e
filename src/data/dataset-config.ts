// Reading and checking an sd-scripts dataset config (TOML or JSON): [general] < [[datasets]] <
// [[datasets.subsets]], each key checked for its level, type and range as config_util.py's
// schema does, with every problem listed together under the file and the key's path.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigSyntaxError, parseConfigText } from '../io/config-text.js';
import { suggestion } from '../train/did-you-mean.js';
import type { TrainConfig } from '../train/config.js';
import { DATASET_CONFIG_KEYS, type DatasetKeySpec, TRAINING_ONLY_HINTS } from './dataset-config-schema.js';
import { DATASET_KEYS, SUBSET_KEYS } from './dataset-spec.js';

type Raw = Record<string, unknown>;

/** One [[datasets]] entry: its merged dataset-level values and each subset's merged values. */
export interface RawDataset { where: string; level: Raw; subsets: { where: string; values: Raw }[] }

export interface DatasetConfigReport { datasets: RawDataset[]; problems: string[]; notes: string[] }

const isTable = (v: unknown): v is Raw => !!v && typeof v === 'object' && !Array.isArray(v);

/** Training options that also act as subset/dataset defaults (sd-scripts: CLI < config levels). */
export function fromTrainConfig(c: TrainConfig): { sub: Raw; ds: Raw } {
  const sub: Raw = {}, ds: Raw = {};
  for (const key of Object.keys(SUBSET_KEYS)) if (c[key] !== undefined) sub[key] = c[key];
  if (c.dataset_repeats !== undefined) sub.num_repeats = c.dataset_repeats;
  for (const key of Object.keys(DATASET_KEYS)) if (c[key] !== undefined) ds[key] = c[key];
  ds.batch_size = c.train_batch_size;
  return { sub, ds };
}

/** Why a value does not fit its key, or undefined. Types are strict, as voluptuous checks them. */
function valueProblem(v: unknown, s: DatasetKeySpec): string | undefined {
  const isNum = typeof v === 'number' && Number.isFinite(v);
  const range = (n: number) => (s.min !== undefined && n < s.min ? `must be at least ${s.min}`
    : s.max !== undefined && n > s.max ? `must be at most ${s.max}`
    : s.below !== undefined && n >= s.below ? `must be below ${s.below}` : undefined);
  switch (s.type) {
    case 'integer': return !isNum || !Number.isInteger(v) ? 'must be an integer' : range(v as number);
    case 'number': return !isNum ? 'must be a number' : range(v as number);
    case 'boolean': return typeof v === 'boolean' ? undefined : 'must be true or false';
    case 'string':
      if (typeof v !== 'string') return 'must be a string';
      return s.choices && !s.choices.includes(v) ? `must be one of ${s.choices.join(', ')}` : undefined;
    case 'table': return isTable(v) ? undefined : 'must be a table';
    case 'range': {
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) return 'must be two numbers [low, high]';
      return v[0] < 0 || v[0] > v[1] ? 'must be two numbers with 0 <= low <= high' : undefined;
    }
    case 'resolution': {
      const wh = typeof v === 'number' ? [v, v] : v;
      if (!Array.isArray(wh) || wh.length !== 2 || !wh.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) return 'must be a positive integer or [width, height]';
      return wh.some((x) => x % 8 !== 0) ? 'must be a multiple of 8' : undefined;
    }
  }
}

const show = (v: unknown) => JSON.stringify(v);

/** Checks each key of one table; records problems and notes. */
function checkTable(obj: Raw, where: string, level: 'general' | 'dataset' | 'subset', r: DatasetConfigReport): void {
  for (const [key, v] of Object.entries(obj)) {
    if (key === 'subsets' && level === 'dataset') continue;
    const s = DATASET_CONFIG_KEYS[key];
    if (!s) {
      const hint = TRAINING_ONLY_HINTS[key] ? ` (in a dataset config it is "${TRAINING_ONLY_HINTS[key]}")` : suggestion(key, Object.keys(DATASET_CONFIG_KEYS));
      r.problems.push(`${where}: unknown key "${key}"${hint}`);
      continue;
    }
    if (level === 'subset' && s.level === 'dataset') { r.problems.push(`${where}: "${key}" belongs in [general] or [[datasets]], not in a subset`); continue; }
    if (level !== 'subset' && s.level === 'subset') { r.problems.push(`${where}: "${key}" belongs in [[datasets.subsets]]`); continue; }
    if (key === 'metadata_file') { r.problems.push(`${where}: fine-tuning metadata subsets (metadata_file) are not supported yet; use image folders with caption files`); continue; }
    if (v === null || v === undefined) continue;
    const bad = valueProblem(v, s);
    if (bad) r.problems.push(`${where}: "${key}" ${bad}, got ${show(v)}`);
    else if (s.noEffect && !(s.default !== undefined && v === s.default)) r.notes.push(`${where}: "${key}" has no effect in sdlora (${s.noEffect})`);
  }
}

/** Checks that need the merged values of a dataset (several levels together). */
function checkMerged(ds: Raw, where: string, problems: string[]): void {
  const min = ds.min_bucket_reso as number, max = ds.max_bucket_reso as number, steps = ds.bucket_reso_steps as number;
  if (typeof min === 'number' && typeof max === 'number' && min > max) problems.push(`${where}: "min_bucket_reso" ${min} must not exceed "max_bucket_reso" ${max}`);
  // As the training option: the family's own multiple (64 SD 1.x/2.x, 32 SDXL) is checked with the model loaded.
  if (typeof steps === 'number' && steps % 32 !== 0 && !ds.bucket_no_upscale) problems.push(`${where}: "bucket_reso_steps" must be a multiple of 64 for SD 1.x/2.x or of 32 for SDXL, got ${steps}`);
}

function readSubsets(d: Raw, dsWhere: string, level: Raw, r: DatasetConfigReport): RawDataset['subsets'] {
  const subs = d.subsets;
  if (!Array.isArray(subs) || !subs.length) { r.problems.push(`${dsWhere} has no [[datasets.subsets]]`); return []; }
  const out: RawDataset['subsets'] = [];
  subs.forEach((s, j) => {
    const where = `${dsWhere} [[datasets.subsets]] #${j + 1}`;
    if (!isTable(s)) { r.problems.push(`${where}: must be a table of subset options`); return; }
    checkTable(s, where, 'subset', r);
    if (typeof s.image_dir !== 'string') { if (s.metadata_file === undefined) r.problems.push(`${where}: a subset needs "image_dir"`); return; }
    const values = { ...level, ...s };
    // Relative image_dir values are relative to the working directory, as in sd-scripts.
    values.image_dir = path.resolve(String(values.image_dir));
    out.push({ where, values });
  });
  return out;
}

/** Parses and checks a dataset config; `c` gives the training options that act as defaults. */
export function checkDatasetConfigFile(file: string, c: TrainConfig): DatasetConfigReport {
  const r: DatasetConfigReport = { datasets: [], problems: [], notes: [] };
  let root: unknown;
  try { root = parseConfigText(file, readFileSync(file, 'utf8')); } catch (e) {
    r.problems.push(e instanceof ConfigSyntaxError ? `dataset_config ${e.message}` : `${file}: cannot read the dataset config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    return r;
  }
  if (!isTable(root)) { r.problems.push(`${file}: the dataset config must be a table with [general] and [[datasets]]`); return r; }
  for (const key of Object.keys(root)) if (key !== 'general' && key !== 'datasets') r.problems.push(`${file}: unknown top-level key "${key}" (expected [general] and [[datasets]])${suggestion(key, ['general', 'datasets'])}`);
  const general = root.general ?? {};
  if (!isTable(general)) r.problems.push(`${file}: [general] must be a table`);
  else checkTable(general, `${file}: [general]`, 'general', r);
  if (!Array.isArray(root.datasets) || !root.datasets.length) { r.problems.push(`${file}: no [[datasets]]`); return r; }
  const base = fromTrainConfig(c);
  root.datasets.forEach((d, i) => {
    const where = `${file}: [[datasets]] #${i + 1}`;
    if (!isTable(d)) { r.problems.push(`${where}: must be a table`); return; }
    checkTable(d, where, 'dataset', r);
    const level: Raw = { ...base.sub, ...base.ds, ...(isTable(general) ? general : {}), ...d };
    delete level.subsets;
    checkMerged(level, where, r.problems);
    r.datasets.push({ where, level, subsets: readSubsets(d, where, level, r) });
  });
  return r;
}
