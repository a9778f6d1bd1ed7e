// Training options that depend on the loaded model's family, settled once the model is known
// (sd-scripts keeps them in per-family scripts: sdxl_train_network.py, sdxl_train_util.py): the
// default resolution and bucket step where the user gave none (SDXL: 1024 px, steps of 32), the
// bucket step multiple the family needs, and options a family cannot honour (clip_skip on SDXL).
import { checkDatasetConfigFile } from '../data/dataset-config.js';
import type { ModelFamily, Prediction } from '../families/family.js';
import type { TrainConfig } from './config.js';

/** Fills family defaults into `cfg` in place and refuses what the family cannot do; returns notes for the log. */
export function applyFamilyOptions(cfg: TrainConfig, family: ModelFamily, prediction: Prediction): string[] {
  const explicit = new Set((cfg.__explicit as string[] | undefined) ?? []);
  const d = family.defaults(prediction);
  const notes: string[] = [];
  const res = cfg.resolution as [number, number];
  if (!explicit.has('resolution') && (res[0] !== d.resolution || res[1] !== d.resolution)) {
    cfg.resolution = [d.resolution, d.resolution];
    notes.push(`resolution ${d.resolution} (the ${family.name} default; set resolution to change it)`);
  }
  if (!explicit.has('bucket_reso_steps') && cfg.bucket_reso_steps !== d.bucketResoSteps) {
    cfg.bucket_reso_steps = d.bucketResoSteps;
    if (cfg.enable_bucket) notes.push(`bucket_reso_steps ${d.bucketResoSteps} (the ${family.name} default)`);
  }
  const problems: string[] = [];
  if ((cfg.bucket_reso_steps as number) % d.bucketResoSteps !== 0 && !cfg.bucket_no_upscale) {
    problems.push(`"bucket_reso_steps" must be a multiple of ${d.bucketResoSteps} for ${family.name}, got ${cfg.bucket_reso_steps}`);
  }
  // A dataset config's own bucket_reso_steps (its other problems are reported when it is read).
  if (typeof cfg.dataset_config === 'string') {
    const r = checkDatasetConfigFile(cfg.dataset_config, cfg);
    if (!r.problems.length) {
      for (const ds of r.datasets) {
        const steps = ds.level.bucket_reso_steps;
        if (typeof steps === 'number' && steps !== cfg.bucket_reso_steps && steps % d.bucketResoSteps !== 0 && !ds.level.bucket_no_upscale) {
          problems.push(`${ds.where}: "bucket_reso_steps" must be a multiple of ${d.bucketResoSteps} for ${family.name}, got ${steps}`);
        }
      }
    }
  }
  if (!family.clipSkip && cfg.clip_skip !== undefined && cfg.clip_skip !== 1) {
    problems.push(`"clip_skip" ${cfg.clip_skip}: ${family.name} has no clip skip (it conditions on fixed layers); remove clip_skip`);
  }
  if (problems.length) throw new Error(problems.join('; '));
  return notes;
}
