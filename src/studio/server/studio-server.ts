// `sdlora studio`: the HTTP server of the web UI. Binds 127.0.0.1 unless told otherwise, and
// every request needs the random access token printed at start (as Jupyter): header
// x-sdlora-token, or the cookie set when the printed URL is opened. The API routes live in one
// file per page; the jobs run through the local runner or, with --redis, through BullMQ workers.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { JobFiles } from '../jobs/job-files.js';
import { JobStore } from '../jobs/job-store.js';
import { LocalRunner } from '../jobs/local-runner.js';
import { registerDatasetRoutes } from './datasets-routes.js';
import { registerGenerateRoutes } from './generate-routes.js';
import { HttpError, Router, sendBytes, sendJson } from './http-kit.js';
import { type JobRunner, registerJobRoutes } from './jobs-routes.js';
import { registerLibraryRoutes } from './library-routes.js';
import { registerTrainRoutes } from './train-routes.js';
import { buildUiBundle } from './ui-bundle.js';
import { Workspace } from './workspace.js';

export interface StudioOptions {
  dir: string;
  port?: number;
  host?: string;
  /** Fixed token (tests); random otherwise. */
  token?: string;
  maxUploadBytes?: number;
  /** Jobs through BullMQ on this Redis instead of the local runner. */
  redis?: string;
}

export interface Studio {
  url: string;
  token: string;
  port: number;
  workspace: Workspace;
  close(): Promise<void>;
}

const COOKIE = 'sdlora_token';

function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const h = req.headers['x-sdlora-token'];
  if (typeof h === 'string') return h;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7);
  const cookie = (req.headers.cookie ?? '').split(';').map((c) => c.trim()).find((c) => c.startsWith(`${COOKIE}=`));
  if (cookie) return decodeURIComponent(cookie.slice(COOKIE.length + 1));
  return url.searchParams.get('token') ?? undefined;
}

const sameToken = (a: string | undefined, b: string) => !!a && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const INDEX_HTML = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sdlora studio</title><link rel="stylesheet" href="/app.css"></head><body><div id="app"></div><script type="module" src="/app.js"></script></body></html>`;

export async function startStudio(o: StudioOptions): Promise<Studio> {
  const ws = new Workspace(o.dir);
  const token = o.token ?? randomBytes(24).toString('hex');
  const store = await JobStore.open(path.join(ws.folder('jobs'), 'jobs.sqlite'));
  const files = new JobFiles(ws.folder('jobs'));
  let runner: JobRunner & { close(): Promise<void> };
  if (o.redis) {
    const { RedisDispatcher } = await import('../jobs/redis-dispatcher.js');
    runner = await RedisDispatcher.start(o.redis, store, files, ws.root);
  } else {
    const local = new LocalRunner(store, files);
    local.recover();
    runner = local;
  }
  const ui = await buildUiBundle();
  const router = new Router();
  registerDatasetRoutes(router, ws, { maxUploadBytes: o.maxUploadBytes ?? 25 << 20 });
  registerTrainRoutes(router, ws);
  registerJobRoutes(router, ws, store, files, runner);
  registerLibraryRoutes(router, ws);
  registerGenerateRoutes(router, ws);
  router.add('GET', '/api/session', (_q, res) => sendJson(res, 200, { workspace: ws.root, jobs: o.redis ? 'redis' : 'local' }));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://studio');
    if (!sameToken(tokenOf(req, url), token)) {
      req.resume();
      throw new HttpError(401, 'the studio needs its access token: open the URL it printed at start');
    }
    // The printed URL carries the token once; a cookie keeps it for the page's own requests.
    if (url.searchParams.has('token') && req.method === 'GET' && !url.pathname.startsWith('/api/')) {
      res.writeHead(302, { location: '/', 'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/` });
      res.end();
      return;
    }
    if (url.pathname === '/favicon.ico') { res.writeHead(204); res.end(); return; }
    if (req.method === 'GET' && url.pathname === '/') return sendBytes(res, 'text/html; charset=utf-8', INDEX_HTML);
    if (req.method === 'GET' && url.pathname === '/app.js') return sendBytes(res, 'text/javascript; charset=utf-8', ui.js);
    if (req.method === 'GET' && url.pathname === '/app.css') return sendBytes(res, 'text/css; charset=utf-8', ui.css);
    const m = router.match(req.method ?? 'GET', url.pathname);
    if (!m) throw new HttpError(404, `no ${url.pathname}`);
    await m.handler(req, res, m.params, url);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) console.error(`studio: ${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      if (res.headersSent) { res.end(); return; }
      // Messages name files relative to the workspace: the absolute layout of this machine stays here.
      const message = String((e as Error).message).split(ws.root + path.sep).join('').split(ws.root).join('<workspace>');
      sendJson(res, status, { error: message, ...(e instanceof HttpError ? e.extra : {}) });
    });
  });
  const host = o.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(o.port ?? 0, host, resolve); });
  } catch (e) {
    await runner.close();
    await store.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new Error(`port ${o.port} on ${host} is in use (another studio, A1111 or kohya_ss?); choose another with --port (0: any free port)`);
    if (code === 'EADDRNOTAVAIL') throw new Error(`--host ${host} is not an address of this machine`);
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  runner.tick();
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/?token=${token}`, token, port, workspace: ws,
    close: async () => {
      await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
      await runner.close();
      await store.close();
    },
  };
}
