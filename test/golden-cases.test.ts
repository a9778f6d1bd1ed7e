// Every golden case folder is recognised, and every kind not supported yet is reported as a
// `todo` here (its real tests, where written, run as `todo` in their own files too).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allGoldenCases } from './helpers/golden.js';
import { UNSUPPORTED } from './helpers/unsupported-cases.js';

describe('golden cases', () => {
  const { cases, unknown } = allGoldenCases();
  it('every case folder is of a known kind', () => {
    assert.deepEqual(unknown, [], `folders whose files match no known case kind: ${unknown.join(', ')}`);
    assert.ok(cases.length > 0);
  });
  for (const c of cases) {
    const reason = UNSUPPORTED[c.kind];
    if (reason) it(`${c.name} (${c.kind}) is supported`, { todo: reason }, () => { throw new Error(`${c.kind} is not supported yet`); });
  }
});
