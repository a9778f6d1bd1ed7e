// The local job runner's messages to its train process: a child killed by a cancel closes its IPC
// channel before its 'exit' event, and a studio shutting down in that moment must not fail with
// ERR_IPC_CHANNEL_CLOSED while asking it to stop.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { tell } from '../../src/studio/jobs/local-runner.js';

it('asking a killed train process to stop is a no-op, not an ERR_IPC_CHANNEL_CLOSED error', async () => {
  const child = fork('-e', ['process.on("message", () => {}); setInterval(() => {}, 1000)'], { execPath: process.execPath, execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  await once(child, 'spawn');
  const errors: Error[] = [];
  child.on('error', (e) => errors.push(e));
  tell(child, { type: 'stop' }); // a live child takes the message
  child.kill('SIGKILL');
  await once(child, 'disconnect');
  // What a plain send does now (the failure this guards against)...
  child.send({ type: 'stop' });
  await tick(); await tick();
  assert.match(String(errors[0]?.message), /Channel closed/);
  errors.length = 0;
  // ...and what the runner does.
  tell(child, { type: 'stop' });
  await tick(); await tick();
  assert.deepEqual(errors.map((e) => e.message), []);
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
});
