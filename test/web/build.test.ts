// The browser build without a browser: the bundle builds with every Node-only module swapped out,
// the shipped kernels are exactly wabt's binary of the kernels' text, the page's platform modules
// behave like the Node ones they replace, and the server sends the isolation headers.
import assert from 'node:assert/strict';
import { createHash as nodeHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync as nodeDeflate } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { kernelWasmBytes } from '../../src/engine/cpu/kernel-threads.js';
import { getPool } from '../../src/engine/cpu/wasm-pool.js';
import { createHash } from '../../src/platform/browser/crypto.js';
import * as bpath from '../../src/platform/browser/path.js';
import { inflateSync } from '../../src/platform/browser/zlib.js';
import { buildWeb } from '../../web/build.js';
import { startWebServer } from '../../web/server.js';
import { spawnCli } from '../helpers/cli-child.js';

describe('browser build', () => {
  // Its own output folder: other test files build the page in parallel.
  const DIST = mkdtempSync(path.join(os.tmpdir(), 'sdlora-web-build-'));
  before(() => buildWeb({ quiet: true, outdir: DIST }));
  after(() => rmSync(DIST, { recursive: true, force: true }));

  it('bundles the engine worker without Node-only modules', () => {
    const js = readFileSync(path.join(DIST, 'engine-worker.js'), 'utf8');
    assert.ok(js.includes('function train(') && js.includes('function txt2img('), 'the trainer and txt2img are in the bundle');
    for (const mod of ['wabt', 'sharp', 'worker_threads', 'node:fs', 'libvips']) assert.ok(!js.includes(`from "${mod}"`) && !js.includes(`require("${mod}")`), `${mod} is not imported`);
    assert.ok(!/wabt\.js|libwabt/.test(js), 'wabt is not bundled');
  });

  it('ships the kernels as the wasm binary wabt makes of the same text', async () => {
    const shipped = readFileSync(path.join(DIST, 'kernels.wasm'));
    assert.deepEqual(new Uint8Array(shipped), await kernelWasmBytes());
    assert.ok(WebAssembly.validate(shipped), 'a valid module (SIMD and threads)');
  });

  it('lists the bundled model, demo dataset and CLIP vocabulary for the page', () => {
    const list = JSON.parse(readFileSync(path.join(DIST, 'assets.json'), 'utf8')) as string[];
    for (const f of ['assets/tiny-sd/unet/diffusion_pytorch_model.safetensors', 'assets/tiny-sd/tokenizer/vocab.json', 'assets/demo-dataset/train/10_cross/001.png', 'assets/clip/bpe_simple_vocab_16e6.txt.gz']) assert.ok(list.includes(f), f);
  });

  it('page platform: sha256, zlib and path agree with Node', () => {
    const data = new Uint8Array(200_003).map((_, i) => (i * 7919) % 251);
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, data.length]) {
      const h = createHash('sha256');
      h.update(data.subarray(0, n >> 1)); h.update(data.subarray(n >> 1, n));
      assert.equal(h.digest('hex'), nodeHash('sha256').update(data.subarray(0, n)).digest('hex'), `sha256 of ${n} bytes`);
    }
    assert.deepEqual(new Uint8Array(inflateSync(nodeDeflate(data))), data);
    for (const [a, b] of [['/a/b/../c/', 'x.txt'], ['a', '../../b'], ['/', '.']]) assert.equal(bpath.join(a, b), path.posix.join(a, b));
    for (const p of ['/a/b/c.safetensors', '/a/', 'x', '/']) {
      assert.equal(bpath.dirname(p), path.posix.dirname(p), `dirname ${p}`);
      assert.equal(bpath.basename(p), path.posix.basename(p), `basename ${p}`);
      assert.equal(bpath.extname(p), path.posix.extname(p), `extname ${p}`);
    }
    assert.equal(bpath.resolve('/assets/x', '../y'), '/assets/y');
    assert.equal(bpath.relative('/a/b', '/a/c/d'), path.posix.relative('/a/b', '/a/c/d'));
  });

  it('memory beyond the wasm limit is refused with the reason, not a bare RangeError', async () => {
    const pool = await getPool();
    assert.throws(() => pool.reserve(5 * 2 ** 30), /cannot grow the kernels' shared memory .* capped at 4 GiB, and a browser tab often gets less/);
  });

  it('the sdlora web command builds and serves the page until stopped', async () => {
    const cli = spawnCli(['web', '--port', '0']);
    try {
      const end = Date.now() + 60_000;
      let m: RegExpExecArray | null = null;
      while (!(m = /sdlora web: (http:\/\/\S+)/.exec(cli.stdout()))) {
        if (Date.now() > end || cli.child.exitCode !== null) assert.fail(`no URL printed\nstdout: ${cli.stdout()}\nstderr: ${cli.stderr()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const r = await fetch(m[1]);
      assert.equal(r.status, 200);
      assert.match(await r.text(), /<title>sdlora/);
      assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exit(10_000);
    }
  });

  it('sdlora web serves the page cross-origin isolated', async () => {
    const s = await startWebServer({ noBuild: true, dist: DIST });
    try {
      for (const f of ['', 'engine-worker.js', 'kernels.wasm', 'assets/tiny-sd/model_index.json']) {
        const r = await fetch(s.url + f);
        assert.equal(r.status, 200, f);
        assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
        assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
        await r.arrayBuffer();
      }
      assert.equal((await fetch(`${s.url}kernels.wasm`)).headers.get('content-type'), 'application/wasm');
      const outside = await fetch(`${s.url}assets/..%2F..%2Fpackage.json`);
      assert.equal(outside.status, 404, 'nothing outside the served folders');
    } finally {
      await s.close();
    }
  });
});
