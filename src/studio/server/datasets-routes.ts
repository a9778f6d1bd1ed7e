// Datasets page API: kohya-layout datasets (<dataset>/<repeats>_<concept>/image + .txt caption),
// image upload checked to be a real image, thumbnails, caption edits guarded by a version so a
// concurrent edit is refused instead of lost, tag counts and bulk tag operations, and the same
// `dataset check` report the CLI prints.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { checkDataset } from '../../data/dataset-check.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';
import { HttpError, type Router, readBody, readJson, sendBytes, sendJson } from './http-kit.js';
import { withFileLock } from './file-locks.js';
import { type Workspace, checkSegment } from './workspace.js';

export const UPLOAD_FORMATS: Record<string, string[]> = { png: ['.png'], jpeg: ['.jpg', '.jpeg'], webp: ['.webp'] };
const CAPTION_EXT = '.txt';

export interface DatasetLimits { maxUploadBytes: number }

const versionOf = (text: string | null) => (text === null ? 'none' : createHash('sha1').update(text).digest('hex').slice(0, 16));
const splitTags = (caption: string) => caption.split(',').map((t) => t.trim()).filter(Boolean);

function conceptFolder(name: string, repeats: number): string {
  checkSegment(name, 'concept');
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 1000) throw new HttpError(400, `repeats must be an integer from 1 to 1000, got ${repeats}`);
  if (/^\d+_/.test(name)) throw new HttpError(400, 'give the concept name without the repeats prefix');
  return `${repeats}_${name}`;
}

function listConcepts(dir: string) {
  return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && /^\d+_./.test(e.name)).sort((a, b) => a.name.localeCompare(b.name)).map((e) => {
    const m = /^(\d+)_(.+)$/.exec(e.name)!;
    const images = readdirSync(path.join(dir, e.name)).filter((f) => isImageName(f));
    return { folder: e.name, repeats: Number(m[1]), name: m[2], images: images.length };
  });
}

const isImageName = (f: string) => Object.values(UPLOAD_FORMATS).flat().includes(path.extname(f).toLowerCase()) && !f.startsWith('.');
const captionPath = (image: string) => image.slice(0, -path.extname(image).length) + CAPTION_EXT;
const readCaptionText = (image: string): string | null => (existsSync(captionPath(image)) ? readFileSync(captionPath(image), 'utf8') : null);

