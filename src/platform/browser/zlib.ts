// `node:zlib` for the page: synchronous deflate/inflate (PNG chunks, gzipped tokenizer files) with
// fflate, since the browser's CompressionStream is asynchronous only.
import { deflateSync as fDeflate, gunzipSync as fGunzip, inflateSync as fInflate, unzlibSync, zlibSync } from 'fflate';

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.length);
// Node's deflateSync/inflateSync speak the zlib format (2-byte header, adler32), as PNG needs.
export const deflateSync = (d: Uint8Array, o?: { level?: number }): Buffer => buf(zlibSync(d, { level: (o?.level ?? 6) as 6 }));
export const inflateSync = (d: Uint8Array): Buffer => buf(unzlibSync(d));
export const deflateRawSync = (d: Uint8Array): Buffer => buf(fDeflate(d));
export const inflateRawSync = (d: Uint8Array): Buffer => buf(fInflate(d));
export const gunzipSync = (d: Uint8Array): Buffer => buf(fGunzip(d));
export default { deflateSync, inflateSync, deflateRawSync, inflateRawSync, gunzipSync };
