// The safetensors format: u64 little-endian header length, a JSON header, then raw tensor bytes.
// Reading opens the file and parses only the header; each tensor is read on demand with a
// positioned read, so multi-GB checkpoints are streamed tensor by tensor, never loaded whole.
import { type FileHandle, open, stat } from 'node:fs/promises';
import { type DType, bf16ToF32, f32ToF16, widenHalves } from '../engine/dtype.js';
import { Tensor, tensor } from '../engine/tensor.js';
import { cpuBackend } from '../engine/cpu/cpu-backend.js';
import { writeFileAtomic } from './atomic-write.js';

export const SAFETENSORS_DTYPES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8, F8_E4M3: 1, F8_E5M2: 1,
} as const;
export type SafeDType = keyof typeof SAFETENSORS_DTYPES;

/** Headers above this size are refused (the reference implementation uses 100 MB). */
const MAX_HEADER = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  /** Byte range relative to the start of the data section. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

export function parseHeader(file: string, json: string, dataBytes: number): { entries: TensorEntry[]; metadata: Record<string, string> } {
  let raw: unknown;
  try { raw = JSON.parse(json); } catch (e) { throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`); }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new SafetensorsError(file, 'header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(file, '__metadata__ is not an object');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') throw new SafetensorsError(file, `__metadata__ value of "${k}" is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw new SafetensorsError(file, `tensor "${name}": entry is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in SAFETENSORS_DTYPES)) throw new SafetensorsError(file, `tensor "${name}": unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(file, `tensor "${name}": bad shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new SafetensorsError(file, `tensor "${name}": bad data_offsets ${JSON.stringify(off)}`);
    }
    const dtype = e.dtype as SafeDType;
    const shape = e.shape as number[];
    const want = shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[dtype];
    if (off[1] - off[0] !== want) throw new SafetensorsError(file, `tensor "${name}": data_offsets span ${off[1] - off[0]} bytes but ${dtype} [${shape}] needs ${want}`);
    if (off[1] > dataBytes) throw new SafetensorsError(file, `tensor "${name}": data_offsets [${off}] run past the end of the data (${dataBytes} bytes); the file is truncated or the offsets are out of range`);
    entries.push({ name, dtype, shape, begin: off[0], end: off[1] });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) throw new SafetensorsError(file, `tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap`);
  }
  return { entries, metadata };
}

/** Decodes raw little-endian bytes into an engine array: floats to f32 (or f16 kept as f16), integers to i32. */
export function decode(file: string, e: TensorEntry, bytes: Uint8Array, keepF16 = false): { data: Float32Array | Int32Array | Uint16Array; dtype: DType } {
  const n = (e.end - e.begin) / SAFETENSORS_DTYPES[e.dtype];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = (g: (i: number) => number) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = g(i); return a; };
  const int = (g: (i: number) => number) => { const a = new Int32Array(n); for (let i = 0; i < n; i++) a[i] = g(i); return a; };
  switch (e.dtype) {
    case 'F32': return { data: f((i) => dv.getFloat32(i * 4, true)), dtype: 'f32' };
    case 'F64': return { data: f((i) => dv.getFloat64(i * 8, true)), dtype: 'f32' };
    case 'F16': {
      const a = new Uint16Array(n);
      for (let i = 0; i < n; i++) a[i] = dv.getUint16(i * 2, true);
      return keepF16 ? { data: a, dtype: 'f16' } : { data: widenHalves(a, new Float32Array(n)), dtype: 'f32' };
    }
    case 'BF16': return { data: f((i) => bf16ToF32(dv.getUint16(i * 2, true))), dtype: 'f32' };
    case 'I32': return { data: int((i) => dv.getInt32(i * 4, true)), dtype: 'i32' };
    case 'I16': return { data: int((i) => dv.getInt16(i * 2, true)), dtype: 'i32' };
    case 'I8': return { data: int((i) => dv.getInt8(i)), dtype: 'i32' };
    case 'U8': case 'BOOL': return { data: int((i) => dv.getUint8(i)), dtype: 'i32' };
    case 'U16': return { data: int((i) => dv.getUint16(i * 2, true)), dtype: 'i32' };
    case 'I64': case 'U64': case 'U32':
      return {
        data: int((i) => {
          const v = e.dtype === 'U32' ? dv.getUint32(i * 4, true) : Number(e.dtype === 'I64' ? dv.getBigInt64(i * 8, true) : dv.getBigUint64(i * 8, true));
          if (v > 2147483647 || v < -2147483648) throw new SafetensorsError(file, `tensor "${e.name}": value ${v} does not fit in i32`);
          return v;
        }),
        dtype: 'i32',
      };
    default:
      throw new SafetensorsError(file, `tensor "${e.name}": ${e.dtype} cannot be converted for compute`);
  }
}

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fh: FileHandle,
    private dataStart: number,
    readonly metadata: Record<string, string>,
    readonly entries: Map<string, TensorEntry>,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const size = (await stat(path)).size;
    if (size < 8) throw new SafetensorsError(path, `file is ${size} bytes, too short for a safetensors header`);
    const fh = await open(path, 'r');
    try {
      const lenBuf = Buffer.alloc(8);
      await fh.read(lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER)) throw new SafetensorsError(path, `header length ${n} is larger than the ${MAX_HEADER}-byte limit`);
      if (n > BigInt(size - 8)) throw new SafetensorsError(path, `header length ${n} runs past the end of the ${size}-byte file`);
      const hb = Buffer.alloc(Number(n));
      await fh.read(hb, 0, hb.length, 8);
      const { entries, metadata } = parseHeader(path, hb.toString('utf8'), size - 8 - Number(n));
      return new SafetensorsFile(path, fh, 8 + Number(n), metadata, new Map(entries.map((e) => [e.name, e])));
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  keys(): string[] { return [...this.entries.keys()]; }

  private entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named "${name}"`);
    return e;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const buf = Buffer.alloc(e.end - e.begin);
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.dataStart + e.begin);
    if (bytesRead !== buf.length) throw new SafetensorsError(this.path, `tensor "${name}" is truncated`);
    return buf;
  }

  /** The tensor as f32 (float types) or i32 (integer types); `keepF16` leaves F16 as f16 storage. */
  async read(name: string, opts: { keepF16?: boolean } = {}): Promise<Tensor> {
    const e = this.entry(name);
    const { data, dtype } = decode(this.path, e, await this.readBytes(name), opts.keepF16);
    return tensor(data, e.shape, dtype);
  }

  async readAll(): Promise<Record<string, Tensor>> {
    const out: Record<string, Tensor> = {};
    for (const k of this.keys()) out[k] = await this.read(k);
    return out;
  }

  close(): Promise<void> { return this.fh.close(); }
}

/** Reads every tensor and the metadata of a file. */
export async function loadSafetensors(path: string): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  const f = await SafetensorsFile.open(path);
  try { return { tensors: await f.readAll(), metadata: f.metadata }; } finally { await f.close(); }
}

export type SaveDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';

function encode(t: Tensor, dtype: SaveDType): Uint8Array {
  const src = t.dtype === 'f16' ? t.to('f32').dataSync() : t.dataSync();
  const n = src.length;
  const size = dtype === 'I64' ? 8 : dtype === 'F32' || dtype === 'I32' ? 4 : 2;
  const out = new Uint8Array(n * size);
  const dv = new DataView(out.buffer);
  if (dtype === 'F16' && t.dtype === 'f16') { const raw = t.dataSync(); for (let i = 0; i < n; i++) dv.setUint16(i * 2, raw[i], true); return out; }
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) {
    const v = src[i];
    switch (dtype) {
      case 'F32': dv.setFloat32(i * 4, v, true); break;
      case 'I32': dv.setInt32(i * 4, v, true); break;
      case 'I64': dv.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
      case 'F16': dv.setUint16(i * 2, f32ToF16(v), true); break;
      case 'BF16': {
        f32[0] = v;
        const x = u32[0];
        // round to nearest even on the dropped 16 bits (NaN kept as NaN)
        const r = Number.isNaN(v) ? 0x7fc0 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
        dv.setUint16(i * 2, r, true);
        break;
      }
    }
  }
  return out;
}

/** The header and data buffers of a safetensors file, tensors in the given order. */
export function serializeSafetensors(
  tensors: Record<string, Tensor> | [string, Tensor][], metadata: Record<string, string> = {}, dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): { header: Buffer; data: Uint8Array[] } {
  const list = Array.isArray(tensors) ? tensors : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of list) {
    const dt: SaveDType = t.dtype === 'i32' ? 'I32' : dtype;
    const b = encode(t, dt);
    header[name] = { dtype: dt, shape: [...t.shape], data_offsets: [off, off + b.length] };
    blobs.push(b);
    off += b.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return { header: Buffer.concat([len, hb]), data: blobs };
}

/** The same list with device tensors (webgpu) read back to the cpu backend, order kept. */
export async function onHost(tensors: Record<string, Tensor> | [string, Tensor][]): Promise<[string, Tensor][]> {
  const list = Array.isArray(tensors) ? tensors : Object.entries(tensors);
  return Promise.all(list.map(async ([k, t]): Promise<[string, Tensor]> => [k, t.backend.readSync || t.host ? t : await t.toBackendAsync(cpuBackend)]));
}

/**
 * Writes tensors in the given order with string metadata, atomically. `dtype` picks the float
 * storage type; integer tensors are written as I32.
 */
export async function saveSafetensors(
  path: string, tensors: Record<string, Tensor> | [string, Tensor][], metadata: Record<string, string> = {}, dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): Promise<void> {
  const { header, data } = serializeSafetensors(await onHost(tensors), metadata, dtype);
  await writeFileAtomic(path, async (fh) => {
    await fh.write(header);
    for (const b of data) await fh.write(b);
  });
}
