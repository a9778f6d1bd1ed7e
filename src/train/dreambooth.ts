// DreamBooth / fine-tuning as sd-scripts' train_db.py does it: every UNet weight trains, and the
// text encoder too unless stop_text_encoder_training is negative (train_text_encoder false turns
// it off as well); it stops after stop_text_encoder_training steps. Prior preservation is the
// regularization images (reg_data_dir or is_reg subsets) weighed by prior_loss_weight. The
// trained weights are f32 master weights (mixed_precision stores only the frozen parts in f16).
// Output: a single-file checkpoint in the LDM layout, or a diffusers folder with save_model_as
// diffusers; save_precision applies to every tensor, as sd-scripts' save_dtype does.
import path from 'node:path';
import { saveDiffusersFolder, saveSingleFile } from '../models/ldm-save.js';
import type { TrainConfig } from './config.js';
import { type MethodContext, type MethodHooks, type MethodResult, type TrainParam, type TrainingMethod, trainWithMethod } from './method-loop.js';
import { checkpointModelspec } from './method-metadata.js';
import { typed } from './options.js';

/** Whether the text encoder trains at all, and until which step (exclusive). */
export function textEncoderPlan(cfg: TrainConfig): { train: boolean; stopAt: number } {
  const stop = cfg.stop_text_encoder_training as number | undefined;
  const train = cfg.train_text_encoder !== false && (stop === undefined || stop >= 0);
  return { train, stopAt: stop === undefined ? Infinity : stop };
}

function setupDreamBooth(ctx: MethodContext): TrainingMethod {
  const { cfg, model, log } = ctx;
  const c = typed(cfg);
  const te = textEncoderPlan(cfg);
  const diffusers = cfg.save_model_as === 'diffusers' || cfg.save_model_as === 'diffusers_safetensors';
  const collect = (): TrainParam[] => [
    ...[...model.unet.weights.tensors].map(([k, t]) => ({ name: `unet.${k}`, group: 'unet', tensor: t })),
    ...(te.train ? model.textEncoders.flatMap((m, i) => [...m.weights.tensors].map(([k, t]) => ({ name: `te${i + 1}.${k}`, group: 'te', tensor: t }))) : []),
  ];
  let params = collect();
  for (const p of params) p.tensor.requireGrad();
  const count = (g: string) => params.filter((p) => p.group === g).reduce((a, p) => a + p.tensor.size, 0);
  log(`DreamBooth: UNet ${count('unet')} parameters${te.train ? `, text encoder ${count('te')}${Number.isFinite(te.stopAt) ? ` (until step ${te.stopAt})` : ''}` : ' (text encoder frozen)'}`);
  const teLr = (cfg.learning_rate_te as number | undefined) ?? c.learning_rate;
  const groups = new Map([['unet', { name: 'unet', lr: c.learning_rate }]]);
  if (te.train) groups.set('te', { name: 'te', lr: teLr });
  const precision = c.save_precision === 'fp16' ? 'F16' : c.save_precision === 'bf16' ? 'BF16' : 'F32';
  const method: TrainingMethod = {
    id: 'dreambooth',
    get params() { return params; },
    groups,
    config: { train_text_encoder: te.train, unet_tensors: params.filter((p) => p.group === 'unet').length },
    textGrad: (step) => te.train && step < te.stopAt,
    activeGroups: (step) => new Set(te.train && step < te.stopAt ? ['unet', 'te'] : ['unet']),
    rebind() { params = collect(); },
    outputPath: (dir, stem) => (diffusers ? path.join(dir, stem) : path.join(dir, `${stem}.safetensors`)),
    async save(target, _at, run) {
      if (diffusers) await saveDiffusersFolder(target, model, precision);
      else await saveSingleFile(target, model, checkpointModelspec(cfg, model, 'checkpoint', run.startedAt), precision);
    },
  };
  return method;
}

export async function trainDreamBooth(cfg: TrainConfig, hooks: MethodHooks = {}): Promise<MethodResult> {
  return trainWithMethod(cfg, setupDreamBooth, hooks);
}
