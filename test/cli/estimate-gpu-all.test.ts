// README Commands: `estimate --gpu ...|all` tabulates every device the estimator knows
// (src/estimate/gpus.ts): one row each, named as in DEVICES, at one resolution.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEVICES } from '../../src/estimate/gpus.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/sdlora.js');
const estimate = (args: string[]) => execFileSync(process.execPath, [BIN, 'estimate', ...args], { encoding: 'utf8' });

describe('estimate --gpu all', () => {
  it('the README\'s Commands row offers --gpu all', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const row = readme.split('\n').find((l) => l.startsWith('| `estimate '));
    assert.ok(row, 'an estimate row in the Commands table');
    assert.match(row, /--gpu [^`]*\\?\|all\]/);
  });

  it('prints one table row per device of src/estimate/gpus.ts, in its order, and the same rows as JSON', () => {
    assert.ok(DEVICES.length >= 2);
    const text = estimate(['--gpu', 'all', '--resolutions', '512']);
    // Table rows: "| <device> | 512x512 | ...", after the header and its rule.
    const rows = text.split('\n').filter((l) => /^\| .+ \| \d+x\d+ \|/.test(l)).map((l) => l.split('|')[1].trim());
    assert.deepEqual(rows, DEVICES.map((d) => d.name));
    const json = JSON.parse(estimate(['--gpu', 'all', '--resolutions', '512', '--json'])) as { rows: { device: string; resolution: string }[] };
    assert.deepEqual(json.rows.map((r) => r.device), DEVICES.map((d) => d.name));
    assert.ok(json.rows.every((r) => r.resolution === '512x512'));
    // Not the default list: that one names fewer devices.
    const plain = estimate(['--resolutions', '512']).split('\n').filter((l) => /^\| .+ \| \d+x\d+ \|/.test(l));
    assert.ok(plain.length < DEVICES.length, 'the default --gpu is a subset');
  });
});
