// `sdlora studio` and `sdlora worker` as commands: the studio prints a URL with a token, listens
// on 127.0.0.1, refuses requests without the token and stops on SIGTERM; bad options are errors.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { spawnCli } from '../helpers/cli-child.js';
import { waitFor } from './studio-helpers.js';

it('sdlora studio prints a tokened URL on localhost, needs the token, stops on SIGTERM', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-studio-cli-'));
  const c = spawnCli(['studio', '--port', '0', '--dir', dir]);
  const line = (await waitFor(() => /open (http:\/\/localhost:(\d+)\/\?token=([0-9a-f]{48}))/.exec(c.stdout()), 60_000, 'the URL'))!;
  const [, , port, token] = line;
  const base = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${base}/api/datasets`)).status, 401);
  assert.equal((await fetch(`${base}/api/datasets`, { headers: { 'x-sdlora-token': token } })).status, 200);
  // Only the loopback address: another address of this machine does not answer.
  const other = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  if (other) await assert.rejects(fetch(`http://${other.address}:${port}/api/datasets`, { signal: AbortSignal.timeout(5000) }));
  // A second studio on the same port says so.
  const busy = spawnCli(['studio', '--port', port, '--dir', dir]);
  assert.equal(await busy.exit(60_000), 1);
  assert.match(busy.stderr(), new RegExp(`port ${port} on 127.0.0.1 is in use`));
  c.child.kill('SIGTERM');
  assert.equal(await c.exit(30_000), 0);
});

it('refuses a bad port, a worker without a workspace, and a non-redis URL', { timeout: 120_000 }, async () => {
  const bad = spawnCli(['studio', '--port', 'abc']);
  assert.equal(await bad.exit(60_000), 1);
  assert.match(bad.stderr(), /--port must be/);
  const noWs = spawnCli(['worker', '--redis', 'redis://127.0.0.1:1', '--dir', mkdtempSync(path.join(os.tmpdir(), 'sdlora-empty-'))]);
  assert.equal(await noWs.exit(60_000), 1);
  assert.match(noWs.stderr(), /not a studio workspace/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-studio-cli-'));
  const url = spawnCli(['studio', '--port', '0', '--dir', dir, '--redis', 'http://x']);
  assert.equal(await url.exit(60_000), 1);
  assert.match(url.stderr(), /redis:\/\/ URL/);
});
