// `sdlora studio` and `sdlora worker`: the web UI server, and a training worker that takes jobs
// from a Redis queue (BullMQ) when the studio runs with --redis.
import type { Command } from 'commander';

export function registerStudioCommands(program: Command): void {
  program.command('studio')
    .description('the web UI: datasets, training form, job queue, LoRA library and txt2img in the browser (127.0.0.1, with an access token)')
    .option('--port <n>', 'port (0: any free one)', (v) => Number(v), 7860)
    .option('--dir <workspace>', 'workspace folder: datasets, loras, generated images, the job queue', 'sdlora-studio')
    .option('--host <address>', 'address to listen on; anything but 127.0.0.1 makes the studio reachable from other machines (the token is still needed)', '127.0.0.1')
    .option('--redis <url>', 'run jobs through BullMQ on this Redis (redis://host:port); start `sdlora worker --redis URL` processes')
    .action(async (o: { port: number; dir: string; host: string; redis?: string }) => {
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`--port must be 0..65535, got ${o.port}`);
      const { startStudio } = await import('./server/studio-server.js');
      const s = await startStudio({ dir: o.dir, port: o.port, host: o.host, redis: o.redis });
      console.log(`sdlora studio: workspace ${s.workspace.root}${o.redis ? `, jobs via ${o.redis}` : ''}`);
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host)) console.error(`note: listening on ${o.host}: other machines can reach the studio; they still need the token`);
      console.log(`open ${s.url.replace('127.0.0.1', 'localhost')}`);
      let closing = false;
      const stop = () => {
        if (closing) process.exit(130);
        closing = true;
        console.error('sdlora studio: stopping (a running job saves its state; Ctrl-C again to quit at once)');
        void s.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });

  program.command('worker')
    .description('take training jobs from the studio\'s Redis queue (BullMQ); outputs go to the shared workspace folder')
    .requiredOption('--redis <url>', 'the Redis the studio uses (redis://host:port)')
    .option('--dir <workspace>', 'the studio\'s workspace folder, as this machine sees it (shared folder)', 'sdlora-studio')
    .option('--name <id>', 'worker name shown in the Jobs page')
    .action(async (o: { redis: string; dir: string; name?: string }) => {
      const { runWorker } = await import('./jobs/redis-worker.js');
      await runWorker({ redis: o.redis, dir: o.dir, name: o.name });
    });
}
