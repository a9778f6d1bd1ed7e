// The resolved description of the training data: datasets (resolution, batch size, buckets) made
// of subsets (an image folder with repeats, caption rules and augmentations), as sd-scripts has.
export interface SubsetSpec {
  imageDir: string;
  numRepeats: number;
  /** Caption for images without a caption file (folder-name tokens in folder mode). */
  classTokens?: string;
  isReg: boolean;
  captionExtension: string;
  shuffleCaption: boolean;
  keepTokens: number;
  captionSeparator: string;
  keepTokensSeparator?: string;
  secondarySeparator?: string;
  enableWildcard: boolean;
  captionPrefix?: string;
  captionSuffix?: string;
  colorAug: boolean;
  flipAug: boolean;
  randomCrop: boolean;
  captionDropoutRate: number;
  captionDropoutEveryNEpochs: number;
  captionTagDropoutRate: number;
}

export interface DatasetSpec {
  resolution: [number, number];
  batchSize: number;
  enableBucket: boolean;
  minBucketReso: number;
  maxBucketReso: number;
  bucketResoSteps: number;
  bucketNoUpscale: boolean;
  subsets: SubsetSpec[];
}

/** Subset options that can be set at [general], [[datasets]] or subset level (and from training flags). */
export const SUBSET_KEYS: Record<string, keyof SubsetSpec> = {
  num_repeats: 'numRepeats', class_tokens: 'classTokens', is_reg: 'isReg', caption_extension: 'captionExtension',
  shuffle_caption: 'shuffleCaption', keep_tokens: 'keepTokens', caption_separator: 'captionSeparator',
  keep_tokens_separator: 'keepTokensSeparator', secondary_separator: 'secondarySeparator', enable_wildcard: 'enableWildcard',
  caption_prefix: 'captionPrefix', caption_suffix: 'captionSuffix', color_aug: 'colorAug', flip_aug: 'flipAug',
  random_crop: 'randomCrop', caption_dropout_rate: 'captionDropoutRate', caption_dropout_every_n_epochs: 'captionDropoutEveryNEpochs',
  caption_tag_dropout_rate: 'captionTagDropoutRate', image_dir: 'imageDir',
};

export const DATASET_KEYS: Record<string, keyof DatasetSpec> = {
  resolution: 'resolution', batch_size: 'batchSize', enable_bucket: 'enableBucket', min_bucket_reso: 'minBucketReso',
  max_bucket_reso: 'maxBucketReso', bucket_reso_steps: 'bucketResoSteps', bucket_no_upscale: 'bucketNoUpscale',
};

export const SUBSET_DEFAULTS: Omit<SubsetSpec, 'imageDir'> = {
  numRepeats: 1, isReg: false, captionExtension: '.caption', shuffleCaption: false, keepTokens: 0, captionSeparator: ',',
  enableWildcard: false, colorAug: false, flipAug: false, randomCrop: false, captionDropoutRate: 0,
  captionDropoutEveryNEpochs: 0, captionTagDropoutRate: 0,
};
