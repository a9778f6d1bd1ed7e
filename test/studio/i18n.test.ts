// The studio's texts: English and Japanese catalogues hold the same keys, every key the
// components ask for exists, and the keys built at run time (pages, statuses, verdicts, presets,
// bulk operations) exist for every value they take.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { PRESETS } from '../../src/studio/server/train-routes.js';

const UI = path.join(import.meta.dirname, '../../src/studio/ui');
const en = JSON.parse(readFileSync(path.join(UI, 'i18n/en.json'), 'utf8')) as Record<string, string>;
const ja = JSON.parse(readFileSync(path.join(UI, 'i18n/ja.json'), 'utf8')) as Record<string, string>;

it('both catalogues have the same keys, all translated', () => {
  assert.deepEqual(Object.keys(ja).sort(), Object.keys(en).sort());
  for (const [k, v] of Object.entries(ja)) {
    assert.ok(v.trim(), k);
    assert.deepEqual(v.match(/\{\w+\}/g)?.sort() ?? [], en[k].match(/\{\w+\}/g)?.sort() ?? [], `placeholders of ${k}`);
  }
});

it('every text the components use is in the catalogue', () => {
  const sources = readdirSync(UI, { recursive: true }).map(String).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(path.join(UI, f), 'utf8')).join('\n');
  const used = [...sources.matchAll(/\bt\('([\w.\- ]+)'/g)].map((m) => m[1]);
  assert.ok(used.length > 80);
  for (const k of used) assert.ok(k in en, `missing text "${k}"`);
  const dynamic: [string, string[]][] = [
    ['nav', ['datasets', 'train', 'jobs', 'library', 'generate']],
    ['status', ['queued', 'running', 'stopping', 'done', 'failed', 'cancelled', 'stopped']],
    ['verdict', ['too few', 'minimum', 'recommended', 'ideal', 'more than needed']],
    ['preset', PRESETS.map((p) => p.id)],
    ['datasets.bulk', ['add', 'remove', 'replace', 'move']],
  ];
  for (const [prefix, values] of dynamic) for (const v of values) assert.ok(`${prefix}.${v}` in en, `missing text "${prefix}.${v}"`);
});
