// The studio's workspace folder and the one rule every file access goes through: a name from a
// request resolves inside the workspace or the request fails with 400 (no "..", no absolute
// paths, no symlink escapes).
import { mkdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { HttpError } from './http-kit.js';

export const WORKSPACE_FOLDERS = ['datasets', 'loras', 'generated', 'trash', 'jobs', 'tmp'] as const;
export type WorkspaceFolder = (typeof WORKSPACE_FOLDERS)[number];

/** One path segment: a dataset, concept, image or LoRA name. Refuses separators, "..", control characters. */
export function checkSegment(name: string, what: string): string {
  if (typeof name !== 'string' || !name || name === '.' || name === '..' || /[/\\\0-\x1f]/.test(name) || name.length > 200) {
    throw new HttpError(400, `${what} "${String(name).slice(0, 80)}" is not a plain name inside the workspace`);
  }
  return name;
}

export class Workspace {
  readonly root: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.root = realpathSync(dir);
    for (const f of WORKSPACE_FOLDERS) mkdirSync(path.join(this.root, f), { recursive: true });
  }

  folder(f: WorkspaceFolder): string { return path.join(this.root, f); }

  /** `rel` ('/'-separated, relative) under folder `f`; 400 when it would leave that folder. */
  resolve(f: WorkspaceFolder, rel: string, what = 'path'): string {
    if (typeof rel !== 'string' || !rel || path.isAbsolute(rel) || rel.includes('\0') || rel.includes('\\')) throw new HttpError(400, `${what} "${String(rel).slice(0, 80)}" is not a relative path inside the workspace`);
    const parts = rel.split('/');
    if (parts.some((p) => p === '..' || p === '' || p === '.')) throw new HttpError(400, `${what} "${rel.slice(0, 80)}" leaves the workspace`);
    const base = this.folder(f);
    const full = path.resolve(base, ...parts);
    if (!full.startsWith(base + path.sep)) throw new HttpError(400, `${what} "${rel.slice(0, 80)}" leaves the workspace`);
    // A symlink inside the workspace must not lead out of it.
    try {
      const real = realpathSync(full);
      if (real !== base && !real.startsWith(base + path.sep)) throw new HttpError(400, `${what} "${rel.slice(0, 80)}" leads out of the workspace`);
    } catch (e) { if (e instanceof HttpError) throw e; }
    return full;
  }

  /** Workspace-relative form of an absolute path inside it (what the API returns). */
  relative(full: string): string { return path.relative(this.root, full).split(path.sep).join('/'); }
}
