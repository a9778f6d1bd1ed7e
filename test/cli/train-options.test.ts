// `sdlora train --options` prints the table of every training option, the one generated from the
// schema (the README copies are compared with it in test/train/option-claims.test.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { optionsMarkdown } from '../../src/train/config.js';
import { OPTIONS } from '../../src/train/config-schema.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/sdlora.js');

it('`sdlora train --options` prints the full option table generated from the schema', () => {
  const r = spawnSync(process.execPath, [cli, 'train', '--options'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), optionsMarkdown());
  for (const s of OPTIONS) assert.ok(r.stdout.includes(`\`${s.key}\``), s.key);
});