export function registerDatasetRoutes(r: Router, ws: Workspace, limits: DatasetLimits): void {
  const datasetDir = (name: string) => {
    const dir = ws.resolve('datasets', checkSegment(name, 'dataset'), 'dataset');
    if (!existsSync(dir)) throw new HttpError(404, `no dataset "${name}"`);
    return dir;
  };
  const conceptDir = (ds: string, folder: string) => {
    const dir = path.join(datasetDir(ds), checkSegment(folder, 'concept folder'));
    if (!existsSync(dir)) throw new HttpError(404, `no concept folder "${folder}" in dataset "${ds}"`);
    return dir;
  };
  const imageFile = (ds: string, folder: string, file: string) => {
    checkSegment(file, 'image');
    if (!isImageName(file)) throw new HttpError(400, `"${file}" does not end in ${Object.values(UPLOAD_FORMATS).flat().join(', ')}`);
    return path.join(conceptDir(ds, folder), file);
  };
  /** Every image of a dataset with its caption (and the version a caption edit must quote). */
  const images = (ds: string) => {
    const dir = datasetDir(ds);
    return listConcepts(dir).flatMap((c) => readdirSync(path.join(dir, c.folder)).filter(isImageName).sort().map((file) => {
      const caption = readCaptionText(path.join(dir, c.folder, file));
      return { concept: c.folder, file, caption: caption ?? '', hasCaption: caption !== null, version: versionOf(caption) };
    }));
  };

  r.add('GET', '/api/datasets', (_q, res) => {
    const root = ws.folder('datasets');
    const list = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => ({ name: e.name, path: ws.relative(path.join(root, e.name)), concepts: listConcepts(path.join(root, e.name)) }));
    sendJson(res, 200, { datasets: list });
  });

  r.add('POST', '/api/datasets', async (req, res) => {
    const { name } = await readJson<{ name: string }>(req);
    const dir = ws.resolve('datasets', checkSegment(name, 'dataset'), 'dataset');
    if (existsSync(dir)) throw new HttpError(409, `dataset "${name}" exists already`);
    mkdirSync(dir);
    sendJson(res, 201, { name, path: ws.relative(dir), concepts: [] });
  });

  r.add('POST', '/api/datasets/:ds/concepts', async (req, res, p) => {
    const { name, repeats } = await readJson<{ name: string; repeats: number }>(req);
    const folder = conceptFolder(name, Number(repeats));
    const dir = path.join(datasetDir(p.ds), folder);
    if (existsSync(dir)) throw new HttpError(409, `concept folder "${folder}" exists already`);
    mkdirSync(dir);
    sendJson(res, 201, { folder, name, repeats: Number(repeats), images: 0 });
  });

  r.add('GET', '/api/datasets/:ds/images', (_q, res, p) => sendJson(res, 200, { images: images(p.ds) }));

  r.add('PUT', '/api/datasets/:ds/concepts/:concept/images/:file', async (req, res, p, url) => {
    const file = imageFile(p.ds, p.concept, p.file);
    const overwrite = url.searchParams.get('overwrite') === '1';
    if (existsSync(file) && !overwrite) { req.resume(); throw new HttpError(409, `"${p.file}" exists already; send overwrite=1 to replace it`, { exists: true }); }
    const body = await readBody(req, limits.maxUploadBytes);
    let format: string | undefined;
    try { format = (await sharp(body).metadata()).format; } catch { format = undefined; }
    if (!format || !UPLOAD_FORMATS[format]) throw new HttpError(415, `"${p.file}" is not a PNG, JPEG or WebP image`);
    if (!UPLOAD_FORMATS[format].includes(path.extname(file).toLowerCase())) throw new HttpError(415, `"${p.file}" holds a ${format} image; its extension must be ${UPLOAD_FORMATS[format].join(' or ')}`);
    await sharp(body).stats().catch(() => { throw new HttpError(415, `"${p.file}" is a damaged ${format} image`); });
    // Checked again under the file's lock: of two uploads of one new name, the second is refused.
    await withFileLock(file, async () => {
      if (existsSync(file) && !overwrite) throw new HttpError(409, `"${p.file}" exists already; send overwrite=1 to replace it`, { exists: true });
      await writeBufferAtomic(file, body);
    });
    sendJson(res, 201, { concept: p.concept, file: p.file, bytes: body.length, format });
  });

  r.add('GET', '/api/datasets/:ds/concepts/:concept/images/:file', async (_q, res, p, url) => {
    const file = imageFile(p.ds, p.concept, p.file);
    if (!existsSync(file)) throw new HttpError(404, `no image "${p.file}"`);
    if (url.searchParams.get('thumb')) {
      const png = await sharp(file).rotate().resize(192, 192, { fit: 'inside', withoutEnlargement: false, kernel: 'nearest' }).png().toBuffer();
      sendBytes(res, 'image/png', png);
    } else {
      const ext = path.extname(file).toLowerCase();
      sendBytes(res, ext === '.png' ? 'image/png' : ext === '.webp' ? 'image/webp' : 'image/jpeg', readFileSync(file));
    }
  });

  // Deleting moves the image and its caption into the workspace trash.
  r.add('DELETE', '/api/datasets/:ds/concepts/:concept/images/:file', (_q, res, p) => {
    const file = imageFile(p.ds, p.concept, p.file);
    if (!existsSync(file)) throw new HttpError(404, `no image "${p.file}"`);
    const dest = path.join(ws.folder('trash'), `${Date.now()}-${p.ds}-${p.concept}`);
    mkdirSync(dest, { recursive: true });
    renameSync(file, path.join(dest, p.file));
    if (existsSync(captionPath(file))) renameSync(captionPath(file), path.join(dest, path.basename(captionPath(file))));
    sendJson(res, 200, { trashed: ws.relative(dest) });
  });

  r.add('PUT', '/api/datasets/:ds/concepts/:concept/captions/:file', async (req, res, p) => {
    const file = imageFile(p.ds, p.concept, p.file);
    const body = await readJson<{ text: string; version: string }>(req, 1 << 20);
    if (typeof body.text !== 'string') throw new HttpError(400, 'text must be a string');
    if (typeof body.version !== 'string') throw new HttpError(400, 'version (of the caption the edit started from) is required');
    if (!existsSync(file)) throw new HttpError(404, `no image "${p.file}"`);
    const out = await withFileLock(file, async () => {
      const current = readCaptionText(file);
      if (versionOf(current) !== body.version) throw new HttpError(409, `the caption of "${p.file}" changed since it was loaded`, { caption: current ?? '', version: versionOf(current) });
      await writeBufferAtomic(captionPath(file), Buffer.from(body.text));
      return versionOf(body.text);
    });
    sendJson(res, 200, { file: p.file, caption: body.text, version: out });
  });

  r.add('GET', '/api/datasets/:ds/tags', (_q, res, p) => {
    const counts = new Map<string, number>();
    for (const im of images(p.ds)) for (const t of new Set(splitTags(im.caption))) counts.set(t, (counts.get(t) ?? 0) + 1);
    sendJson(res, 200, { tags: [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([tag, count]) => ({ tag, count })) });
  });

  // Bulk tag operations over every caption of the dataset (or the listed images).
  r.add('POST', '/api/datasets/:ds/tags', async (req, res, p) => {
    const b = await readJson<{ op: string; tag: string; to?: string; position?: number; images?: { concept: string; file: string }[] }>(req);
    if (!['add', 'remove', 'replace', 'move'].includes(b.op)) throw new HttpError(400, `op must be add, remove, replace or move, got "${b.op}"`);
    const tag = typeof b.tag === 'string' ? b.tag.trim() : '';
    if (!tag || tag.includes(',')) throw new HttpError(400, 'tag must be one non-empty tag without commas');
    if (b.op === 'replace' && (typeof b.to !== 'string' || !b.to.trim() || b.to.includes(','))) throw new HttpError(400, 'replace needs "to": one non-empty tag');
    if (b.op === 'move' && !Number.isInteger(b.position)) throw new HttpError(400, 'move needs an integer "position" (0 = first)');
    const selected = b.images ? new Set(b.images.map((i) => `${i.concept}/${i.file}`)) : undefined;
    let changed = 0;
    for (const im of images(p.ds)) {
      if (selected && !selected.has(`${im.concept}/${im.file}`)) continue;
      const file = imageFile(p.ds, im.concept, im.file);
      await withFileLock(file, async () => {
        const before = readCaptionText(file) ?? '';
        let tags = splitTags(before);
        if (b.op === 'add' && !tags.includes(tag)) tags.push(tag);
        if (b.op === 'remove') tags = tags.filter((t) => t !== tag);
        if (b.op === 'replace') tags = [...new Set(tags.map((t) => (t === tag ? b.to!.trim() : t)))];
        if (b.op === 'move' && tags.includes(tag)) { tags = tags.filter((t) => t !== tag); tags.splice(Math.max(0, Math.min(b.position!, tags.length)), 0, tag); }
        const after = tags.join(', ');
        if (after !== splitTags(before).join(', ') || (b.op === 'add' && !existsSync(captionPath(file)))) { await writeBufferAtomic(captionPath(file), Buffer.from(after)); changed++; }
      });
    }
    sendJson(res, 200, { changed });
  });

  r.add('GET', '/api/datasets/:ds/check', async (_q, res, p, url) => {
    const resolution = Number(url.searchParams.get('resolution') ?? 512);
    if (!Number.isInteger(resolution) || resolution < 8 || resolution > 4096) throw new HttpError(400, `resolution must be an integer from 8 to 4096`);
    const report = await checkDataset(datasetDir(p.ds), { resolution, captionExtension: CAPTION_EXT });
    sendJson(res, 200, { report: { ...report, root: ws.relative(report.root) } });
  });

}
