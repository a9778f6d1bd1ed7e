// Trained LoRAs kept in the origin private file system, so they survive a reload of the page; on
// start they come back into the engine's file system as File objects (read on demand).
import { putFile } from '../../src/platform/browser/vfs.js';

const DIR = 'loras';

async function loraDir(): Promise<FileSystemDirectoryHandle | null> {
  const storage = (navigator as Navigator & { storage?: StorageManager }).storage;
  if (!storage?.getDirectory) return null;
  return (await storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
}

/** Copies a finished LoRA into OPFS; returns false (and the page says so) where OPFS is missing. */
export async function keepLoRA(name: string, bytes: Uint8Array): Promise<boolean> {
  const dir = await loraDir().catch(() => null);
  if (!dir) return false;
  const fh = await dir.getFileHandle(name, { create: true });
  const w = await fh.createWritable();
  await w.write(bytes as BufferSource);
  await w.close();
  return true;
}

/** LoRAs saved by earlier visits, placed at /opfs/loras/<name> in the engine's file system. */
export async function restoreLoRAs(): Promise<string[]> {
  const dir = await loraDir().catch(() => null);
  if (!dir) return [];
  const out: string[] = [];
  for await (const [name, h] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (h.kind !== 'file' || !name.endsWith('.safetensors')) continue;
    const p = `/opfs/${DIR}/${name}`;
    putFile(p, await (h as FileSystemFileHandle).getFile());
    out.push(p);
  }
  return out.sort();
}
