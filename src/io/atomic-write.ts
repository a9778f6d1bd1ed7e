// Writes that never leave a half-written file behind: write a temp file beside the target,
// fsync it, then rename over the target (atomic on POSIX file systems).
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(target: string, write: (fh: import('node:fs/promises').FileHandle) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    injectedWriteFault(target);
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

let faultsThrown = 0;

/**
 * Tests of a full disk: SDLORA_TEST_FAULT=<CODE>:<path substring>[#times] makes writes to matching
 * targets fail with that errno code (the first `times` of them, all when omitted).
 */
function injectedWriteFault(target: string): void {
  const m = /^([A-Z]+):(.+?)(?:#(\d+))?$/.exec(process.env.SDLORA_TEST_FAULT ?? '');
  if (!m || !target.includes(m[2]) || (m[3] && faultsThrown >= Number(m[3]))) return;
  faultsThrown++;
  throw Object.assign(new Error(`${m[1]}: injected write failure (SDLORA_TEST_FAULT), write '${target}'`), { code: m[1] });
}
