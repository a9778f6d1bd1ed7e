// `sdlora dataset check`: what a LoRA dataset needs before training: images per concept against
// the guidance (10-20 minimum, 21-40 recommended, 41-100 ideal), captions, unreadable or tiny
// images, near-duplicates (perceptual hash), aspect ratios and bucket fill, tag frequency, a
// background-uniformity hint and whether flip augmentation would help.
import path from 'node:path';
import { bucketList, placeInBuckets } from './buckets.js';
import { CaptionError, listImages, readCaption, scanRepeatFolders } from './folder-dataset.js';
import { tagFrequency } from './captions.js';
import { openImage } from './images.js';

export type Verdict = 'too few' | 'minimum' | 'recommended' | 'ideal' | 'more than needed';

export function countVerdict(n: number): Verdict {
  if (n < 10) return 'too few';
  if (n <= 20) return 'minimum';
  if (n <= 40) return 'recommended';
  if (n <= 100) return 'ideal';
  return 'more than needed';
}

export interface ConceptReport {
  folder: string;
  repeats: number;
  classTokens: string;
  images: number;
  verdict: Verdict;
  missingCaptions: string[];
  emptyCaptions: string[];
  unreadable: string[];
  tiny: string[];
  duplicates: [string, string, number][];
  aspectRatios: { min: number; max: number; portrait: number; landscape: number; square: number };
  buckets: Record<string, number>;
  smallBuckets: string[];
  topTags: [string, number][];
  tagsInEveryCaption: string[];
  uniformBackgrounds: number;
  similarBackgrounds: boolean;
  flipAdvice: string;
}

export interface CheckReport {
  root: string;
  resolution: number;
  concepts: ConceptReport[];
  skippedFolders: string[];
  problems: number;
  advice: string[];
}

interface ImageFacts { w: number; h: number; hash: bigint; border: { mean: [number, number, number]; std: number } }

/** dHash (9x8 grayscale, horizontal gradients) and the border colour statistics of an image. */
async function facts(file: string): Promise<ImageFacts> {
  const img = openImage(file).rotate();
  const meta = await img.metadata();
  const { data } = await openImage(file).rotate().greyscale().resize(9, 8, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  let hash = 0n;
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) hash = (hash << 1n) | (data[y * 9 + x] > data[y * 9 + x + 1] ? 1n : 0n);
  const small = await openImage(file).rotate().removeAlpha().resize(32, 32, { fit: 'fill' }).raw().toBuffer();
  const px: number[][] = [];
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) if (y < 2 || y > 29 || x < 2 || x > 29) px.push([small[(y * 32 + x) * 3], small[(y * 32 + x) * 3 + 1], small[(y * 32 + x) * 3 + 2]]);
  const mean = [0, 1, 2].map((c) => px.reduce((a, p) => a + p[c], 0) / px.length) as [number, number, number];
  const std = Math.sqrt(px.reduce((a, p) => a + (p[0] - mean[0]) ** 2 + (p[1] - mean[1]) ** 2 + (p[2] - mean[2]) ** 2, 0) / (3 * px.length));
  const w = meta.orientation && meta.orientation >= 5 ? meta.height! : meta.width!;
  const h = meta.orientation && meta.orientation >= 5 ? meta.width! : meta.height!;
  return { w, h, hash, border: { mean, std } };
}

const hamming = (a: bigint, b: bigint) => { let x = a ^ b, n = 0; while (x) { n += Number(x & 1n); x >>= 1n; } return n; };

const ASYMMETRIC = /\b(left|right|text|logo|letter|letters|writing|words?|sign|asymmetric|asymmetrical|eyepatch|side part|number)\b/i;

