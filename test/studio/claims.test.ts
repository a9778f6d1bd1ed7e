// The README's Studio claims that the API and e2e tests leave open: the defaults of `sdlora studio`
// (port, workspace folder relative to the working directory, host), `--host 0.0.0.0` reachable on
// another address of this machine and still only with the token, the workspace's folders and the
// job queue in a real SQLite file, the 25 MB upload limit of a studio started without a limit, and
// in Chromium: the browser's language picked without the switch, it/s and ETA of a running job,
// and the dataset check's offending images outlined.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, it } from 'node:test';
import { Command } from 'commander';
import initSqlJs from 'sql.js';
import { Rng } from '../../src/engine/random.js';
import { encodePng } from '../../src/io/png.js';
import { registerStudioCommands } from '../../src/studio/studio-command.js';
import { WORKSPACE_FOLDERS } from '../../src/studio/server/workspace.js';
import { chromiumMissing } from '../helpers/browser.js';
import { launchChromium } from './browser.js';
import { DEMO_IMAGES, client, tempStudio, tinyJob, waitFor } from './studio-helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const BIN = path.join(ROOT, 'bin/sdlora.js');
const require = createRequire(import.meta.url);
const children: ChildProcess[] = [];
after(() => { for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL'); });

/** The README's `studio [--port 7860] [--dir sdlora-studio] [--host 127.0.0.1] ...` row, as option -> default. */
function readmeStudioDefaults(): Record<string, string> {
  const row = README.split('\n').find((l) => l.startsWith('| `studio '));
  assert.ok(row, 'the README lists `studio` in its command table');
  return Object.fromEntries([...row.split('|')[1].matchAll(/\[--(\w+) ([^\]\s]+)\]/g)].filter((m) => m[2] !== 'URL').map((m) => [m[1], m[2]]));
}

it('sdlora studio defaults to port 7860, workspace sdlora-studio and host 127.0.0.1, as the README says', () => {
  const want = readmeStudioDefaults();
  assert.deepEqual(Object.keys(want).sort(), ['dir', 'host', 'port']);
  const program = new Command();
  registerStudioCommands(program);
  const studio = program.commands.find((c) => c.name() === 'studio')!;
  const def = (long: string) => studio.options.find((o) => o.long === long)?.defaultValue;
  assert.equal(def('--port'), Number(want.port));
  assert.equal(def('--dir'), want.dir);
  assert.equal(def('--host'), want.host);
  // The prose says the same.
  assert.match(README, new RegExp(`listens on ${want.host.replace(/\./g, '\\.')}`));
  assert.match(README, new RegExp(`\\(\`--dir\`, default\\s+\`${want.dir}\`\\)`));
});

it('without --dir the workspace is sdlora-studio in the working directory, with the README\'s folders; --host 0.0.0.0 answers on another address, still only with the token', { timeout: 120_000 }, async () => {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'sdlora-studio-cwd-'));
  const child = spawn(process.execPath, [BIN, 'studio', '--port', '0', '--host', '0.0.0.0'], { cwd, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '', err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const m = (await waitFor(() => /open http:\/\/0\.0\.0\.0:(\d+)\/\?token=([0-9a-f]{48})/.exec(out), 60_000, `the URL (stderr: ${err})`))!;
  const [, port, token] = m;
  const defaultDir = readmeStudioDefaults().dir;
  const ws = path.join(realpathSync(cwd), defaultDir);
  assert.match(out, new RegExp(`workspace ${ws.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(err, /other machines can reach the studio; they still need the token/);
  // The folders the README names, all there from the start.
  const named = [...README.matchAll(/`(\w+)\/`/g)].map((x) => x[1]);
  const listed = named.slice(named.indexOf('datasets'), named.indexOf('datasets') + 5);
  assert.deepEqual(listed, ['datasets', 'loras', 'generated', 'trash', 'jobs']);
  for (const f of listed) {
    assert.ok(WORKSPACE_FOLDERS.includes(f as never), `${f} is a workspace folder`);
    assert.ok(existsSync(path.join(ws, f)), `${f}/ exists in the default workspace`);
  }
  // Reachable on a non-loopback address of this machine (or the wildcard address itself), token-only.
  const other = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address ?? '0.0.0.0';
  const base = `http://${other}:${port}`;
  const api = client(base, token);
  assert.equal((await api('GET', '/api/datasets', undefined, { token: null })).status, 401);
  assert.equal((await api('GET', '/api/datasets', undefined, { token: 'f'.repeat(48) })).status, 401);
  const ok = await api('GET', '/api/session');
  assert.equal(ok.status, 200);
  assert.equal(ok.body.workspace, ws);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});


it('a studio started without a limit takes uploads up to 25 MB and refuses larger ones (413); the job queue is a SQLite file', { timeout: 60_000 }, async () => {
  const mb = Number(/uploads are\s+limited to (\d+) MB/.exec(README)?.[1]);
  assert.ok(mb > 0, 'the README states the upload limit');
  const s = await tempStudio();
  try {
    assert.equal((await s.api('POST', '/api/datasets', { name: 'ds' })).status, 201);
    assert.equal((await s.api('POST', '/api/datasets/ds/concepts', { name: 'x', repeats: 1 })).status, 201);
    // Over the limit (MiB, the larger reading of "MB"): refused by size before anything else.
    const over = await s.api('PUT', '/api/datasets/ds/concepts/1_x/images/big.png', undefined, { raw: new Uint8Array(mb * 2 ** 20 + 1) });
    assert.equal(over.status, 413, over.text);
    // At the limit (10^6-byte MB, the smaller reading): read whole and judged as an image (not one).
    const at = await s.api('PUT', '/api/datasets/ds/concepts/1_x/images/big.png', undefined, { raw: new Uint8Array(mb * 1e6) });
    assert.equal(at.status, 415, at.text);
    // The queue lives in a real SQLite database that holds the job.
    const train = path.join(s.workspace.root, 'datasets/train/10_cross');
    mkdirSync(train, { recursive: true });
    for (const f of readdirSync(DEMO_IMAGES).sort().slice(0, 4)) copyFileSync(path.join(DEMO_IMAGES, f), path.join(train, f));
    const job = await s.api('POST', '/api/jobs', { values: tinyJob('train', 'queued', { max_train_steps: 1 }) });
    assert.equal(job.status, 201, job.text);
    const id = job.body.job.id;
    const dbFile = path.join(s.workspace.root, 'jobs/jobs.sqlite');
    await waitFor(() => existsSync(dbFile) && readFileSync(dbFile).subarray(0, 16).toString('latin1') === 'SQLite format 3\0', 30_000, 'the SQLite file');
    const SQL = await initSqlJs({ locateFile: (f: string) => require.resolve(`sql.js/dist/${f}`) });
    await waitFor(() => {
      const db = new SQL.Database(readFileSync(dbFile));
      try { return db.exec('SELECT id FROM jobs').some((r) => r.values.some((v) => v[0] === id)); } finally { db.close(); }
    }, 30_000, 'the job in the SQLite file');
    await s.api('POST', `/api/jobs/${id}/cancel`);
  } finally { await s.close(); }
});

/** A noise image (distinct from every other: no near-duplicates) of `size` px. */
function noisePng(size: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const rgb = new Uint8Array(size * size * 3);
  // 8x8 blocks of random grey levels: a distinct perceptual hash per seed.
  for (let by = 0; by < 8; by++) for (let bx = 0; bx < 8; bx++) {
    const v = Math.floor(rng.uniform() * 256);
    for (let y = (by * size) / 8; y < ((by + 1) * size) / 8; y++) for (let x = (bx * size) / 8; x < ((bx + 1) * size) / 8; x++) rgb.set([v, 255 - v, v], (y * size + x) * 3);
  }
  return encodePng(rgb, size, size);
}

it('in Chromium: a Japanese browser gets the Japanese UI unasked, a running job shows it/s and ETA, the check outlines the offending images', { timeout: 300_000 }, async (t) => {
  const missing = chromiumMissing();
  if (missing) { t.skip(missing); return; }
  const s = await tempStudio();
  const browser = await launchChromium();
  try {
    // A training dataset (the demo's images) and a dataset to check: 256 px images with captions,
    // one too small for 512 px and one without a caption.
    const train = path.join(s.workspace.root, 'datasets/train/10_cross');
    mkdirSync(train, { recursive: true });
    for (const f of readdirSync(DEMO_IMAGES).sort().slice(0, 8)) copyFileSync(path.join(DEMO_IMAGES, f), path.join(train, f));
    const chk = path.join(s.workspace.root, 'datasets/chk/5_noise');
    mkdirSync(chk, { recursive: true });
    for (let i = 0; i < 5; i++) {
      writeFileSync(path.join(chk, `n${i}.png`), noisePng(i === 3 ? 64 : 256, 10 + i));
      if (i !== 1) writeFileSync(path.join(chk, `n${i}.txt`), `noise ${i}`);
    }
    const job = await s.api('POST', '/api/jobs', { values: tinyJob('train', 'claims', { max_train_steps: 5000, train_batch_size: 1 }) });
    assert.equal(job.status, 201, job.text);
    const id = job.body.job.id;

    const ja = JSON.parse(readFileSync(path.join(ROOT, 'src/studio/ui/i18n/ja.json'), 'utf8')) as Record<string, string>;
    const en = JSON.parse(readFileSync(path.join(ROOT, 'src/studio/ui/i18n/en.json'), 'utf8')) as Record<string, string>;
    const ctx = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    await page.goto(s.url);
    await page.getByTestId('nav-datasets').waitFor();
    assert.notEqual(ja['nav.datasets'], en['nav.datasets']);
    assert.equal(await page.getByTestId('nav-datasets').innerText(), ja['nav.datasets'], 'Japanese without touching the switch');
    assert.equal(await page.getByTestId('lang').inputValue(), 'ja');

    // The job view: it/s and ETA while the job runs.
    await page.getByTestId('nav-jobs').click();
    await page.getByTestId('job-item').first().click();
    await waitFor(async () => /^\d+\.\d\d$/.test(await page.getByTestId('job-its').innerText()), 180_000, 'an it/s figure');
    const eta = page.locator('dl.stats dt:text-is("ETA") + dd');
    await waitFor(async () => /^\d+(\.\d)? (s|min|h)|^\d+ min \d+ s$/.test(await eta.innerText()), 30_000, 'an ETA');
    const rec = (await s.api('GET', `/api/jobs/${id}`)).body.job;
    assert.equal(rec.status, 'running');
    assert.ok(rec.itPerSec > 0 && rec.etaSec > 0, `it/s ${rec.itPerSec}, ETA ${rec.etaSec}`);
    // ETA is the steps left at the measured speed.
    assert.ok(Math.abs(rec.etaSec - (rec.maxSteps - rec.step) / rec.itPerSec) < 1e-6 * rec.etaSec + 1e-9);
    assert.equal((await s.api('POST', `/api/jobs/${id}/cancel`)).status, 200);

    // The dataset check: the small image and the one without a caption are outlined, no other.
    await page.getByTestId('nav-datasets').click();
    await page.locator('[data-testid=dataset-item]', { hasText: 'chk' }).click();
    await waitFor(async () => (await page.getByTestId('thumb').count()) === 5, 20_000, 'five thumbnails');
    assert.equal(await page.locator('.thumb.flagged').count(), 0, 'nothing outlined before the check');
    await page.getByTestId('check').click();
    await page.getByTestId('check-report').waitFor();
    await waitFor(async () => (await page.locator('.thumb.flagged').count()) > 0, 10_000, 'outlined images');
    const flagged = await page.locator('.thumb.flagged').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.file).sort());
    assert.deepEqual(flagged, ['n1.png', 'n3.png']);
    const border = await page.locator('.thumb.flagged').first().evaluate((e) => { const c = getComputedStyle(e); return [c.borderTopStyle, c.borderTopWidth]; });
    assert.equal(border[0], 'solid');
    assert.notEqual(border[1], '0px');
    const plain = await page.locator('.thumb:not(.flagged)').first().evaluate((e) => getComputedStyle(e).borderTopColor);
    const marked = await page.locator('.thumb.flagged').first().evaluate((e) => getComputedStyle(e).borderTopColor);
    assert.notEqual(marked, plain, 'the outline stands out from the other thumbnails');
    await ctx.close();
  } finally {
    await browser.close();
    await s.close();
  }
});
