// The README's set-up claims about the test environment: where the golden fixtures are looked up by
// default, the switches that turn a missing WebGPU adapter or Chromium from a skip into a failure,
// what `.ci/run` installs and runs, and package.json's Node version, `bin` entry and test script.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { it } from 'node:test';
import { goldenDir } from './helpers/golden.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const README_JA = readFileSync(path.join(ROOT, 'README-ja.md'), 'utf8');
const SETUP = README.slice(README.indexOf('## Set-up'), README.indexOf('## What `sdlora demo` does'));

/** Runs `code` (an ES module) in a fresh Node with tsx and `env` added; its stdout. */
function runModule(code: string, env: Record<string, string | undefined>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-setup-'));
  const file = path.join(dir, 'probe.mts');
  writeFileSync(file, code);
  const e: Record<string, string | undefined> = { ...process.env, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env: e as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
}
const helper = (rel: string) => pathToFileURL(path.join(ROOT, 'test/helpers', rel)).href;

it('golden fixtures: $SDLORA_GOLDEN_DIR, else the README\'s default next to the repository', () => {
  const m = /`\$SDLORA_GOLDEN_DIR` \(default `([^`]+)`\)/.exec(SETUP);
  assert.ok(m, 'the README gives the default golden folder');
  const want = path.resolve(ROOT, m[1]);
  const saved = process.env.SDLORA_GOLDEN_DIR;
  try {
    delete process.env.SDLORA_GOLDEN_DIR;
    let got: string;
    try { got = goldenDir(); } catch (e) { got = /not found at (.*); set SDLORA_GOLDEN_DIR/.exec((e as Error).message)?.[1] ?? ''; }
    assert.equal(got, want);
    const other = mkdtempSync(path.join(os.tmpdir(), 'sdlora-golden-'));
    process.env.SDLORA_GOLDEN_DIR = other;
    assert.equal(goldenDir(), other);
  } finally {
    if (saved === undefined) delete process.env.SDLORA_GOLDEN_DIR; else process.env.SDLORA_GOLDEN_DIR = saved;
  }
});

it('without a WebGPU adapter the webgpu tests skip, and fail with SDLORA_REQUIRE_WEBGPU=1', { timeout: 120_000 }, () => {
  assert.match(README, /`SDLORA_REQUIRE_WEBGPU=1` \(tests fail instead of skipping without an adapter\)/);
  const probe = `import { webgpuOrSkip } from '${helper('webgpu.ts')}';
const t = { skip: (m) => console.log('SKIPPED ' + m) };
try { const b = await webgpuOrSkip(t); console.log('GOT ' + (b ? b.name : 'null')); } catch (e) { console.log('THREW ' + e.message); }
process.exit(0);`;
  // No Vulkan driver to be found: Dawn has no adapter.
  const none = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', SDLORA_DAWN_OPTIONS: 'backend=vulkan' };
  const skipped = runModule(probe, { ...none, SDLORA_REQUIRE_WEBGPU: undefined });
  assert.match(skipped, /^SKIPPED no WebGPU adapter/m);
  assert.match(skipped, /^GOT null$/m);
  const failed = runModule(probe, { ...none, SDLORA_REQUIRE_WEBGPU: '1' });
  assert.match(failed, /^THREW .*no adapter/m);
  assert.doesNotMatch(failed, /SKIPPED/);
});

it('browser tests look for Chromium at SDLORA_CHROMIUM (default /usr/bin/chromium) and fail without it when SDLORA_REQUIRE_CHROMIUM=1', { timeout: 120_000 }, () => {
  const m = /`SDLORA_REQUIRE_CHROMIUM=1` \/ `SDLORA_CHROMIUM` \(browser tests: fail without Chromium \/ its path, default `([^`]+)`\)/.exec(README);
  assert.ok(m, 'the README names the Chromium switches and the default path');
  const probe = `import { CHROMIUM, chromiumMissing } from '${helper('browser.ts')}';
import { CHROMIUM as STUDIO_CHROMIUM } from '${pathToFileURL(path.join(ROOT, 'test/studio/browser.ts')).href}';
console.log('PATH ' + CHROMIUM + ' ' + STUDIO_CHROMIUM);
try { console.log('MISSING ' + chromiumMissing()); } catch (e) { console.log('THREW ' + e.message); }
process.exit(0);`;
  const dflt = runModule(probe, { SDLORA_CHROMIUM: undefined, SDLORA_REQUIRE_CHROMIUM: undefined });
  assert.match(dflt, new RegExp(`^PATH ${m[1]} ${m[1]}$`, 'm'));
  const missing = '/nonexistent/chromium';
  const skipped = runModule(probe, { SDLORA_CHROMIUM: missing, SDLORA_REQUIRE_CHROMIUM: undefined });
  assert.match(skipped, new RegExp(`^PATH ${missing} ${missing}$`, 'm'));
  assert.match(skipped, new RegExp(`^MISSING no Chromium at ${missing}`, 'm'));
  const failed = runModule(probe, { SDLORA_CHROMIUM: missing, SDLORA_REQUIRE_CHROMIUM: '1' });
  assert.match(failed, new RegExp(`^THREW no Chromium at ${missing}`, 'm'));
});

it('.ci/run installs Mesa from bookworm-backports, chromium and redis-server, then runs npm ci, doctor and npm test with both REQUIRE switches', () => {
  const ci = readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
  accessSync(path.join(ROOT, '.ci/run'), constants.X_OK);
  const code = ci.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
  // What the README says it does.
  assert.match(SETUP, /installs Mesa >= 25 \(lavapipe, a software Vulkan driver\) from\s+bookworm-backports/);
  assert.match(SETUP, /Debian's `chromium`/);
  assert.match(SETUP, /`redis-server`/);
  assert.match(SETUP, /then `npm ci`, `sdlora doctor` and `npm test` with\s+`SDLORA_REQUIRE_WEBGPU=1` and `SDLORA_REQUIRE_CHROMIUM=1`/);
  // And the script: Mesa 25+ from backports, chromium, redis-server.
  assert.match(code, /grep -q '\^2\[5-9\]'/, 'keeps Mesa >= 25');
  assert.match(code, /apt-get install .*-t bookworm-backports mesa-vulkan-drivers/);
  assert.match(code, /apt-get install .* chromium\b/);
  assert.match(code, /apt-get install .* redis-server\b/);
  const at = (re: RegExp) => { const i = code.search(re); assert.ok(i >= 0, `${re} in .ci/run`); return i; };
  const npmTest = at(/^npm test$/m);
  assert.ok(at(/^npm ci\b/m) < at(/^node bin\/sdlora\.js doctor$/m) && at(/^node bin\/sdlora\.js doctor$/m) < npmTest);
  assert.ok(at(/^export SDLORA_REQUIRE_WEBGPU="\$\{SDLORA_REQUIRE_WEBGPU:-1\}"$/m) < npmTest);
  assert.ok(at(/^export SDLORA_REQUIRE_CHROMIUM="\$\{SDLORA_REQUIRE_CHROMIUM:-1\}"$/m) < npmTest);
  // README-ja: the same, on Debian 12 (bookworm).
  assert.match(README_JA, /`\.ci\/run` は CI と同じ準備をします \(Debian 12:/);
  assert.match(ci, /fresh Debian 12 machine/);
});

it('package.json: Node 20 or newer, the sdlora bin for npm link, and npm test running every test file', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.engines.node, '>=20');
  assert.match(README, /Everything runs in Node 20/);
  assert.match(README_JA, /必要なのは Node\.js 20 以上だけです/);
  assert.ok(Number(process.versions.node.split('.')[0]) >= 20);
  // `sdlora <command>` after `npm link`: the bin entry is the script the README runs as node bin/sdlora.js.
  assert.match(README, /\(or `sdlora <command>` after `npm link`\)/);
  assert.deepEqual(pkg.bin, { sdlora: 'bin/sdlora.js' });
  const bin = path.join(ROOT, pkg.bin.sdlora);
  assert.match(readFileSync(bin, 'utf8').split('\n')[0], /^#!\/usr\/bin\/env node\b/);
  accessSync(bin, constants.X_OK);
  assert.match(execFileSync(bin, ['--help'], { encoding: 'utf8' }), /Usage: sdlora/);
  // `npm test` runs every *.test.ts below test/ (this file included) under node:test with tsx.
  assert.match(pkg.scripts.test, /^node --import tsx --test .*\$\(find test -name '\*\.test\.ts' \| sort\)$/);
  const found = execFileSync('sh', ['-c', "find test -name '*.test.ts' | sort"], { cwd: ROOT, encoding: 'utf8' }).split('\n');
  assert.ok(found.includes('test/setup-claims.test.ts'));
});
