// Hugging Face downloads, against a local server that plays the hub (HF_ENDPOINT).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hubCacheDir, resolveModel } from '../../src/models/hub.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

let server: http.Server;
const requests: string[] = [];

describe('Hugging Face hub download', () => {
  before(async () => {
    const dir = await tinyModelFolder();
    server = http.createServer((req, res) => {
      requests.push(req.url!);
      const m = /^\/sdlora\/tiny\/resolve\/main\/(.+)$/.exec(req.url!);
      const file = m && path.join(dir, m[1]);
      if (!file || !existsSync(file)) { res.statusCode = 404; res.end('not found'); return; }
      res.end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    process.env.SDLORA_CACHE = mkdtempSync(path.join(os.tmpdir(), 'sdlora-hub-'));
  });
  after(() => { server.close(); delete process.env.HF_ENDPOINT; delete process.env.SDLORA_CACHE; });

  it('downloads a diffusers repo once into the cache and loads it', async () => {
    const logs: string[] = [];
    const local = await resolveModel('sdlora/tiny', (m) => logs.push(m));
    assert.equal(local, hubCacheDir('sdlora/tiny'));
    assert.ok(existsSync(path.join(local, 'unet', 'diffusion_pytorch_model.safetensors')));
    assert.ok(logs.some((l) => l.includes('scheduler_config.json')), 'a missing optional file falls back to defaults');
    const m = await loadSDModel(local);
    assert.equal(m.unet.config.block_out_channels.length, 2);
    const n = requests.length;
    await resolveModel('sdlora/tiny');
    assert.equal(requests.length, n, 'the second call uses the cache');
  });

  it('names the repo and the HTTP status when a download fails', async () => {
    await assert.rejects(resolveModel('sdlora/missing'), /downloading .*sdlora\/missing\/resolve\/main\/unet\/config\.json failed: HTTP 404/);
    await assert.rejects(resolveModel('not a repo id'), /not a repo id: no such model file or folder/);
  });
});