export async function checkDataset(root: string, opts: { resolution?: number; captionExtension?: string; batchSize?: number } = {}): Promise<CheckReport> {
  const resolution = opts.resolution ?? 512, ext = opts.captionExtension ?? '.txt', batch = opts.batchSize ?? 1;
  const { subsets, skipped } = scanRepeatFolders(root);
  const buckets = bucketList([resolution, resolution], Math.min(256, resolution), Math.max(1024, resolution), 64);
  const concepts: ConceptReport[] = [];
  for (const sub of subsets) {
    const files = listImages(sub.dir);
    const r: ConceptReport = {
      folder: sub.dirName, repeats: sub.numRepeats, classTokens: sub.classTokens, images: files.length, verdict: countVerdict(files.length),
      missingCaptions: [], emptyCaptions: [], unreadable: [], tiny: [], duplicates: [], aspectRatios: { min: Infinity, max: 0, portrait: 0, landscape: 0, square: 0 },
      buckets: {}, smallBuckets: [], topTags: [], tagsInEveryCaption: [], uniformBackgrounds: 0, similarBackgrounds: false, flipAdvice: '',
    };
    const captions: string[] = [];
    const ok: { file: string; f: ImageFacts }[] = [];
    for (const file of files) {
      const rel = path.basename(file);
      try {
        const c = readCaption(file, { captionExtension: ext, enableWildcard: false });
        if (c.caption === null) r.missingCaptions.push(rel);
        else if (!c.caption.trim()) r.emptyCaptions.push(rel);
        else captions.push(c.caption);
      } catch (e) {
        if (e instanceof CaptionError) r.emptyCaptions.push(`${rel} (${e.message.split(': ').slice(1).join(': ')})`); else throw e;
      }
      try {
        const f = await facts(file);
        ok.push({ file: rel, f });
        if (Math.min(f.w, f.h) < resolution / 2) r.tiny.push(`${rel} (${f.w}x${f.h})`);
        const ar = f.w / f.h;
        r.aspectRatios.min = Math.min(r.aspectRatios.min, ar); r.aspectRatios.max = Math.max(r.aspectRatios.max, ar);
        if (ar > 1.1) r.aspectRatios.landscape++; else if (ar < 0.9) r.aspectRatios.portrait++; else r.aspectRatios.square++;
        const b = placeInBuckets(f.w, f.h, buckets).bucket;
        const key = `${b[0]}x${b[1]}`;
        r.buckets[key] = (r.buckets[key] ?? 0) + sub.numRepeats;
      } catch (e) {
        r.unreadable.push(`${rel} (${(e as Error).message})`);
      }
    }
    if (!ok.length) r.aspectRatios.min = 0;
    for (let i = 0; i < ok.length; i++) for (let j = i + 1; j < ok.length; j++) {
      const d = hamming(ok[i].f.hash, ok[j].f.hash);
      if (d <= 4) r.duplicates.push([ok[i].file, ok[j].file, d]);
    }
    r.smallBuckets = Object.entries(r.buckets).filter(([, n]) => n < batch).map(([k]) => k);
    const freq = tagFrequency(captions);
    r.topTags = Object.entries(freq).sort((a, b) => b[1] - a[1]).slice(0, 15);
    r.tagsInEveryCaption = captions.length ? Object.entries(freq).filter(([, n]) => n === captions.length).map(([t]) => t) : [];
    r.uniformBackgrounds = ok.filter((x) => x.f.border.std < 12).length;
    if (ok.length >= 3) {
      const m = [0, 1, 2].map((c) => ok.reduce((a, x) => a + x.f.border.mean[c], 0) / ok.length);
      const spread = Math.sqrt(ok.reduce((a, x) => a + x.f.border.mean.reduce((s, v, c) => s + (v - m[c]) ** 2, 0), 0) / (3 * ok.length));
      r.similarBackgrounds = spread < 20;
    }
    const asym = captions.some((c) => ASYMMETRIC.test(c));
    r.flipAdvice = asym
      ? 'captions mention text, logos or left/right details: keep flip_aug off so they are not mirrored'
      : files.length < 41 ? 'flip_aug would double the variety of this small set (the subject looks the same mirrored)' : 'flip_aug is optional with this many images';
    concepts.push(r);
  }
  const advice: string[] = [];
  let problems = 0;
  for (const c of concepts) {
    const p = c.missingCaptions.length + c.emptyCaptions.length + c.unreadable.length + c.duplicates.length + (c.verdict === 'too few' ? 1 : 0);
    problems += p;
    if (c.verdict === 'too few') advice.push(`${c.folder}: ${c.images} images; collect at least 10-20 (21-40 recommended, 41-100 ideal)`);
    if (c.missingCaptions.length) advice.push(`${c.folder}: ${c.missingCaptions.length} images have no ${ext} caption; they will train on "${c.classTokens}" only`);
    if (c.duplicates.length) advice.push(`${c.folder}: ${c.duplicates.length} near-duplicate pairs; remove copies so they do not dominate`);
    if (c.similarBackgrounds && c.images >= 3) advice.push(`${c.folder}: the backgrounds look alike (${c.uniformBackgrounds} plain); vary them or describe them in the captions so the LoRA does not learn the background`);
    if (c.smallBuckets.length) advice.push(`${c.folder}: buckets ${c.smallBuckets.join(', ')} hold fewer images than the batch size`);
  }
  if (!concepts.length) advice.push(`${root}: no <repeats>_<name> folders (e.g. 10_mychar/)`);
  return { root, resolution, concepts, skippedFolders: skipped, problems, advice };
}

