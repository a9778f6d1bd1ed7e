// `node:path` for the page: the POSIX subset the engine uses (the page's file system is POSIX).
export const sep = '/';
export const delimiter = ':';

export function normalize(p: string): string {
  if (p === '') return '.';
  const absPath = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') { if (out.length && out[out.length - 1] !== '..') out.pop(); else if (!absPath) out.push('..'); continue; }
    out.push(part);
  }
  const s = (absPath ? '/' : '') + out.join('/');
  return s || (absPath ? '/' : '.');
}

export function join(...parts: string[]): string {
  const s = parts.filter((x) => x !== '').join('/');
  return s ? normalize(s) : '.';
}

export function resolve(...parts: string[]): string {
  let r = '';
  for (let i = parts.length - 1; i >= 0 && !r.startsWith('/'); i--) if (parts[i]) r = r ? `${parts[i]}/${r}` : parts[i];
  return normalize(r.startsWith('/') ? r : `/${r}`);
}

export function isAbsolute(p: string): boolean { return p.startsWith('/'); }

export function dirname(p: string): string {
  const s = p.length > 1 ? p.replace(/\/+$/, '') : p;
  const i = s.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : s.slice(0, i);
}

export function basename(p: string, ext?: string): string {
  const s = p.length > 1 ? p.replace(/\/+$/, '') : p;
  const b = s.slice(s.lastIndexOf('/') + 1);
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}

export function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter(Boolean), b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
}

export function parse(p: string): { root: string; dir: string; base: string; ext: string; name: string } {
  const base = basename(p), ext = extname(p);
  return { root: p.startsWith('/') ? '/' : '', dir: dirname(p), base, ext, name: ext ? base.slice(0, -ext.length) : base };
}

export function format(o: { dir?: string; base?: string; name?: string; ext?: string }): string {
  const base = o.base ?? `${o.name ?? ''}${o.ext ?? ''}`;
  return o.dir ? `${o.dir}/${base}` : base;
}

export const posix = { sep, delimiter, normalize, join, resolve, isAbsolute, dirname, basename, extname, relative, parse, format };
export default { ...posix, posix };
