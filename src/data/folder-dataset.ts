// Reading images and captions from disk: the kohya `<repeats>_<name>` folder rule, image
// discovery, and caption pairing (sd-scripts §1.2-1.4).
import { type Dirent, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SubsetSpec } from './dataset-spec.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp'];

/**
 * What a directory entry is once symbolic links are followed (people link concept folders and
 * images into a dataset instead of copying them); 'broken' for a link to nothing.
 */
function kindOf(dir: string, e: Dirent): 'dir' | 'file' | 'broken' | 'other' {
  if (!e.isSymbolicLink()) return e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
  try {
    const st = statSync(path.join(dir, e.name));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'broken';
  }
}

export interface FolderSubset {
  dirName: string;
  numRepeats: number;
  classTokens: string;
}

/** The `<repeats>_<name>` subfolders of a kohya train/reg folder; others are reported as skipped. */
export function scanRepeatFolders(root: string): { subsets: (FolderSubset & { dir: string })[]; skipped: string[] } {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root}: not a folder`);
  const subsets: (FolderSubset & { dir: string })[] = [];
  const skipped: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const kind = kindOf(root, e);
    if (kind === 'broken') { skipped.push(`${path.join(root, e.name)}: ignored, a symbolic link to something that does not exist`); continue; }
    if (kind !== 'dir') continue;
    const [first, ...rest] = e.name.split('_');
    const n = /^-?\d+$/.test(first) ? Number(first) : NaN;
    if (!Number.isInteger(n) || n < 1) { skipped.push(`${path.join(root, e.name)}: ignored, the folder name does not start with a repeat count like 10_name`); continue; }
    subsets.push({ dir: path.join(root, e.name), dirName: e.name, numRepeats: n, classTokens: rest.join('_') });
  }
  return { subsets, skipped };
}

/** Image files of a folder, symbolic links followed; a broken link is listed so that reading it reports it. */
export function listImages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => ['file', 'broken'].includes(kindOf(dir, e)) && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
    .map((e) => path.join(dir, e.name))
    .sort();
}

/** Caption file candidates for an image: <stem><ext>, then sd-scripts' face-crop name rule. */
export function captionCandidates(image: string, ext: string): string[] {
  const e = ext.startsWith('.') ? ext : `.${ext}`;
  const stem = image.slice(0, image.length - path.extname(image).length);
  const out = [stem + e];
  const parts = stem.split('_');
  if (parts.length >= 5) out.push(parts.slice(0, -4).join('_') + e);
  return out;
}

export class CaptionError extends Error {}

/** The caption of an image (null when it has no caption file). */
export function readCaption(image: string, sub: Pick<SubsetSpec, 'captionExtension' | 'enableWildcard'>): { caption: string | null } {
  const file = captionCandidates(image, sub.captionExtension).find((c) => existsSync(c));
  if (!file) return { caption: null };
  const buf = readFileSync(file);
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(buf); } catch { throw new CaptionError(`${file}: the caption is not valid UTF-8`); }
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (!text.length) throw new CaptionError(`${file}: the caption file is empty`);
  return { caption: sub.enableWildcard ? lines.filter(Boolean).join('\n') : lines[0] };
}