export function formatCheckReport(r: CheckReport): string {
  const L: string[] = [`dataset ${r.root} (resolution ${r.resolution})`];
  for (const c of r.concepts) {
    L.push('', `${c.folder}: ${c.images} images x ${c.repeats} repeats = ${c.images * c.repeats} per epoch  [${c.verdict}]${c.classTokens ? `  class tokens "${c.classTokens}"` : ''}`);
    L.push(`  captions: ${c.images - c.missingCaptions.length - c.emptyCaptions.length} ok, ${c.missingCaptions.length} missing, ${c.emptyCaptions.length} empty or unreadable`);
    for (const f of [...c.missingCaptions.map((x) => `missing caption: ${x}`), ...c.emptyCaptions.map((x) => `empty caption: ${x}`)].slice(0, 10)) L.push(`    ${f}`);
    if (c.unreadable.length) L.push(`  unreadable images: ${c.unreadable.join('; ')}`);
    if (c.tiny.length) L.push(`  small images (< ${r.resolution / 2} px): ${c.tiny.join(', ')}`);
    L.push(`  aspect ratios: ${c.aspectRatios.min.toFixed(2)}..${c.aspectRatios.max.toFixed(2)} (${c.aspectRatios.portrait} portrait, ${c.aspectRatios.square} square, ${c.aspectRatios.landscape} landscape)`);
    L.push(`  buckets (with repeats): ${Object.entries(c.buckets).map(([k, n]) => `${k}:${n}`).join('  ') || '-'}`);
    if (c.duplicates.length) L.push(`  near-duplicates: ${c.duplicates.map(([a, b, d]) => `${a} ~ ${b} (${d})`).join(', ')}`);
    if (c.topTags.length) L.push(`  top tags: ${c.topTags.map(([t, n]) => `${t}(${n})`).join(', ')}`);
    if (c.tagsInEveryCaption.length) L.push(`  in every caption: ${c.tagsInEveryCaption.join(', ')}`);
    L.push(`  backgrounds: ${c.uniformBackgrounds} plain${c.similarBackgrounds ? ', and alike across images' : ''}`);
    L.push(`  flip: ${c.flipAdvice}`);
  }
  if (r.skippedFolders.length) L.push('', ...r.skippedFolders.map((s) => `skipped ${s}`));
  L.push('', r.advice.length ? 'advice:' : 'no problems found', ...r.advice.map((a) => `  - ${a}`));
  return L.join('\n');
}
