// safetensors: round trips, every golden file, and each kind of malformed file.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, writeFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tensor } from '../../src/engine/index.js';
import { writeFileAtomic } from '../../src/io/atomic-write.js';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { goldenDir } from '../helpers/golden.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'sdlora-st-'));

function rawFile(header: object | string, data: Uint8Array, lenOverride?: bigint): Buffer {
  const hb = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(hb.length));
  return Buffer.concat([len, hb, data]);
}

describe('safetensors', () => {
  it('round-trips F32, F16, BF16 and I32 with metadata, in the given order', async () => {
    const p = path.join(tmp, 'rt.safetensors');
    const a = tensor([1, -2.5, 3.25, 1e-3], [2, 2]);
    const ids = tensor([7, -1], [2], 'i32');
    await saveSafetensors(p, [['z.first', a], ['a.second', ids]], { ss_network_dim: '4' }, 'F16');
    const f = await SafetensorsFile.open(p);
    assert.deepEqual(f.keys(), ['z.first', 'a.second']);
    assert.equal(f.entries.get('z.first')!.dtype, 'F16');
    assert.equal(f.metadata.ss_network_dim, '4');
    const back = await f.read('z.first');
    assert.deepEqual([...back.dataSync()].map((v) => Number(v.toFixed(3))), [1, -2.5, 3.25, 0.001]);
    assert.deepEqual([...(await f.read('a.second')).dataSync()], [7, -1]);
    await f.close();
    const buf = await readFile(p);
    assert.equal(Number(buf.readBigUInt64LE(0)) % 8, 0, 'header is padded to 8 bytes');
    for (const dt of ['F32', 'BF16'] as const) {
      await saveSafetensors(p, { w: a }, {}, dt);
      const { tensors } = await loadSafetensors(p);
      const tol = dt === 'F32' ? 0 : 0.02;
      [...tensors.w.dataSync()].forEach((v, i) => assert.ok(Math.abs(v - a.dataSync()[i]) <= tol * Math.abs(a.dataSync()[i])));
    }
  });

  it('reads I64 and F64 and refuses I64 values beyond i32', async () => {
    const data = Buffer.alloc(24);
    data.writeBigInt64LE(5n, 0); data.writeBigInt64LE(-3n, 8); data.writeDoubleLE(0.5, 16);
    const p = path.join(tmp, 'i64.safetensors');
    await writeFile(p, rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, d: { dtype: 'F64', shape: [1], data_offsets: [16, 24] } }, data));
    const { tensors } = await loadSafetensors(p);
    assert.deepEqual([...tensors.ids.dataSync()], [5, -3]);
    assert.deepEqual([...tensors.d.dataSync()], [0.5]);
    data.writeBigInt64LE(1n << 40n, 0);
    await writeFile(p, rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, data.subarray(0, 16)));
    await assert.rejects(loadSafetensors(p), /does not fit in i32/);
  });

  const bad: [string, Buffer, RegExp][] = [
    ['too short', Buffer.alloc(5), /too short/],
    ['header length past the end', rawFile('{}', new Uint8Array(0), 1000n), /runs past the end/],
    ['header not JSON', rawFile('{"a": ', new Uint8Array(0)), /not valid JSON/],
    ['unknown dtype', rawFile({ a: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown dtype "F12"/],
    ['truncated data', rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /truncated/],
    ['size mismatch', rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16)), /needs 12/],
    ['overlap', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /overlap/],
    ['bad offsets', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8)), /bad data_offsets/],
    ['metadata not strings', rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), /not a string/],
  ];
  for (const [name, buf, re] of bad) {
    it(`rejects a file with ${name}, naming the file`, async () => {
      const p = path.join(tmp, `bad-${name.replace(/\W+/g, '_')}.safetensors`);
      await writeFile(p, buf);
      await assert.rejects(loadSafetensors(p), (e: Error) => re.test(e.message) && e.message.startsWith(p));
    });
  }

  it('does not replace an existing file when a save fails', async () => {
    const p = path.join(tmp, 'keep.safetensors');
    await saveSafetensors(p, { a: tensor([1], [1]) });
    const before = await readFile(p);
    // Fail half way through writing: the old file must survive and the temp file must go.
    await assert.rejects(writeFileAtomic(p, async (fh) => { await fh.write(Buffer.from('partial')); throw new Error('boom'); }), /boom/);
    assert.deepEqual(await readFile(p), before);
    assert.deepEqual((await readdir(tmp)).filter((n) => n.endsWith('.tmp')), []);
  });

  it('loads every file in the golden folder', async () => {
    const dir = goldenDir();
    let count = 0;
    for (const sub of await readdir(dir, { withFileTypes: true })) {
      if (!sub.isDirectory()) continue;
      for (const f of await readdir(path.join(dir, sub.name))) {
        if (!f.endsWith('.safetensors')) continue;
        const st = await SafetensorsFile.open(path.join(dir, sub.name, f));
        for (const k of st.keys()) {
          const t = await st.read(k);
          assert.equal(t.size, st.entries.get(k)!.shape.reduce((a, b) => a * b, 1));
        }
        await st.close();
        count++;
      }
    }
    assert.ok(count >= 1, `no safetensors files found in ${dir}`);
  });
});
