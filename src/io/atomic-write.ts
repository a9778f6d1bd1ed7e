// Writes that never leave a half-written file behind: write a temp file beside the target,
// fsync it, then rename over the target (atomic on POSIX file systems).
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(target: string, write: (fh: import('node:fs/promises').FileHandle) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await write(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Writes a whole buffer atomically. */
export function writeBufferAtomic(target: string, data: Uint8Array): Promise<void> {
  return writeFileAtomic(target, async (fh) => { await fh.write(data); });
}
