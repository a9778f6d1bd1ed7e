// `sdlora web`: serves the page (web/dist, built on start) and the bundled assets with the
// headers that make the page cross-origin isolated (COOP same-origin + COEP require-corp), which
// is what gives it SharedArrayBuffer for the wasm kernels' Web Workers.
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DIST, ROOT, buildWeb } from './build.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json',
  '.wasm': 'application/wasm', '.map': 'application/json', '.png': 'image/png', '.txt': 'text/plain; charset=utf-8', '.svg': 'image/svg+xml',
};

export interface WebServerOptions {
  port?: number;
  host?: string;
  /** Extra folders served under URL prefixes (tests mount the golden fixtures at /golden/). */
  mounts?: Record<string, string>;
  /** Skip the esbuild step (dist already built). */
  noBuild?: boolean;
  /** Where the page is built and served from (default web/dist). */
  dist?: string;
  log?: (m: string) => void;
}

export interface WebServer { url: string; close: () => Promise<void> }

/** The file a URL path names, or null; never outside the folder it is mounted from. */
function fileFor(urlPath: string, mounts: [string, string][]): string | null {
  for (const [prefix, dir] of mounts) {
    if (!urlPath.startsWith(prefix)) continue;
    const rel = decodeURIComponent(urlPath.slice(prefix.length)) || 'index.html';
    const f = path.resolve(dir, rel);
    if (f !== dir && !f.startsWith(dir + path.sep)) return null;
    return existsSync(f) && statSync(f).isFile() ? f : null;
  }
  return null;
}

export async function startWebServer(o: WebServerOptions = {}): Promise<WebServer> {
  const dist = o.dist ?? DIST;
  if (!o.noBuild) await buildWeb({ quiet: true, outdir: dist });
  const mounts: [string, string][] = [
    ...Object.entries(o.mounts ?? {}).map(([p, d]) => [p, path.resolve(d)] as [string, string]),
    ['/assets/', path.join(ROOT, 'assets')],
    ['/', dist],
  ];
  const server = http.createServer((req, res) => {
    const urlPath = new URL(req.url ?? '/', 'http://x').pathname;
    const f = req.method === 'GET' || req.method === 'HEAD' ? fileFor(urlPath, mounts) : null;
    // Every response carries the isolation headers; CORP lets the isolated page load its own files.
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-cache');
    if (!f) {
      res.statusCode = 404;
      res.end(`not found: ${urlPath}`);
      return;
    }
    res.setHeader('Content-Type', TYPES[path.extname(f)] ?? 'application/octet-stream');
    res.setHeader('Content-Length', statSync(f).size);
    if (req.method === 'HEAD') { res.end(); return; }
    createReadStream(f).pipe(res);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => res());
  });
  const a = server.address() as AddressInfo;
  const url = `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}/`;
  o.log?.(`sdlora web: ${url} (Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy set, so the page gets SharedArrayBuffer)`);
  return { url, close: () => new Promise((res) => { server.closeAllConnections(); server.close(() => res()); }) };
}
