// Every key of an sd-scripts dataset config ([general], [[datasets]], [[datasets.subsets]]) with
// its type, range and levels, after sd-scripts' library/config_util.py ConfigSanitizer (DreamBooth
// and fine-tuning subsets of train_network.py). Keys sdlora does not implement say why.
export type DatasetKeyType = 'integer' | 'number' | 'boolean' | 'string' | 'resolution' | 'range' | 'table';

/** dataset: [general] and [[datasets]]; all: also subsets; subset: only [[datasets.subsets]]. */
export type DatasetKeyLevel = 'dataset' | 'all' | 'subset';

export interface DatasetKeySpec {
  type: DatasetKeyType;
  level: DatasetKeyLevel;
  min?: number;
  max?: number;
  /** Strictly below. */
  below?: number;
  choices?: readonly string[];
  /** sd-scripts' default: a value equal to it needs no note even when unimplemented. */
  default?: unknown;
  /** Why it has no effect in sdlora; undefined when implemented. */
  noEffect?: string;
}

const k = (type: DatasetKeyType, level: DatasetKeyLevel, extra: Partial<DatasetKeySpec> = {}): DatasetKeySpec => ({ type, level, ...extra });
const rate = { min: 0, max: 1 };

export const RESIZE_INTERPOLATIONS = ['lanczos', 'nearest', 'bilinear', 'linear', 'bicubic', 'cubic', 'area'] as const;

export const DATASET_CONFIG_KEYS: Record<string, DatasetKeySpec> = {
  // dataset level
  resolution: k('resolution', 'dataset'),
  batch_size: k('integer', 'dataset', { min: 1 }),
  enable_bucket: k('boolean', 'dataset'),
  min_bucket_reso: k('integer', 'dataset', { min: 64 }),
  max_bucket_reso: k('integer', 'dataset', { min: 64 }),
  bucket_reso_steps: k('integer', 'dataset', { min: 8 }),
  bucket_no_upscale: k('boolean', 'dataset'),
  network_multiplier: k('number', 'dataset', { default: 1, noEffect: 'per-dataset LoRA multipliers are not implemented; every dataset trains at 1.0' }),
  validation_split: k('number', 'dataset', { min: 0, below: 1, default: 0, noEffect: 'validation is not implemented; every image trains' }),
  validation_seed: k('integer', 'dataset', { noEffect: 'validation is not implemented' }),
  // subset options, settable at every level
  num_repeats: k('integer', 'all', { min: 1 }),
  shuffle_caption: k('boolean', 'all'),
  caption_separator: k('string', 'all'),
  keep_tokens: k('integer', 'all', { min: 0 }),
  keep_tokens_separator: k('string', 'all'),
  secondary_separator: k('string', 'all'),
  enable_wildcard: k('boolean', 'all'),
  caption_prefix: k('string', 'all'),
  caption_suffix: k('string', 'all'),
  color_aug: k('boolean', 'all'),
  flip_aug: k('boolean', 'all'),
  random_crop: k('boolean', 'all'),
  caption_dropout_rate: k('number', 'all', rate),
  caption_dropout_every_n_epochs: k('integer', 'all', { min: 0 }),
  caption_tag_dropout_rate: k('number', 'all', rate),
  caption_extension: k('string', 'all'),
  class_tokens: k('string', 'all'),
  face_crop_aug_range: k('range', 'all', { min: 0, noEffect: 'face-crop augmentation is not implemented' }),
  token_warmup_min: k('integer', 'all', { min: 1, default: 1, noEffect: 'token warm-up is not implemented; captions are used whole from the first step' }),
  token_warmup_step: k('number', 'all', { min: 0, default: 0, noEffect: 'token warm-up is not implemented; captions are used whole from the first step' }),
  custom_attributes: k('table', 'all', { noEffect: 'custom attributes are only read by other sd-scripts trainers' }),
  resize_interpolation: k('string', 'all', { choices: RESIZE_INTERPOLATIONS, noEffect: 'images are always resized with the built-in filter' }),
  cache_info: k('boolean', 'all', { default: false, noEffect: 'it only speeds up sd-scripts\' image scan' }),
  // subset only
  image_dir: k('string', 'subset'),
  is_reg: k('boolean', 'subset'),
  alpha_mask: k('boolean', 'subset', { default: false, noEffect: 'alpha-masked loss is not implemented; transparent pixels train like the others' }),
  metadata_file: k('string', 'subset'),
};

/** Values of keys that are shaped like a dataset but belong elsewhere, to say where. */
export const TRAINING_ONLY_HINTS: Record<string, string> = {
  train_batch_size: 'batch_size', dataset_repeats: 'num_repeats', train_data_dir: 'image_dir',
};
