// README Web ("How it is put together"): Node-only modules are swapped for src/platform/browser only
// at bundle time, "the Node build is unchanged". Checked two ways: (1) every module the CLI can load
// under Node (bin/sdlora.js and all it imports, statically or through import('...'), followed to
// the end) is outside src/platform/browser and web/src, and its packages (sharp, fs, ...) resolve
// to the real ones, with no package.json field remapping them; (2) building the page leaves every
// file Node runs (src/, bin/, web/*.ts, package.json) byte for byte as it was.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildWeb } from '../../web/build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const rel = (f: string) => path.relative(ROOT, f).split(path.sep).join('/');

/** Import specifiers of a module: static imports/exports and import('literal'). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** A relative specifier to its file, as tsx resolves them (".js" naming a ".ts" source). */
function resolveRelative(from: string, spec: string): string {
  const p = path.resolve(path.dirname(from), spec);
  for (const c of [p, p.replace(/\.js$/, '.ts'), `${p}.ts`, path.join(p, 'index.ts')]) if (existsSync(c) && statSync(c).isFile()) return c;
  throw new Error(`${rel(from)}: cannot resolve ${spec}`);
}

/** Every project file reachable from `entry`, and the bare (package or node:) specifiers they use, with an importer each. */
function importGraph(entry: string): { files: Set<string>; bare: Map<string, string> } {
  const files = new Set<string>(), bare = new Map<string, string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    if (!/\.(ts|js|mjs)$/.test(f)) continue;
    for (const s of specifiers(f)) {
      if (s.startsWith('.')) todo.push(resolveRelative(f, s));
      else if (!bare.has(s)) bare.set(s, f);
    }
  }
  return { files, bare };
}

function hashTree(dir: string, into: Map<string, string>): void {
  for (const n of readdirSync(dir)) {
    const p = path.join(dir, n);
    if (statSync(p).isDirectory()) hashTree(p, into);
    else into.set(rel(p), createHash('sha256').update(readFileSync(p)).digest('hex'));
  }
}

describe('the Node build is unchanged by the browser build', () => {
  it('nothing the CLI loads under Node is a browser platform module or page code, and its packages are the real ones', () => {
    const { files, bare } = importGraph(path.join(ROOT, 'bin/sdlora.js'));
    const all = [...files].map(rel);
    // The walk reaches the whole CLI: commands, trainer, data pipeline, the Node kernel-threads seam, the web server.
    for (const f of ['src/cli/main.ts', 'src/train/trainer.ts', 'src/data/images.ts', 'src/engine/cpu/kernel-threads.ts', 'src/cli/web-command.ts', 'web/server.ts']) assert.ok(all.includes(f), `${f} is reached`);
    assert.ok(all.length > 150, `${all.length} modules`);
    const browserSide = all.filter((f) => f.startsWith('src/platform/browser/') || f.startsWith('web/src/'));
    assert.deepEqual(browserSide, [], 'no browser module is imported under Node');
    // The modules the bundle swaps are imported by their real names and resolve to Node's own.
    for (const name of ['sharp', 'node:fs', 'node:worker_threads']) assert.ok(bare.has(name), `${name} is imported`);
    const sharpAt = createRequire(bare.get('sharp')!).resolve('sharp');
    assert.match(sharpAt.split(path.sep).join('/'), /\/node_modules\/sharp\//, `sharp resolves to ${sharpAt}`);
    for (const [name, importer] of bare) {
      if (name.startsWith('node:') || name.startsWith('#') || name.startsWith('@') || name.includes('/')) continue;
      const at = (() => { try { return createRequire(importer).resolve(name); } catch { return null; } })();
      if (at && path.isAbsolute(at)) assert.ok(!rel(at).startsWith('src/platform/browser'), `${name} resolves to ${rel(at)}`);
    }
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    for (const field of ['browser', 'imports']) assert.equal(pkg[field], undefined, `package.json has no "${field}" remapping`);
  });

  it('building the page changes no file Node runs', async () => {
    const before = new Map<string, string>();
    for (const d of ['src', 'bin']) hashTree(path.join(ROOT, d), before);
    for (const f of readdirSync(path.join(ROOT, 'web')).filter((n) => n.endsWith('.ts'))) before.set(`web/${f}`, createHash('sha256').update(readFileSync(path.join(ROOT, 'web', f))).digest('hex'));
    before.set('package.json', createHash('sha256').update(readFileSync(path.join(ROOT, 'package.json'))).digest('hex'));
    const dist = mkdtempSync(path.join(os.tmpdir(), 'sdlora-node-build-'));
    try {
      await buildWeb({ quiet: true, outdir: dist });
      assert.ok(existsSync(path.join(dist, 'engine-worker.js')), 'the page was built');
    } finally {
      rmSync(dist, { recursive: true, force: true });
    }
    const after = new Map<string, string>();
    for (const d of ['src', 'bin']) hashTree(path.join(ROOT, d), after);
    for (const f of readdirSync(path.join(ROOT, 'web')).filter((n) => n.endsWith('.ts'))) after.set(`web/${f}`, createHash('sha256').update(readFileSync(path.join(ROOT, 'web', f))).digest('hex'));
    after.set('package.json', createHash('sha256').update(readFileSync(path.join(ROOT, 'package.json'))).digest('hex'));
    assert.deepEqual(after, before);
  });
});
