// Building dataset specs from the training options: folder mode (train_data_dir/reg_data_dir) or
// an sd-scripts dataset config (TOML or JSON, read and checked by dataset-config.ts).
import { ConfigError, type TrainConfig } from '../train/config.js';
import { checkDatasetConfigFile, fromTrainConfig } from './dataset-config.js';
import { type DatasetSpec, SUBSET_DEFAULTS, SUBSET_KEYS, type SubsetSpec } from './dataset-spec.js';
import { scanRepeatFolders } from './folder-dataset.js';

type Raw = Record<string, unknown>;

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

/** The datasets of an sd-scripts dataset config; every problem of the file in one ConfigError. */
export function datasetConfigSpecs(file: string, c: TrainConfig): DatasetSpec[] {
  const r = checkDatasetConfigFile(file, c);
  // sd-scripts asserts is_latent_cacheable: cached latents would freeze one crop or colour change.
  if (c.cache_latents) {
    for (const d of r.datasets) for (const s of d.subsets) {
      const on = ['color_aug', 'random_crop'].filter((k) => s.values[k] === true);
      if (on.length) r.problems.push(`${s.where}: ${on.map((k) => `"${k}"`).join(' and ')} cannot be used with "cache_latents" (the cached latents would freeze one augmentation)`);
    }
  }
  if (r.problems.length) throw new ConfigError(r.problems);
  return r.datasets.map((d) => toDataset(d.level, d.subsets.map((s) => toSubset(s.values, s.where)), d.where));
}
