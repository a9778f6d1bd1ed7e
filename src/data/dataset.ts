// Turning dataset specs into training images: captions, sizes, buckets, repeats, regularization
// balancing, and the summaries stored in the LoRA metadata.
import path from 'node:path';
import { BucketError, type Placement, type Size, bucketList, placeInBuckets, placeNoUpscale } from './buckets.js';
import type { DatasetSpec, SubsetSpec } from './dataset-spec.js';
import { CaptionError, listImages, readCaption } from './folder-dataset.js';
import { ImageError, imageSize } from './images.js';
import { tagFrequency } from './captions.js';

export interface TrainImage {
  path: string;
  size: Size;
  caption: string;
  hasCaptionFile: boolean;
  subset: SubsetSpec;
  placement: Placement;
  /** Entries per epoch (num_repeats; balanced for regularization images). */
  repeats: number;
}

export interface PreparedDataset {
  spec: DatasetSpec;
  images: TrainImage[];
  /** Bucket key "WxH" -> entries (repeats included). */
  buckets: Map<string, TrainImage[]>;
}

export interface DataSummary {
  datasets: PreparedDataset[];
  numTrainImages: number;
  numRegImages: number;
  tagFrequency: Record<string, Record<string, number>>;
  datasetDirs: Record<string, { n_repeats: number; img_count: number }>;
  regDatasetDirs: Record<string, { n_repeats: number; img_count: number }>;
  meanArError: number;
  /** Files skipped with skip_bad, and other warnings. */
  warnings: string[];
}

export class DatasetError extends Error {
  constructor(readonly bad: string[]) {
    super(`${bad.length} bad file(s) in the dataset (use --skip_bad to leave them out):\n  - ${bad.join('\n  - ')}`);
    this.name = 'DatasetError';
  }
}

export async function prepareData(specs: DatasetSpec[], opts: { skipBad?: boolean } = {}): Promise<DataSummary> {
  const bad: string[] = [];
  const warnings: string[] = [];
  const out: PreparedDataset[] = [];
  const tagFreq: Record<string, Record<string, number>> = {};
  const dirs: DataSummary['datasetDirs'] = {}, regDirs: DataSummary['regDatasetDirs'] = {};
  let numTrain = 0, numReg = 0, arErrSum = 0, arCount = 0;
  for (const spec of specs) {
    const buckets = spec.enableBucket && !spec.bucketNoUpscale ? bucketList(spec.resolution, spec.minBucketReso, spec.maxBucketReso, spec.bucketResoSteps) : [spec.resolution];
    const images: TrainImage[] = [];
    for (const sub of spec.subsets) {
      let files: string[];
      try { files = listImages(sub.imageDir); } catch (e) { bad.push(`${sub.imageDir}: cannot read the folder (${(e as Error).message})`); continue; }
      if (!files.length) { warnings.push(`${sub.imageDir}: no images`); continue; }
      const captions: string[] = [];
      let count = 0;
      for (const file of files) {
        try {
          const { caption } = readCaption(file, sub);
          const size = await imageSize(file);
          const placement = spec.enableBucket && spec.bucketNoUpscale ? placeNoUpscale(size[0], size[1], spec.resolution, spec.bucketResoSteps) : placeInBuckets(size[0], size[1], buckets);
          if (caption === null && sub.classTokens === undefined) warnings.push(`${file}: no caption file (${sub.captionExtension}) and no class tokens; training with an empty caption`);
          const text = caption ?? sub.classTokens ?? '';
          images.push({ path: file, size, caption: text, hasCaptionFile: caption !== null, subset: sub, placement, repeats: sub.numRepeats });
          captions.push(text);
          arErrSum += Math.abs(placement.arError); arCount++;
          count++;
        } catch (e) {
          if (e instanceof CaptionError || e instanceof ImageError) bad.push(e.message);
          else if (e instanceof BucketError) bad.push(`${file}: ${e.message}`);
          else throw e;
        }
      }
      const dirName = path.basename(sub.imageDir);
      if (!tagFreq[dirName]) tagFreq[dirName] = tagFrequency(captions);
      (sub.isReg ? regDirs : dirs)[dirName] = { n_repeats: sub.numRepeats, img_count: count };
      if (sub.isReg) numReg += sub.numRepeats * count; else numTrain += sub.numRepeats * count;
    }
    balanceRegularization(images);
    const map = new Map<string, TrainImage[]>();
    for (const img of images) {
      if (img.repeats <= 0) continue;
      const key = `${img.placement.bucket[0]}x${img.placement.bucket[1]}`;
      const list = map.get(key) ?? [];
      for (let r = 0; r < img.repeats; r++) list.push(img);
      map.set(key, list);
    }
    out.push({ spec, images, buckets: new Map([...map].sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }))) });
  }
  if (bad.length && !opts.skipBad) throw new DatasetError(bad);
  for (const b of bad) warnings.push(`skipped: ${b}`);
  if (!numTrain) throw new Error('no training images found: train_data_dir must be the parent of <repeats>_<name> image folders');
  return { datasets: out, numTrainImages: numTrain, numRegImages: numReg, tagFrequency: tagFreq, datasetDirs: dirs, regDatasetDirs: regDirs, meanArError: arCount ? arErrSum / arCount : 0, warnings };
}

/** sd-scripts: about as many regularization entries per epoch as training entries (§1.5). */
function balanceRegularization(images: TrainImage[]): void {
  const reg = images.filter((i) => i.subset.isReg);
  if (!reg.length) return;
  const target = images.filter((i) => !i.subset.isReg).reduce((a, i) => a + i.repeats, 0);
  for (const r of reg) r.repeats = 0;
  if (!target) return;
  let n = 0;
  for (const r of reg) {
    if (n >= target) break;
    r.repeats = r.subset.numRepeats;
    n += r.repeats;
  }
  while (n < target) for (const r of reg) { if (n >= target) break; r.repeats++; n++; }
}
