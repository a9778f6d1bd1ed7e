// `node:fs` for the page, over the in-memory file system of vfs.ts. Only what the engine, loaders,
// trainer and savers call is here; anything else fails loudly instead of doing nothing.
import { abs, children, entries, fileSize, fsError, getFile, mkdirp, parentOf, putFile, readSync } from './vfs.js';

type Data = string | Uint8Array | ArrayBufferView;
const enc = new TextEncoder();
const dec = new TextDecoder();

function toBytes(d: Data): Uint8Array {
  if (typeof d === 'string') return enc.encode(d);
  if (d instanceof Uint8Array) return d.slice();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
}

function encodingOf(o: unknown): string | undefined {
  return typeof o === 'string' ? o : (o as { encoding?: string } | undefined)?.encoding;
}

export class Stats {
  constructor(readonly size: number, private dir: boolean, readonly mtimeMs: number) {}
  get mtime(): Date { return new Date(this.mtimeMs); }
  isFile(): boolean { return !this.dir; }
  isDirectory(): boolean { return this.dir; }
  isSymbolicLink(): boolean { return false; }
}

export class Dirent {
  constructor(readonly name: string, readonly parentPath: string, private dir: boolean) {}
  get path(): string { return this.parentPath; }
  isFile(): boolean { return !this.dir; }
  isDirectory(): boolean { return this.dir; }
  isSymbolicLink(): boolean { return false; }
}

export function existsSync(p: string | URL): boolean {
  return entries.has(abs(p));
}

export function statSync(p: string | URL, o?: { throwIfNoEntry?: boolean }): Stats | undefined {
  const e = entries.get(abs(p));
  if (!e) {
    if (o?.throwIfNoEntry === false) return undefined;
    throw fsError('ENOENT', 'stat', abs(p));
  }
  return new Stats(e.kind === 'file' ? fileSize(e.data) : 0, e.kind === 'dir', e.mtime);
}
export const lstatSync = statSync;

export function readFileSync(p: string | URL, o?: string | { encoding?: string }): any {
  const d = getFile(String(p instanceof URL ? p.pathname : p), 'open');
  const bytes = readSync(d);
  const e = encodingOf(o);
  // A fresh copy, as in Node: a caller writing into the result must not change the file.
  if (!e) return d instanceof Uint8Array ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return e === 'latin1' ? Buffer.from(bytes).toString('latin1') : dec.decode(bytes);
}

export function writeFileSync(p: string, data: Data): void {
  if (entries.get(abs(p))?.kind === 'dir') throw fsError('EISDIR', 'open', abs(p));
  if (!entries.has(parentOf(abs(p)))) throw fsError('ENOENT', 'open', abs(p));
  putFile(p, toBytes(data));
}

export function appendFileSync(p: string, data: Data): void {
  const a = abs(p);
  const old = entries.has(a) ? readSync(getFile(a, 'open')) : new Uint8Array(0);
  const add = toBytes(data);
  const out = new Uint8Array(old.length + add.length);
  out.set(old);
  out.set(add, old.length);
  writeFileSync(a, out);
}

export function mkdirSync(p: string, o?: { recursive?: boolean }): string | undefined {
  const a = abs(p);
  if (o?.recursive) { const had = entries.has(a); mkdirp(a); return had ? undefined : a; }
  if (entries.has(a)) throw fsError('EEXIST', 'mkdir', a);
  if (entries.get(parentOf(a))?.kind !== 'dir') throw fsError('ENOENT', 'mkdir', a);
  entries.set(a, { kind: 'dir', mtime: Date.now() });
  return undefined;
}

export function readdirSync(p: string, o?: { withFileTypes?: boolean }): any[] {
  const a = abs(p);
  const e = entries.get(a);
  if (!e) throw fsError('ENOENT', 'scandir', a);
  if (e.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', a);
  const names = children(a);
  if (!o?.withFileTypes) return names;
  return names.map((n) => new Dirent(n, a, entries.get(a === '/' ? `/${n}` : `${a}/${n}`)!.kind === 'dir'));
}

export function rmSync(p: string, o?: { recursive?: boolean; force?: boolean }): void {
  const a = abs(p);
  const e = entries.get(a);
  if (!e) { if (o?.force) return; throw fsError('ENOENT', 'rm', a); }
  if (e.kind === 'dir') {
    if (!o?.recursive && children(a).length) throw fsError('ENOTEMPTY', 'rm', a);
    for (const k of [...entries.keys()]) if (k.startsWith(`${a}/`)) entries.delete(k);
  }
  entries.delete(a);
}
export const unlinkSync = (p: string) => rmSync(p);

export function renameSync(from: string, to: string): void {
  const a = abs(from), b = abs(to);
  const e = entries.get(a);
  if (!e) throw fsError('ENOENT', 'rename', a);
  if (e.kind === 'dir') {
    for (const [k, v] of [...entries.entries()]) if (k.startsWith(`${a}/`)) { entries.delete(k); entries.set(b + k.slice(a.length), v); }
  }
  entries.delete(a);
  mkdirp(parentOf(b));
  entries.set(b, e);
}

export function realpathSync(p: string): string {
  if (!entries.has(abs(p))) throw fsError('ENOENT', 'realpath', abs(p));
  return abs(p);
}

export function statfsSync(): never {
  // No free-space figure exists for memory; callers treat a throw as "unknown".
  throw new Error('statfs: the page keeps files in memory');
}

export function createWriteStream(p: string): never {
  throw new Error(`createWriteStream(${p}): streams to files are not available in the page`);
}

export function openSync(): never {
  throw new Error('openSync: use the promise API in the page');
}

export default { existsSync, statSync, lstatSync, readFileSync, writeFileSync, appendFileSync, mkdirSync, readdirSync, rmSync, unlinkSync, renameSync, realpathSync, statfsSync, createWriteStream, Stats, Dirent };
