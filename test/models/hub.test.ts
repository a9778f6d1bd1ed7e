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
import { goldenCase } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';
import { SDXL } from '../../src/families/index.js';

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

let server: http.Server;
const requests: string[] = [];

describe('Hugging Face hub download', () => {
  before(async () => {
    const dirs: Record<string, string> = { tiny: await tinyModelFolder(), 'tiny-xl': await tinySdxlFolder() };
    server = http.createServer((req, res) => {
      requests.push(req.url!);
      const m = /^\/sdlora\/(tiny|tiny-xl)\/resolve\/main\/(.+)$/.exec(req.url!);
      const file = m && path.join(dirs[m[1]], m[2]);
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
    // The loaded model is the golden tiny model the server played: compare against its case configs.
    const unetCfg = readJson(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json'));
    assert.deepEqual(m.unet.config.block_out_channels, unetCfg.block_out_channels);
    assert.equal(m.unet.config.cross_attention_dim, unetCfg.cross_attention_dim);
    assert.deepEqual(m.vae.config.block_out_channels, readJson(path.join(goldenCase('vae'), 'config.json')).block_out_channels);
    const textCfg = readJson(path.join(goldenCase('sd1-text'), 'config.json'));
    assert.equal(m.textEncoder.config.hidden_size, textCfg.hidden_size);
    assert.equal(m.textEncoder.config.num_hidden_layers, textCfg.num_hidden_layers);
    const n = requests.length;
    await resolveModel('sdlora/tiny');
    assert.equal(requests.length, n, 'the second call uses the cache');
  });

  it('downloads an SDXL repo with text_encoder_2/ and tokenizer_2/', async () => {
    const local = await resolveModel('sdlora/tiny-xl');
    const m = await loadSDModel(local);
    assert.equal(m.family, SDXL);
    assert.equal(m.textEncoders.length, 2);
    assert.equal(m.tokenizers[1].padId, 0);
    assert.ok(existsSync(path.join(local, 'tokenizer_2', 'vocab.json')));
    // An SD 1.x repo answered 404 for text_encoder_2/config.json: remembered, not asked again.
    assert.ok(existsSync(path.join(hubCacheDir('sdlora/tiny'), 'text_encoder_2', 'config.json.absent')));
  });

  it('names the repo and the HTTP status when a download fails', async () => {
    await assert.rejects(resolveModel('sdlora/missing'), /downloading .*sdlora\/missing\/resolve\/main\/unet\/config\.json failed: HTTP 404/);
    await assert.rejects(resolveModel('not a repo id'), /not a repo id: no such model file or folder/);
  });
});
