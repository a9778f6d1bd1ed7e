// The page's file system: what the engine's Node code reads and writes through `node:fs` lands
// here. Files are bytes in memory or File/Blob objects the user picked (read on demand, never
// copied whole), so the trainer, loaders and savers run unchanged; the page lists and downloads
// what was written. Paths are POSIX and absolute ("/models/x.safetensors"), cwd is "/".
import { normalize } from './path.js';

export type Entry = { kind: 'dir'; mtime: number } | { kind: 'file'; data: Uint8Array | Blob; mtime: number };

export const entries = new Map<string, Entry>([['/', { kind: 'dir', mtime: Date.now() }]]);

/** Node-style error with an errno code, so callers' `code === 'ENOENT'` checks keep working. */
export function fsError(code: string, syscall: string, p: string): Error {
  const text: Record<string, string> = { ENOENT: 'no such file or directory', EEXIST: 'file already exists', EISDIR: 'illegal operation on a directory', ENOTDIR: 'not a directory', ENOTEMPTY: 'directory not empty' };
  return Object.assign(new Error(`${code}: ${text[code] ?? code}, ${syscall} '${p}'`), { code, syscall, path: p });
}

export function abs(p: string | URL): string {
  const s = typeof p === 'string' ? p : p.pathname;
  return normalize(s.startsWith('/') ? s : `/${s}`).replace(/(.)\/$/, '$1');
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

export function mkdirp(p: string): void {
  const a = abs(p);
  if (entries.get(a)?.kind === 'dir') return;
  if (entries.get(a)?.kind === 'file') throw fsError('EEXIST', 'mkdir', a);
  mkdirp(parentOf(a));
  entries.set(a, { kind: 'dir', mtime: Date.now() });
}

/** Places bytes or a picked File at `p`, creating its folders. */
export function putFile(p: string, data: Uint8Array | Blob): void {
  const a = abs(p);
  mkdirp(parentOf(a));
  entries.set(a, { kind: 'file', data, mtime: Date.now() });
}

export function getFile(p: string, syscall: string): Uint8Array | Blob {
  const a = abs(p);
  const e = entries.get(a);
  if (!e) throw fsError('ENOENT', syscall, a);
  if (e.kind === 'dir') throw fsError('EISDIR', syscall, a);
  return e.data;
}

export function fileSize(data: Uint8Array | Blob): number {
  return data instanceof Uint8Array ? data.length : data.size;
}

/**
 * How picked files (Blobs) were read: in ranges (Blob.slice, what a safetensors checkpoint gets)
 * or whole. The page reports it (op 'io-stats'), so tests can see a checkpoint is never copied whole.
 */
export const blobReads = { ranges: 0, rangeBytes: 0, largestRange: 0, whole: 0, wholeBytes: 0 };

/** Whole file as bytes; a Blob is read synchronously, which only dedicated workers allow. */
export function readSync(data: Uint8Array | Blob): Uint8Array {
  if (data instanceof Uint8Array) return data;
  blobReads.whole++;
  blobReads.wholeBytes += data.size;
  const R = (globalThis as { FileReaderSync?: new () => { readAsArrayBuffer(b: Blob): ArrayBuffer } }).FileReaderSync;
  if (!R) throw new Error('reading a picked file synchronously needs a Web Worker (FileReaderSync); run the engine in its worker');
  return new Uint8Array(new R().readAsArrayBuffer(data));
}

/** Names directly inside a folder. */
export function children(p: string): string[] {
  const a = abs(p);
  const pre = a === '/' ? '/' : `${a}/`;
  const out: string[] = [];
  for (const k of entries.keys()) if (k !== a && k.startsWith(pre) && !k.slice(pre.length).includes('/')) out.push(k.slice(pre.length));
  return out.sort();
}

/** Every file under a folder, for listing outputs in the page. */
export function filesUnder(p: string): string[] {
  const a = abs(p);
  const pre = a === '/' ? '/' : `${a}/`;
  return [...entries.entries()].filter(([k, e]) => e.kind === 'file' && k.startsWith(pre)).map(([k]) => k).sort();
}
