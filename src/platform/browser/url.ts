// `node:url` for the page: a module's file URL is only used to find bundled assets, which the page
// places at the same relative paths under "/" in its file system (see web/src/assets.ts).
export function fileURLToPath(u: string | URL): string {
  const s = typeof u === 'string' ? u : u.href;
  return s.startsWith('file://') ? decodeURIComponent(new URL(s).pathname) : `/src/${s.split('/').pop()}`;
}
export function pathToFileURL(p: string): URL { return new URL(`file://${p}`); }
export const URL_ = globalThis.URL;
export default { fileURLToPath, pathToFileURL };
