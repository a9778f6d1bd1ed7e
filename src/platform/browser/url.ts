// `node:url` for the page: a module's file URL is only used to find bundled assets. web/build.ts
// gives each module its repository path as a file: URL, and the page places the assets at the
// same paths under "/" of its file system (engine-worker.ts, loadAssets).
export function fileURLToPath(u: string | URL): string {
  const s = typeof u === 'string' ? u : u.href;
  if (!s.startsWith('file://')) throw new TypeError(`fileURLToPath: ${s} is not a file: URL`);
  return decodeURIComponent(new URL(s).pathname);
}
export function pathToFileURL(p: string): URL { return new URL(`file://${p}`); }
export default { fileURLToPath, pathToFileURL };
