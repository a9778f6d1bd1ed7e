// `node:fs/promises` for the page. A FileHandle over a picked File reads only the ranges asked
// for (Blob.slice), so a multi-gigabyte checkpoint is never copied whole into memory.
import * as fs from './fs.js';
import { abs, blobReads, entries, fileSize, fsError, getFile, parentOf, putFile } from './vfs.js';

export class FileHandle {
  private chunks: Uint8Array[] = [];
  constructor(private p: string, private writing: boolean) {}

  async read(buf: Uint8Array, off: number, len: number, pos: number): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    this.flush();
    const d = getFile(this.p, 'read');
    const end = Math.min(fileSize(d), pos + len);
    if (end <= pos) return { bytesRead: 0, buffer: buf };
    if (!(d instanceof Uint8Array)) {
      blobReads.ranges++;
      blobReads.rangeBytes += end - pos;
      blobReads.largestRange = Math.max(blobReads.largestRange, end - pos);
    }
    const part = d instanceof Uint8Array ? d.subarray(pos, end) : new Uint8Array(await d.slice(pos, end).arrayBuffer());
    buf.set(part, off);
    return { bytesRead: part.length, buffer: buf };
  }

  async write(data: Uint8Array | string): Promise<{ bytesWritten: number }> {
    if (!this.writing) throw fsError('EBADF', 'write', this.p);
    const b = typeof data === 'string' ? new TextEncoder().encode(data) : data.slice();
    this.chunks.push(b);
    this.dirty = true;
    return { bytesWritten: b.length };
  }

  async writev(list: Uint8Array[]): Promise<{ bytesWritten: number }> {
    let n = 0;
    for (const b of list) n += (await this.write(b)).bytesWritten;
    return { bytesWritten: n };
  }

  private dirty = false;

  /**
   * Written chunks become the file body, once per sync/close rather than per write (a Blob copies
   * its parts, so rebuilding it on every write would copy the file once per tensor written).
   */
  private flush(): void {
    if (!this.dirty) return;
    putFile(this.p, new Blob(this.chunks as BlobPart[]));
    this.dirty = false;
  }

  async stat(): Promise<fs.Stats> { this.flush(); return fs.statSync(this.p)!; }
  async sync(): Promise<void> { this.flush(); }
  async datasync(): Promise<void> { this.flush(); }
  async close(): Promise<void> { this.flush(); this.chunks = []; }
}

export async function open(p: string, flags = 'r'): Promise<FileHandle> {
  const a = abs(p);
  if (flags.startsWith('w')) {
    if (entries.get(parentOf(a))?.kind !== 'dir') throw fsError('ENOENT', 'open', a);
    putFile(a, new Uint8Array(0));
    return new FileHandle(a, true);
  }
  getFile(a, 'open');
  return new FileHandle(a, false);
}

export async function stat(p: string): Promise<fs.Stats> { return fs.statSync(p)!; }
export async function rename(a: string, b: string): Promise<void> { fs.renameSync(a, b); }
export async function rm(p: string, o?: { recursive?: boolean; force?: boolean }): Promise<void> { fs.rmSync(p, o); }
export async function unlink(p: string): Promise<void> { fs.rmSync(p); }
export async function mkdir(p: string, o?: { recursive?: boolean }): Promise<string | undefined> { return fs.mkdirSync(p, o); }
export async function readdir(p: string, o?: { withFileTypes?: boolean }): Promise<any[]> { return fs.readdirSync(p, o); }
export async function writeFile(p: string, d: Uint8Array | string): Promise<void> { fs.writeFileSync(p, d); }
export async function readFile(p: string, o?: string | { encoding?: string }): Promise<any> {
  const d = getFile(p, 'open');
  if (d instanceof Blob && !o) return Buffer.from(await d.arrayBuffer());
  return fs.readFileSync(p, o);
}

export default { open, stat, rename, rm, unlink, mkdir, readdir, writeFile, readFile };
