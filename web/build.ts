// Builds the page into web/dist: esbuild bundles the engine, models, LoRA code, data pipeline,
// trainer and txt2img for the browser, with Node-only modules mapped onto the small browser
// implementations in src/platform/browser; the wasm kernels are compiled here with wabt (the same
// text as in Node) and shipped as kernels.wasm. Node's own build is untouched: nothing under src/
// changes behaviour, modules are only swapped inside this bundle.
import { mkdirSync, readdirSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { kernelWasmBytes } from '../src/engine/cpu/kernel-threads.js';

const webDir = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(webDir, '..');
export const DIST = path.join(webDir, 'dist');
const platform = path.join(ROOT, 'src/platform/browser');

/** Node modules (with or without the node: prefix) and packages, and what the page uses instead. */
const SWAPS: Record<string, string> = {
  fs: 'fs.ts', 'fs/promises': 'fs-promises.ts', path: 'path.ts', os: 'os.ts', url: 'url.ts', zlib: 'zlib.ts', crypto: 'crypto.ts',
  stream: 'unavailable.ts', 'stream/promises': 'unavailable.ts', module: 'unavailable.ts', child_process: 'unavailable.ts',
  // Only reached under Node (guarded by process.versions.node): garbage collection on demand.
  v8: 'unavailable.ts', vm: 'unavailable.ts',
  sharp: 'sharp.ts', webgpu: 'webgpu.ts',
};

const browserPlatform: esbuild.Plugin = {
  name: 'sdlora-browser-platform',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (a) => {
      const bare = a.path.replace(/^node:/, '');
      if (SWAPS[bare]) return { path: path.join(platform, SWAPS[bare]) };
      // The kernel threads seam: Web Workers and precompiled kernels instead of worker_threads + wabt.
      if (a.path === './kernel-threads.js' && a.importer.endsWith(path.join('engine', 'cpu', 'wasm-pool.ts'))) {
        return { path: path.join(platform, 'kernel-threads.ts') };
      }
      if (a.path.startsWith('node:')) return { errors: [{ text: `${a.path} (imported by ${path.relative(ROOT, a.importer)}) has no browser implementation in src/platform/browser` }] };
      return undefined;
    });
    // Modules find bundled assets relative to their own file; in the page the same tree sits
    // under "/" of its file system, so each module gets its repository path as its URL.
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, async (a) => {
      const { readFile } = await import('node:fs/promises');
      let text = await readFile(a.path, 'utf8');
      if (text.includes('import.meta.url')) text = text.replaceAll('import.meta.url', JSON.stringify(`file:///${path.relative(ROOT, a.path)}`));
      return { contents: text, loader: 'ts' };
    });
  },
};

/** Files of the bundled tiny model and demo dataset, which the page copies into its file system. */
function assetFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(path.join(ROOT, d)).sort()) {
      const rel = `${d}/${n}`;
      if (statSync(path.join(ROOT, rel)).isDirectory()) walk(rel); else out.push(rel);
    }
  };
  walk('assets/tiny-sd');
  walk('assets/demo-dataset');
  walk('assets/clip'); // the CLIP vocabulary single-file checkpoints need
  return out;
}

/** Builds into `outdir` (default web/dist; tests use their own folder so parallel runs never share files). */
export async function buildWeb(o: { minify?: boolean; quiet?: boolean; outdir?: string } = {}): Promise<string> {
  const out = o.outdir ?? DIST;
  mkdirSync(out, { recursive: true });
  await esbuild.build({
    entryPoints: { 'engine-worker': path.join(webDir, 'src/engine-worker.ts'), app: path.join(webDir, 'src/app.ts') },
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: o.minify ?? false,
    inject: [path.join(platform, 'process.ts')],
    plugins: [browserPlatform],
    logLevel: o.quiet ? 'error' : 'warning',
  });
  writeFileSync(path.join(out, 'kernels.wasm'), await kernelWasmBytes());
  writeFileSync(path.join(out, 'assets.json'), JSON.stringify(assetFiles()));
  for (const f of readdirSync(path.join(webDir, 'static'))) copyFileSync(path.join(webDir, 'static', f), path.join(out, f));
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = performance.now();
  await buildWeb({ minify: process.argv.includes('--minify') });
  console.log(`web build: ${path.relative(process.cwd(), DIST)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
