// The environment of Hugging Face downloads: HF_TOKEN goes out as "Authorization: Bearer <token>"
// (and nothing is sent without it), and repos land in ~/.cache/sdlora/hub unless SDLORA_CACHE says
// otherwise. A local server plays the hub (HF_ENDPOINT).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hubCacheDir, resolveModel } from '../../src/models/hub.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

let server: http.Server;
const auth: (string | undefined)[] = [];
const saved = { HOME: process.env.HOME, SDLORA_CACHE: process.env.SDLORA_CACHE, HF_TOKEN: process.env.HF_TOKEN, HF_ENDPOINT: process.env.HF_ENDPOINT };
const restore = (k: keyof typeof saved) => { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k]; };

describe('Hugging Face download environment', () => {
  before(async () => {
    const dir = await tinyModelFolder();
    server = http.createServer((req, res) => {
      auth.push(req.headers.authorization);
      const m = /^\/sdlora\/[\w-]+\/resolve\/main\/(.+)$/.exec(req.url!);
      const file = m && path.join(dir, m[1]);
      if (!file || !existsSync(file)) { res.statusCode = 404; res.end('not found'); return; }
      res.end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => { server.close(); for (const k of Object.keys(saved) as (keyof typeof saved)[]) restore(k); });

  it('downloads into ~/.cache/sdlora/hub by default and sends HF_TOKEN as a Bearer token', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'sdlora-home-'));
    process.env.HOME = home;
    delete process.env.SDLORA_CACHE;
    process.env.HF_TOKEN = 'hf_test_token_123';
    auth.length = 0;
    const local = await resolveModel('sdlora/with-token');
    assert.equal(local, path.join(home, '.cache', 'sdlora', 'hub', 'sdlora--with-token'));
    assert.equal(hubCacheDir('sdlora/with-token'), local);
    assert.ok(existsSync(path.join(local, 'unet', 'diffusion_pytorch_model.safetensors')));
    assert.ok(auth.length > 0);
    assert.deepEqual([...new Set(auth)], ['Bearer hf_test_token_123']);
  });

  it('sends no Authorization header without HF_TOKEN, and SDLORA_CACHE moves the cache', async () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'sdlora-cache-'));
    process.env.SDLORA_CACHE = cache;
    delete process.env.HF_TOKEN;
    auth.length = 0;
    const local = await resolveModel('sdlora/no-token');
    assert.equal(local, path.join(cache, 'sdlora--no-token'));
    assert.ok(auth.length > 0);
    assert.deepEqual([...new Set(auth)], [undefined]);
  });
});
