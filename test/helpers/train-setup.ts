// The setup most training tests share: a temp folder, a tiny model, a procedural shape dataset,
// and a config builder with the test's defaults over them.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { type TrainConfig, resolveConfig } from '../../src/train/config.js';
import { tinyModelFolder } from './tiny-model.js';

/** A config from test values, as the CLI would resolve it. */
export const trainConfig = (values: Record<string, unknown>): TrainConfig => resolveConfig([{ source: 'test', values }]);

/** The small LoRA run most tests start from (tiny model, 32 px, batch 2, 4 steps, rank 4). */
export const TINY_LORA = { caption_extension: '.txt', resolution: 32, train_batch_size: 2, max_train_steps: 4, learning_rate: 1e-3, network_dim: 4, network_alpha: 2 };

export interface TrainFixture {
  tmp: string;
  dataDir: string;
  /** The model folder (set by `setup`). */
  model: string;
  /** A config: the model and data, then the defaults, then `v`. */
  cfg(v?: Record<string, unknown>): TrainConfig;
  /** For `before`: the cpu backend, the model folder and the dataset. */
  setup(): Promise<void>;
}

export function trainFixture(prefix: string, o: {
  dataset: Parameters<typeof writeShapeDataset>[1];
  /** Per config (a function: computed at each call, e.g. a fresh output_dir). */
  defaults: Record<string, unknown> | (() => Record<string, unknown>);
  /** Another model than the tiny SD 1.x one. */
  model?: () => Promise<string>;
  /** The data folder under the temp folder (default "data"). */
  dataSub?: string;
}): TrainFixture {
  const tmp = mkdtempSync(path.join(os.tmpdir(), prefix));
  const dataDir = path.join(tmp, o.dataSub ?? 'data');
  const fx: TrainFixture = {
    tmp, dataDir, model: '',
    cfg: (v = {}) => trainConfig({
      pretrained_model_name_or_path: fx.model, train_data_dir: dataDir,
      ...(typeof o.defaults === 'function' ? o.defaults() : o.defaults), ...v,
    }),
    setup: async () => {
      await E.initCpuBackend();
      fx.model = await (o.model ?? tinyModelFolder)();
      writeShapeDataset(dataDir, o.dataset);
    },
  };
  return fx;
}
