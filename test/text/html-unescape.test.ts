// HTML character references against Python's html.unescape (test/fixtures/clip-ftfy/README.md).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { htmlUnescape } from '../../src/text/html-unescape.js';

const file = fileURLToPath(new URL('../fixtures/clip-ftfy/html-unescape.jsonl', import.meta.url));
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as [string, string]);

describe('html.unescape', () => {
  it(`decodes all ${rows.length} strings of the fixture as Python does`, () => {
    assert.ok(rows.length > 1000, `${file}: expected over a thousand rows, found ${rows.length}`);
    const wrong = rows.filter(([input, expected]) => htmlUnescape(input) !== expected);
    assert.deepEqual(wrong.slice(0, 5).map(([input, expected]) => ({ input, expected, got: htmlUnescape(input) })), [], `${wrong.length} of ${rows.length} differ`);
  });

  // Rules the fixture's strings rely on, spelled out (expected values from CPython 3.11's html.unescape).
  it('takes the longest legacy name without a semicolon, redirects C1 numbers and drops noncharacters', () => {
    assert.equal(htmlUnescape('&ampx &notin &notit;'), '&x ¬in ¬it;');
    assert.equal(htmlUnescape('&#150;&#0;&#xD800;&#x110000;'), '\u2013\ufffd\ufffd\ufffd');
    assert.equal(htmlUnescape('a&#1;b&#xFFFE;c&#x1FFFF;d'), 'abcd');
  });
});
