// Building dataset specs from the training options: folder mode (train_data_dir/reg_data_dir) or
// an sd-scripts dataset config (TOML or JSON) with [general] < [[datasets]] < [[datasets.subsets]].
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parsePythonJson } from '../io/python-json.js';
import { didYouMean } from '../train/config.js';
import type { TrainConfig } from '../train/config.js';
import { DATASET_KEYS, type DatasetSpec, SUBSET_DEFAULTS, SUBSET_KEYS, type SubsetSpec } from './dataset-spec.js';
import { scanRepeatFolders } from './folder-dataset.js';

type Raw = Record<string, unknown>;

/** Training options that also act as subset/dataset defaults (sd-scripts: CLI < config levels). */
function fromTrainConfig(c: TrainConfig): { sub: Raw; ds: Raw } {
  const sub: Raw = {}, ds: Raw = {};
  for (const k of Object.keys(SUBSET_KEYS)) if (c[k] !== undefined) sub[k] = c[k];
  if (c.dataset_repeats !== undefined) sub.num_repeats = c.dataset_repeats;
  for (const k of Object.keys(DATASET_KEYS)) if (c[k] !== undefined) ds[k] = c[k];
  ds.batch_size = c.train_batch_size;
  return { sub, ds };
}

function toSubset(raw: Raw, where: string): SubsetSpec {
  const s: Record<string, unknown> = { ...SUBSET_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) { const f = SUBSET_KEYS[k]; if (f && v !== undefined && v !== null) s[f] = v; }
  if (typeof s.imageDir !== 'string') throw new Error(`${where}: a subset needs image_dir`);
  if (typeof s.captionExtension === 'string' && !s.captionExtension.startsWith('.')) s.captionExtension = `.${s.captionExtension}`;
  return s as unknown as SubsetSpec;
}

function toDataset(raw: Raw, subsets: SubsetSpec[], where: string): DatasetSpec {
  const res = raw.resolution;
  const r = typeof res === 'number' ? [res, res] : Array.isArray(res) ? res.map(Number) : undefined;
  if (!r || r.length !== 2 || r.some((x) => !Number.isInteger(x) || x <= 0)) throw new Error(`${where}: resolution must be a number or [width, height], got ${JSON.stringify(res)}`);
  return {
    resolution: [r[0], r[1]], batchSize: (raw.batch_size as number) ?? 1, enableBucket: Boolean(raw.enable_bucket),
    minBucketReso: (raw.min_bucket_reso as number) ?? 256, maxBucketReso: (raw.max_bucket_reso as number) ?? 1024,
    bucketResoSteps: (raw.bucket_reso_steps as number) ?? 64, bucketNoUpscale: Boolean(raw.bucket_no_upscale), subsets,
  };
}

export function folderModeSpecs(c: TrainConfig): { specs: DatasetSpec[]; warnings: string[] } {
  const { sub, ds } = fromTrainConfig(c);
  const warnings: string[] = [];
  const subsets: SubsetSpec[] = [];
  for (const [dir, isReg] of [[c.train_data_dir, false], [c.reg_data_dir, true]] as [string | undefined, boolean][]) {
    if (!dir) continue;
    const { subsets: found, skipped } = scanRepeatFolders(dir);
    warnings.push(...skipped);
    for (const f of found) subsets.push(toSubset({ ...sub, image_dir: f.dir, num_repeats: f.numRepeats, class_tokens: f.classTokens, is_reg: isReg }, f.dir));
  }
  if (!subsets.length) throw new Error(`${c.train_data_dir}: no <repeats>_<name> subfolders (e.g. 10_mychar/ holding the images); train_data_dir must be their parent`);
  return { specs: [toDataset(ds, subsets, String(c.train_data_dir))], warnings };
}

const GENERAL_ONLY = new Set(Object.keys(DATASET_KEYS));
const SUBSET_ONLY = new Set(['image_dir', 'is_reg']);
const ALL_KEYS = new Set([...Object.keys(SUBSET_KEYS), ...GENERAL_ONLY, 'cache_info', 'network_multiplier', 'validation_split', 'validation_seed', 'resize_interpolation', 'custom_attributes', 'alpha_mask', 'face_crop_aug_range', 'token_warmup_min', 'token_warmup_step', 'metadata_file']);

export function datasetConfigSpecs(file: string, c: TrainConfig): DatasetSpec[] {
  let raw: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    raw = path.extname(file).toLowerCase() === '.toml' ? parseToml(text) : parsePythonJson(text);
  } catch (e) { throw new Error(`${file}: cannot read the dataset config (${(e as Error).message.split('\n')[0]})`); }
  const root = raw as { general?: Raw; datasets?: Raw[] };
  const check = (obj: Raw, where: string, level: 'general' | 'dataset' | 'subset') => {
    for (const k of Object.keys(obj)) {
      if (k === 'subsets' && level === 'dataset') continue;
      if (!ALL_KEYS.has(k)) { const h = didYouMean(k, ALL_KEYS); throw new Error(`${file}: ${where}: unknown key "${k}"${h ? ` (did you mean "${h}"?)` : ''}`); }
      if (level === 'subset' && GENERAL_ONLY.has(k)) throw new Error(`${file}: ${where}: "${k}" belongs in [general] or [[datasets]], not in a subset`);
      if (level !== 'subset' && SUBSET_ONLY.has(k)) throw new Error(`${file}: ${where}: "${k}" belongs in [[datasets.subsets]]`);
      if (k === 'metadata_file') throw new Error(`${file}: ${where}: fine-tuning metadata subsets (metadata_file) are not supported yet; use image folders with caption files`);
    }
  };
  for (const k of Object.keys(root)) if (k !== 'general' && k !== 'datasets') throw new Error(`${file}: unknown top-level key "${k}" (expected [general] and [[datasets]])`);
  if (!Array.isArray(root.datasets) || !root.datasets.length) throw new Error(`${file}: no [[datasets]]`);
  const general = root.general ?? {};
  check(general, '[general]', 'general');
  const base = fromTrainConfig(c);
  return root.datasets.map((d, i) => {
    check(d, `[[datasets]] #${i + 1}`, 'dataset');
    const subs = (d.subsets as Raw[] | undefined) ?? [];
    if (!subs.length) throw new Error(`${file}: [[datasets]] #${i + 1} has no [[datasets.subsets]]`);
    const level: Raw = { ...base.sub, ...base.ds, ...general, ...d };
    const subsets = subs.map((s, j) => {
      check(s, `[[datasets]] #${i + 1} subset #${j + 1}`, 'subset');
      const merged = { ...level, ...s };
      // Relative image_dir values are relative to the working directory, as in sd-scripts.
      if (merged.image_dir) merged.image_dir = path.resolve(String(merged.image_dir));
      return toSubset(merged, `${file}: [[datasets]] #${i + 1} subset #${j + 1}`);
    });
    return toDataset(level, subsets, `${file}: [[datasets]] #${i + 1}`);
  });
}
