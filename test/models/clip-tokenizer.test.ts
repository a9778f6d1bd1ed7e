// The CLIP tokenizer against ids produced by OpenAI's reference tokenizer.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CLIPTokenizer } from '../../src/models/clip-tokenizer.js';
import { goldenDir } from '../helpers/golden.js';

const clipDir = process.env.SDLORA_CLIP_DIR ?? path.resolve(goldenDir(), '../clip');
const vectors = JSON.parse(readFileSync(path.join(clipDir, 'tokenizer-vectors.json'), 'utf8')) as { bos: number; eos: number; cases: { text: string; ids: number[] }[] };
const tok = CLIPTokenizer.fromBpeFile(path.join(clipDir, 'bpe_simple_vocab_16e6.txt.gz'));

describe('CLIP tokenizer', () => {
  it('has the reference BOS/EOS ids', () => {
    assert.equal(tok.bosId, vectors.bos);
    assert.equal(tok.eosId, vectors.eos);
  });

  for (const c of vectors.cases) {
    it(`tokenizes ${JSON.stringify(c.text)} like the reference`, () => {
      assert.deepEqual([tok.bosId, ...tok.encode(c.text), tok.eosId], c.ids);
    });
  }

  it('pads with EOS to 77 and truncates long prompts, keeping the final EOS', () => {
    const ids = tok.encodePadded('a photo of a cat');
    assert.equal(ids.length, 77);
    assert.deepEqual(ids.slice(0, 7), vectors.cases[0].ids);
    assert.ok(ids.slice(7).every((i) => i === tok.eosId));
    const long = tok.encodePadded('cat '.repeat(100));
    assert.equal(long.length, 77);
    assert.equal(long[76], tok.eosId);
    assert.equal(long[75], tok.encode('cat')[0]);
  });

  it('splits long prompts into 75-token chunks as sd-scripts (150 and 225)', () => {
    const words = Array.from({ length: 100 }, (_, i) => (i % 2 ? 'cat' : 'dog'));
    const body = tok.encode(words.join(' '));
    assert.equal(body.length, 100);
    const chunks = tok.encodeLong(words.join(' '), 150);
    assert.equal(chunks.length, 2);
    for (const ch of chunks) { assert.equal(ch.length, 77); assert.equal(ch[0], tok.bosId); }
    assert.deepEqual(chunks[0].slice(1, 76), body.slice(0, 75));
    assert.deepEqual(chunks[1].slice(1, 26), body.slice(75));
    assert.equal(chunks[1][26], tok.eosId);
    assert.equal(tok.encodeLong('a cat', 225).length, 3);
    // SD 2.x style padding (pad 0): a chunk cut mid-prompt ends with EOS.
    const sd2 = CLIPTokenizer.fromBpeFile(path.join(clipDir, 'bpe_simple_vocab_16e6.txt.gz'), { padId: 0 });
    const c2 = sd2.encodeLong(words.join(' '), 150);
    assert.equal(c2[0][76], sd2.eosId);
    assert.equal(c2[1][76], 0);
    assert.throws(() => tok.encodeLong('x', 100), /75, 150 or 225/);
  });

  it('loads a transformers tokenizer folder (vocab.json + merges.txt) with the same result', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sdlora-tok-'));
    const vocab = Object.fromEntries(tok.encoder);
    const merges = (tok as unknown as { ranks: Map<string, number> }).ranks;
    await writeFile(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
    await writeFile(path.join(dir, 'merges.txt'), `#version: 0.2\n${[...merges.keys()].join('\n')}\n`);
    const t2 = CLIPTokenizer.fromFolder(dir);
    for (const c of vectors.cases) assert.deepEqual([t2.bosId, ...t2.encode(c.text), t2.eosId], c.ids);
  });
});
