// A real Chromium (Debian's /usr/bin/chromium, or SDLORA_CHROMIUM) driven by playwright-core for
// the browser-build tests: started per test file, stopped by playwright's close (which ends the
// process it started), with the page served by `sdlora web`'s own server.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { type WebServer, startWebServer } from '../../web/server.js';

export const CHROMIUM = process.env.SDLORA_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run (they are then skipped), or null; CI (SDLORA_REQUIRE_CHROMIUM=1) fails instead. */
export function chromiumMissing(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const why = `no Chromium at ${CHROMIUM} (apt-get install chromium, or set SDLORA_CHROMIUM)`;
  if (process.env.SDLORA_REQUIRE_CHROMIUM === '1') throw new Error(why);
  return why;
}

/** Flags that work in a container; WebGPU through SwiftShader/lavapipe when asked for. */
export function chromiumArgs(webgpu: boolean): string[] {
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader');
  return args;
}

export interface PageSession { browser: Browser; page: Page; server: WebServer; logs: string[]; close: () => Promise<void> }

/** Serves the page (with extra mounts), starts Chromium and opens it; `query` goes on the URL. */
export async function openPage(o: { webgpu?: boolean; query?: string; mounts?: Record<string, string>; viewport?: { width: number; height: number } } = {}): Promise<PageSession> {
  // A build of its own per test process: test files may run in parallel.
  const dist = mkdtempSync(path.join(os.tmpdir(), 'sdlora-web-dist-'));
  const server = await startWebServer({ mounts: o.mounts, dist });
  const stopServer = async () => { await server.close(); rmSync(dist, { recursive: true, force: true }); };
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromiumArgs(!!o.webgpu), timeout: 60_000 }).catch(async (e) => { await stopServer(); throw e; });
  const logs: string[] = [];
  try {
    const page = await browser.newPage({ viewport: o.viewport ?? { width: 1200, height: 760 } });
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}${o.query ? `?${o.query}` : ''}`, { timeout: 30_000 });
    return { browser, page, server, logs, close: async () => { await browser.close(); await stopServer(); } };
  } catch (e) {
    await browser.close();
    await stopServer();
    throw e;
  }
}

/** Waits (bounded) until the page's engine has chosen a backend, or failed to. */
export async function waitForBackend(page: Page, timeoutMs = 120_000): Promise<{ name: string; reason: string; threads: number }> {
  await page.waitForFunction(() => {
    const s = (window as any).sdlora?.state();
    return s && (s.backend || s.error);
  }, undefined, { timeout: timeoutMs, polling: 200 });
  const s = await page.evaluate(() => (window as any).sdlora.state());
  if (!s.backend) throw new Error(`engine did not start: ${s.error}`);
  return s.backend;
}
