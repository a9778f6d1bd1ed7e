// ftfy.fix_text against the output of python-ftfy 6.1.1 itself (test/fixtures/clip-ftfy/README.md).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fixText } from '../../src/text/ftfy.js';

const file = fileURLToPath(new URL('../fixtures/clip-ftfy/fix-text.jsonl', import.meta.url));
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as [string, string]);

describe('ftfy fix_text', () => {
  // The examples of ftfy's own documentation come first in the fixture: one test each, for readable failures.
  for (const [input, expected] of rows.slice(0, 20)) {
    it(`fixes ${JSON.stringify(input)} as ftfy 6.1.1 does`, () => {
      assert.equal(fixText(input), expected);
    });
  }

  it(`fixes all ${rows.length} strings of the fixture as ftfy 6.1.1 does`, () => {
    assert.ok(rows.length > 3000, `${file}: expected thousands of rows, found ${rows.length}`);
    const wrong = rows.filter(([input, expected]) => fixText(input) !== expected);
    assert.deepEqual(wrong.slice(0, 5).map(([input, expected]) => ({ input, expected, got: fixText(input) })), [], `${wrong.length} of ${rows.length} differ`);
  });

  it('leaves plain ASCII prompts alone', () => {
    const text = 'masterpiece, best quality, 1girl, (smile:1.2), <lora:style:0.8>, looking at viewer';
    assert.equal(fixText(text), text);
  });
});
