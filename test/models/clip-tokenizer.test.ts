// The CLIP tokenizer against ids produced by OpenAI's reference tokenizer.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CLIPTokenizer } from '../../src/models/clip-tokenizer.js';
import { goldenDir } from '../helpers/golden.js';

const clipDir = process.env.SDLORA_CLIP_DIR ?? path.resolve(goldenDir(), '../clip');
const vectors = JSON.parse(readFileSync(path.join(clipDir, 'tokenizer-vectors.json'), 'utf8')) as { bos: number; eos: number; cases: { text: string; ids: number[] }[] };
const tok = CLIPTokenizer.fromBpeFile(path.join(clipDir, 'bpe_simple_vocab_16e6.txt.gz'));
// Prompts and the ids OpenAI's simple_tokenizer gives them with ftfy 6.1.1 (see the fixture's README).
const promptsFile = fileURLToPath(new URL('../fixtures/clip-ftfy/prompts.jsonl', import.meta.url));
const prompts = readFileSync(promptsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as [string, number[]]);
const idsOf = (text: string) => {
  const row = prompts.find(([t]) => t === text);
  if (!row) throw new Error(`${promptsFile}: no row for ${JSON.stringify(text)}`);
  return row[1];
};

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

  describe('cleans text with ftfy first, as the reference does', () => {
    // Japanese input methods' full-width forms, half-width katakana, mojibake and entities, each as the
    // reference tokenizes it.
    for (const text of ['１girl, ｓｍｉｌｅ', 'ＬＯＵＤ　ＮＯＩＳＥＳ', 'Ｕﾀｰﾝ', 'cafÃ©', 'voilÃ le travail', 'Broken text&hellip; it&#x2019;s ﬂubberiﬁc!', 'P&EACUTE;REZ', '<b>&amp;</b> tag']) {
      it(`tokenizes ${JSON.stringify(text)} like the reference`, () => {
        assert.deepEqual(tok.encode(text), idsOf(text));
      });
    }

    it(`tokenizes all ${prompts.length} prompts of ${path.basename(promptsFile)} like the reference`, () => {
      assert.ok(prompts.length > 2000, `${promptsFile}: expected thousands of prompts, found ${prompts.length}`);
      const wrong = prompts.filter(([text, ids]) => JSON.stringify(tok.encode(text)) !== JSON.stringify(ids));
      assert.deepEqual(wrong.slice(0, 5).map(([text, ids]) => ({ text, ids, got: tok.encode(text) })), [], `${wrong.length} of ${prompts.length} prompts differ`);
    });
  });
});
