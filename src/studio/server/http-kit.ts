// Small HTTP helpers for the studio server: errors that carry a status code, bounded body
// reading (uploads are size-limited before they reach the disk), JSON replies and a router.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly extra: Record<string, unknown> = {}) { super(message); }
}

/** Reads the whole body, refusing it (413) as soon as it passes `limit` bytes so a huge upload never fills memory. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) { req.resume(); throw new HttpError(413, `the body is ${declared} bytes; the limit is ${limit}`); }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) { req.resume(); throw new HttpError(413, `the body passes the limit of ${limit} bytes`); }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readJson<T = Record<string, unknown>>(req: IncomingMessage, limit = 4 << 20): Promise<T> {
  const buf = await readBody(req, limit);
  try {
    const v = JSON.parse(buf.toString('utf8') || '{}');
    if (!v || typeof v !== 'object') throw new Error('not an object');
    return v as T;
  } catch (e) {
    throw new HttpError(400, `the body must be a JSON object (${(e as Error).message})`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

export function sendBytes(res: ServerResponse, type: string, data: Uint8Array | string, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(data);
}

export type Handler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>, url: URL) => Promise<void> | void;

interface Route { method: string; pattern: RegExp; keys: string[]; handler: Handler }

/** Routes like `/api/datasets/:name/images/:file`; parameters are URL-decoded, one path segment each. */
export class Router {
  private routes: Route[] = [];

  add(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, k: string) => { keys.push(k); return '([^/]+)'; })}$`);
    this.routes.push({ method, pattern, keys, handler });
    return this;
  }

  /** The handler for a request, or undefined; 405 when the path exists under another method. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } | undefined {
    let pathFound = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      pathFound = true;
      if (r.method !== method) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => {
        try { params[k] = decodeURIComponent(m[i + 1]); } catch { throw new HttpError(400, `bad URL encoding in ${k}`); }
      });
      return { handler: r.handler, params };
    }
    if (pathFound) throw new HttpError(405, `${method} is not allowed on ${pathname}`);
    return undefined;
  }
}
