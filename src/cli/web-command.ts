// `sdlora web`: builds the browser page and serves it (with the package's tiny model and demo
// dataset) cross-origin isolated, so training and generation run in the browser tab itself.
import type { Command } from 'commander';

export function registerWebCommand(program: Command): void {
  program.command('web').description('serve the in-browser trainer and txt2img page (WebGPU, or the wasm cpu backend in Web Workers)')
    .option('--port <n>', 'port (0: any free one)', (v) => Number(v), 8788)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .action(async (o: { port: number; host: string }) => {
      // Loaded on demand: esbuild is only needed by this command.
      const { startWebServer } = await import('../../web/server.js');
      const s = await startWebServer({ port: o.port, host: o.host, log: (m) => console.log(m) });
      console.log(`open ${s.url} in Chrome/Edge (WebGPU) or any browser with SharedArrayBuffer; Ctrl-C stops`);
    });
}
