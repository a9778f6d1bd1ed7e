// The studio's browser code, bundled by esbuild when the studio starts (kept in memory): the
// package ships its sources and works offline, with no CDN and no build step to forget.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface UiBundle { js: string; css: string }

const UI_ENTRY = fileURLToPath(new URL('../ui/main.ts', import.meta.url));

export async function buildUiBundle(): Promise<UiBundle> {
  const r = await build({
    entryPoints: [UI_ENTRY], bundle: true, write: false, format: 'esm', target: 'es2022', minify: true, outdir: 'out', logLevel: 'silent',
    loader: { '.json': 'json' }, absWorkingDir: path.dirname(UI_ENTRY),
  });
  const js = r.outputFiles.find((f) => f.path.endsWith('.js'))?.text ?? '';
  const css = r.outputFiles.find((f) => f.path.endsWith('.css'))?.text ?? '';
  return { js, css };
}
