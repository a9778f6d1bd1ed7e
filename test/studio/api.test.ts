// The studio's HTTP API, endpoint by endpoint, against a real studio on a free port: the token,
// path traversal, uploads (non-image, huge, existing name), caption edits racing each other, tag
// operations, the dataset check, the train schema/estimate/import/export, the job queue with real
// tiny training runs (stop-and-save, resume, cancel, retry, reorder, a killed run, a restart of
// the studio), the library (move never overwriting, delete to trash) and txt2img with a LoRA.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Api, demoImage, tempStudio, tinyJob, waitFor } from './studio-helpers.js';

type S = Awaited<ReturnType<typeof tempStudio>>;
let s: S;
let api: Api;
const PNG = demoImage(0);

before(async () => { s = await tempStudio({ maxUploadBytes: 64 * 1024 }); api = s.api; });
after(async () => { await s?.close(); });

describe('access token', () => {
  it('refuses every API call and the page without the token (401)', async () => {
    for (const [m, u] of [['GET', '/api/datasets'], ['POST', '/api/datasets'], ['GET', '/'], ['GET', '/app.js'], ['GET', '/api/jobs'], ['POST', '/api/generate']]) {
      const r = await api(m, u, m === 'POST' ? {} : undefined, { token: null });
      assert.equal(r.status, 401, `${m} ${u}`);
    }
    assert.equal((await api('GET', '/api/datasets', undefined, { token: 'wrong-token-0123456789' })).status, 401);
    assert.equal((await api('GET', '/api/datasets', undefined, { token: null, headers: { authorization: `Bearer ${s.token}` } })).status, 200);
  });

  it('says which workspace and job runner the session has', async () => {
    const r = await api('GET', '/api/session');
    assert.deepEqual(r.body, { workspace: s.workspace.root, jobs: 'local' });
    assert.equal((await api('GET', '/api/nothing-here')).status, 404);
    assert.equal((await api('DELETE', '/api/datasets')).status, 405);
  });

  it('the printed URL sets an HttpOnly cookie that the page then uses', async () => {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    const r = await api('GET', `/?token=${s.token}`, undefined, { token: null });
    assert.equal(r.status, 302);
    const cookie = r.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly/);
    const page = await api('GET', '/', undefined, { token: null, headers: { cookie: cookie.split(';')[0] } });
    assert.equal(page.status, 200);
    assert.match(page.text, /<script type="module" src="\/app.js">/);
    const js = await api('GET', '/app.js', undefined, { token: null, headers: { cookie: cookie.split(';')[0] } });
    assert.ok(js.text.length > 10000, 'the bundled UI is served');
  });
});

describe('datasets', () => {
  it('creates a dataset and concept folders named <repeats>_<name>; refuses duplicates and bad names', async () => {
    assert.equal((await api('POST', '/api/datasets', { name: 'ds' })).status, 201);
    assert.equal((await api('POST', '/api/datasets', { name: 'ds' })).status, 409);
    for (const name of ['..', '../x', 'a/b', '', '.', 'a\\b']) assert.equal((await api('POST', '/api/datasets', { name })).status, 400, JSON.stringify(name));
    const c = await api('POST', '/api/datasets/ds/concepts', { name: 'cross', repeats: 10 });
    assert.equal(c.status, 201);
    assert.equal(c.body.folder, '10_cross');
    assert.ok(existsSync(path.join(s.workspace.root, 'datasets/ds/10_cross')));
    assert.equal((await api('POST', '/api/datasets/ds/concepts', { name: 'cross', repeats: 10 })).status, 409);
    assert.equal((await api('POST', '/api/datasets/ds/concepts', { name: 'x', repeats: 0 })).status, 400);
    assert.equal((await api('POST', '/api/datasets/ds/concepts', { name: '../x', repeats: 2 })).status, 400);
    assert.equal((await api('POST', '/api/datasets/ds/concepts', 'not json' as never, { raw: '{oops' })).status, 400);
    const list = await api('GET', '/api/datasets');
    assert.deepEqual(list.body.datasets.map((d: any) => d.name), ['ds']);
  });

  it('refuses path traversal in dataset, concept and image names (400)', async () => {
    for (const u of ['/api/datasets/..%2F..%2Fetc/images', '/api/datasets/..%2Fjobs/tags', '/api/datasets/ds/concepts/..%2F..%2F..%2Fetc/images/passwd.png',
      '/api/datasets/ds/concepts/10_cross/images/..%2F..%2F..%2Fx.png']) {
      assert.equal((await api('GET', u)).status, 400, u);
    }
    assert.equal((await api('PUT', '/api/datasets/ds/concepts/10_cross/images/..%2F..%2Fevil.png', undefined, { raw: PNG })).status, 400);
    assert.ok(!existsSync(path.join(s.workspace.root, 'datasets/evil.png')));
  });

  it('uploads images, checked to be images, size-limited, never replacing a file unasked', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await api('PUT', `/api/datasets/ds/concepts/10_cross/images/${i}.png`, undefined, { raw: demoImage(i) });
      assert.equal(r.status, 201, r.text);
    }
    const text = await api('PUT', '/api/datasets/ds/concepts/10_cross/images/fake.png', undefined, { raw: 'this is not an image' });
    assert.equal(text.status, 415);
    const wrongExt = await api('PUT', '/api/datasets/ds/concepts/10_cross/images/x.jpg', undefined, { raw: PNG });
    assert.equal(wrongExt.status, 415);
    assert.equal((await api('PUT', '/api/datasets/ds/concepts/10_cross/images/x.gif', undefined, { raw: PNG })).status, 400);
    const huge = await api('PUT', '/api/datasets/ds/concepts/10_cross/images/huge.png', undefined, { raw: new Uint8Array(200 * 1024) });
    assert.equal(huge.status, 413);
    assert.ok(!existsSync(path.join(s.workspace.root, 'datasets/ds/10_cross/huge.png')));
    assert.ok(!existsSync(path.join(s.workspace.root, 'datasets/ds/10_cross/fake.png')));
    const again = await api('PUT', '/api/datasets/ds/concepts/10_cross/images/0.png', undefined, { raw: demoImage(1) });
    assert.equal(again.status, 409);
    assert.deepEqual(readFileSync(path.join(s.workspace.root, 'datasets/ds/10_cross/0.png')), demoImage(0));
    assert.equal((await api('PUT', '/api/datasets/ds/concepts/10_cross/images/0.png?overwrite=1', undefined, { raw: demoImage(0) })).status, 201);
    // Two uploads of one new name at once: one lands, the other is refused, nothing is silently replaced.
    const race = await Promise.all([6, 7].map((i) => api('PUT', '/api/datasets/ds/concepts/10_cross/images/race.png', undefined, { raw: demoImage(i) })));
    assert.deepEqual(race.map((r) => r.status).sort(), [201, 409]);
    const winner = race[0].status === 201 ? 6 : 7;
    assert.deepEqual(readFileSync(path.join(s.workspace.root, 'datasets/ds/10_cross/race.png')), demoImage(winner));
    assert.equal((await api('DELETE', '/api/datasets/ds/concepts/10_cross/images/race.png')).status, 200);
    const img = await fetch(`${s.base}/api/datasets/ds/concepts/10_cross/images/0.png?thumb=1`, { headers: { 'x-sdlora-token': s.token } });
    assert.equal(img.headers.get('content-type'), 'image/png');
    assert.equal((await api('GET', '/api/datasets/ds/concepts/10_cross/images/nope.png')).status, 404);
  });

  it('saves caption edits and refuses the loser of two concurrent edits (409 with the current text)', async () => {
    const im = (await api('GET', '/api/datasets/ds/images')).body.images.find((x: any) => x.file === '0.png');
    assert.equal(im.version, 'none');
    const url = '/api/datasets/ds/concepts/10_cross/captions/0.png';
    const [a, b] = await Promise.all([api('PUT', url, { text: 'cross, red', version: im.version }), api('PUT', url, { text: 'cross, blue', version: im.version })]);
    assert.deepEqual([a.status, b.status].sort(), [200, 409]);
    const loser = a.status === 409 ? a : b, winner = a.status === 200 ? a : b;
    assert.equal(loser.body.caption, winner.body.caption);
    assert.equal(readFileSync(path.join(s.workspace.root, 'datasets/ds/10_cross/0.txt'), 'utf8'), winner.body.caption);
    assert.equal((await api('PUT', url, { text: 'x', version: 'stale' })).status, 409);
    assert.equal((await api('PUT', url, { text: 'cross, red, shape', version: winner.body.version })).status, 200);
    assert.equal((await api('PUT', url, { text: 5 })).status, 400);
    for (let i = 1; i < 4; i++) await api('PUT', `/api/datasets/ds/concepts/10_cross/captions/${i}.png`, { text: `cross, shape${i % 2 ? ', blue' : ''}`, version: 'none' });
  });

  it('counts tags and applies bulk add, remove, replace and move', async () => {
    const tags = (await api('GET', '/api/datasets/ds/tags')).body.tags;
    assert.equal(tags.find((t: any) => t.tag === 'cross').count, 4);
    assert.equal(tags.find((t: any) => t.tag === 'blue').count, 2);
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'add', tag: 'mytoken' })).body.changed, 4);
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'move', tag: 'mytoken', position: 0 })).body.changed, 4);
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'replace', tag: 'blue', to: 'navy' })).body.changed, 2);
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'remove', tag: 'red' })).body.changed, 1);
    assert.equal(readFileSync(path.join(s.workspace.root, 'datasets/ds/10_cross/0.txt'), 'utf8'), 'mytoken, cross, shape');
    assert.equal(readFileSync(path.join(s.workspace.root, 'datasets/ds/10_cross/1.txt'), 'utf8'), 'mytoken, cross, shape, navy');
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'explode', tag: 'x' })).status, 400);
    assert.equal((await api('POST', '/api/datasets/ds/tags', { op: 'add', tag: 'a, b' })).status, 400);
  });

  it('deletes an image with its caption into the trash', async () => {
    assert.equal((await api('PUT', '/api/datasets/ds/concepts/10_cross/images/extra.png', undefined, { raw: demoImage(5) })).status, 201);
    await api('PUT', '/api/datasets/ds/concepts/10_cross/captions/extra.png', { text: 'extra', version: 'none' });
    const r = await api('DELETE', '/api/datasets/ds/concepts/10_cross/images/extra.png');
    assert.equal(r.status, 200);
    assert.ok(!existsSync(path.join(s.workspace.root, 'datasets/ds/10_cross/extra.png')));
    assert.ok(!existsSync(path.join(s.workspace.root, 'datasets/ds/10_cross/extra.txt')));
    assert.ok(existsSync(path.join(s.workspace.root, r.body.trashed, 'extra.png')) && existsSync(path.join(s.workspace.root, r.body.trashed, 'extra.txt')));
    assert.equal((await api('DELETE', '/api/datasets/ds/concepts/10_cross/images/extra.png')).status, 404);
    assert.equal((await api('DELETE', '/api/datasets/ds/concepts/10_cross/images/..%2F..%2F..%2Fjobs%2Fjobs.sqlite')).status, 400);
  });

  it('renders the dataset check report (too few images for the guidance)', async () => {
    const r = await api('GET', '/api/datasets/ds/check?resolution=32');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.report.concepts[0].folder, '10_cross');
    assert.equal(r.body.report.concepts[0].verdict, 'too few');
    assert.equal((await api('GET', '/api/datasets/ds/check?resolution=abc')).status, 400);
  });
});

describe('train form', () => {
  it('serves the option schema with presets (SDXL, low VRAM) and estimates live', async () => {
    const r = await api('GET', '/api/train/schema');
    const keys = r.body.options.map((o: any) => o.key);
    for (const k of ['learning_rate', 'network_dim', 'resolution', 'optimizer_type']) assert.ok(keys.includes(k), k);
    for (const k of ['output_dir', 'resume', 'logging_dir']) assert.ok(!keys.includes(k), `${k} is set by the studio`);
    assert.deepEqual(r.body.presets.map((p: any) => p.id), ['tiny-demo', 'sd15-character', 'sdxl', 'low-vram']);
    const small = await api('POST', '/api/train/estimate', { values: { pretrained_model_name_or_path: 'sd15', resolution: 512, network_dim: 8 }, device: 'rtx-4090' });
    const big = await api('POST', '/api/train/estimate', { values: { pretrained_model_name_or_path: 'sd15', resolution: 1024, train_batch_size: 8, network_dim: 8 }, device: 'rtx-4090' });
    assert.ok(big.body.vramGB > small.body.vramGB);
    assert.equal((await api('POST', '/api/train/estimate', { values: {}, device: 'no-such-gpu' })).status, 400);
    assert.equal((await api('POST', '/api/train/estimate', { values: { learning_rate: 'fast' } })).status, 400);
  });

  it('estimates the family and method `sdlora estimate` finds for the same config (SDXL by name, DreamBooth)', async () => {
    const sdxl = { ...(await api('GET', '/api/train/schema')).body.presets.find((p: any) => p.id === 'sdxl').values, pretrained_model_name_or_path: 'stabilityai/stable-diffusion-xl-base-1.0' };
    const db = { pretrained_model_name_or_path: 'sd15', training_method: 'dreambooth', resolution: 512, mixed_precision: 'fp16', gradient_checkpointing: true, cache_latents: true, optimizer_type: 'AdamW8bit' };
    for (const values of [sdxl, db]) {
      const studio = await api('POST', '/api/train/estimate', { values, device: 'rtx-4090' });
      assert.equal(studio.status, 200, studio.text);
      const file = path.join(s.workspace.root, `est-${values.training_method ?? 'lora'}.json`);
      writeFileSync(file, JSON.stringify({ ...values, train_data_dir: '.' }));
      const cli = spawnSync(process.execPath, ['bin/sdlora.js', 'estimate', '--config', file, '--gpu', 'rtx-4090', '--json'], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      const row = JSON.parse(cli.stdout).rows[0];
      assert.equal(studio.body.vramGB, row.vramGB, `${values.pretrained_model_name_or_path}: the studio's VRAM is the CLI's`);
      assert.equal(studio.body.secondsPerStep, row.secondsPerStep);
      assert.equal(studio.body.method, values.training_method ?? 'lora');
    }
    const xl = (await api('POST', '/api/train/estimate', { values: sdxl, device: 'rtx-4090' })).body;
    const s15 = (await api('POST', '/api/train/estimate', { values: { ...sdxl, pretrained_model_name_or_path: 'sd15' }, device: 'rtx-4090' })).body;
    assert.match(xl.model, /SDXL/);
    assert.ok(xl.vramGB > 2 * s15.vramGB, 'SDXL at the same settings needs far more memory than SD 1.5 (2.6B UNet, two text encoders)');
  });

  it('imports sd-scripts JSON and TOML through the CLI reader, dropping foreign paths with a note', async () => {
    const j = await api('POST', '/api/train/import', { filename: 'a.json', text: JSON.stringify({ learning_rate: 2e-4, network_dim: 16, train_data_dir: '/home/me/data', output_dir: '/x' }) });
    assert.equal(j.status, 200, j.text);
    assert.deepEqual(j.body.values, { learning_rate: 2e-4, network_dim: 16 });
    assert.ok(j.body.notes.some((n: string) => n.includes('train_data_dir')));
    const t = await api('POST', '/api/train/import', { filename: 'b.toml', text: '[training]\nlearning_rate = 1e-4\nmax_train_epochs = 3\n' });
    assert.deepEqual(t.body.values, { learning_rate: 1e-4, max_train_epochs: 3 });
    const bad = await api('POST', '/api/train/import', { filename: 'c.json', text: '{"learning_rate": }' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /c\.json/);
    assert.equal((await api('POST', '/api/train/import', { filename: 'c.yaml', text: 'a: 1' })).status, 400);
  });

  it('imports a kohya_ss GUI config, mapped to sd-scripts options as `sdlora train --config` does', async () => {
    const fixture = path.join(import.meta.dirname, '../train/fixtures/kohya-gui/locon-lycoris.json');
    const r = await api('POST', '/api/train/import', { filename: 'gui.json', text: readFileSync(fixture, 'utf8') });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.values.network_module, 'lycoris.kohya');
    assert.ok(r.body.values.network_args.some((a: string) => a.startsWith('algo=')), JSON.stringify(r.body.values.network_args));
  });

  it('exports JSON and TOML', async () => {
    const j = await api('POST', '/api/train/export', { values: { learning_rate: 1e-4, network_dim: 8 }, format: 'json' });
    assert.deepEqual(JSON.parse(j.text), { learning_rate: 1e-4, network_dim: 8 });
    const t = await api('POST', '/api/train/export', { values: { learning_rate: 1e-4, network_dim: 8 }, format: 'toml' });
    assert.match(t.text, /network_dim = 8/);
    const gui = await api('POST', '/api/train/export', { values: { learning_rate: 1e-4, network_dim: 8, resolution: 768, network_args: ['conv_dim=4', 'conv_alpha=1'] }, format: 'kohya-gui' });
    assert.equal(gui.body.LoRA_type, 'Kohya LoCon');
    assert.equal(gui.body.max_resolution, '768,768');
    assert.equal(gui.body.conv_dim, 4);
    const back = await api('POST', '/api/train/import', { filename: 'gui.json', text: gui.text });
    assert.equal(back.body.values.network_dim, 8);
    assert.deepEqual(back.body.values.network_args, ['conv_dim=4', 'conv_alpha=1']);
    assert.equal((await api('POST', '/api/train/export', { values: {}, format: 'yaml' })).status, 400);
  });
});

describe('jobs', () => {
  const job = async (id: number) => (await api('GET', `/api/jobs/${id}`)).body;
  const status = (id: number, want: string[], ms = 120_000) => waitFor(async () => { const j = await job(id); return want.includes(j.job.status) && j; }, ms, `job ${id} to be ${want.join('/')}`);

  it('refuses bad jobs before queueing them: traversal, missing dataset, studio-owned paths, a run that cannot fit', async () => {
    assert.equal((await api('POST', '/api/jobs', { values: tinyJob('ds', '../escape') })).status, 400);
    assert.equal((await api('POST', '/api/jobs', { values: tinyJob('../ds', 'a') })).status, 400);
    assert.equal((await api('POST', '/api/jobs', { values: tinyJob('nope', 'a') })).status, 400);
    assert.equal((await api('POST', '/api/jobs', { values: { ...tinyJob('ds', 'a'), output_dir: '/tmp/elsewhere' } })).status, 400);
    assert.equal((await api('POST', '/api/jobs', { values: { ...tinyJob('ds', 'a'), learning_rte: 1 } })).status, 400);
    const refused = await api('POST', '/api/jobs', { values: { ...tinyJob('ds', 'big'), pretrained_model_name_or_path: 'sd15', resolution: 2048, train_batch_size: 16, network_dim: 128 }, estimateDevice: 'rtx-3060' });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error, /refused/);
    assert.equal(refused.body.estimate.fits, false);
    assert.equal((await api('GET', '/api/jobs')).body.jobs.length, 0);
  });

  it('runs a job with live progress and loss, then stop-and-save, resume, reorder, cancel and retry', async () => {
    const a = await api('POST', '/api/jobs', { values: tinyJob('ds', 'long', { max_train_steps: 400, train_batch_size: 1, save_every_n_steps: 2, sample_every_n_steps: 2, sample_prompts: 'a cross --w 32 --h 32 --s 2' }) });
    assert.equal(a.status, 201, a.text);
    assert.equal((await api('POST', '/api/jobs', { values: tinyJob('ds', 'long') })).status, 409, 'a live job writes loras/long');
    const b = await api('POST', '/api/jobs', { values: tinyJob('ds', 'second') });
    const c = await api('POST', '/api/jobs', { values: tinyJob('ds', 'third') });
    const [ida, idb, idc] = [a.body.job.id, b.body.job.id, c.body.job.id];
    await waitFor(async () => (await job(ida)).job.step >= 3, 120_000, 'three steps of job a');
    // Reorder the waiting jobs; the running one does not move.
    const moved = await api('POST', `/api/jobs/${idc}/move`, { direction: 'up' });
    assert.deepEqual(moved.body.jobs.map((j: any) => j.id), [ida, idc, idb]);
    assert.equal((await api('POST', `/api/jobs/${ida}/move`, { direction: 'down' })).status, 409);
    assert.equal((await api('POST', `/api/jobs/${idb}/move`, { direction: 'sideways' })).status, 400);
    assert.equal((await api('POST', `/api/jobs/${idb}/cancel`)).body.job.status, 'cancelled');
    const d = await job(ida);
    assert.ok(d.loss.length >= 3 && d.loss.every((p: number[]) => Number.isFinite(p[1])));
    assert.equal((await api('POST', `/api/jobs/${ida}/stop`)).status, 200);
    const stopped = await status(ida, ['stopped']);
    const stepAtStop = stopped.job.step;
    assert.ok(stopped.job.stateDir, 'stop-and-save keeps the state');
    assert.ok(existsSync(path.join(s.workspace.root, stopped.job.output)), 'and a LoRA');
    // The third job ran next; resume puts job a back in the queue behind it.
    assert.equal((await api('POST', `/api/jobs/${ida}/resume`)).body.job.status, 'queued');
    await status(idc, ['done']);
    await waitFor(async () => (await job(ida)).log.some((l: string) => /resumed at step/.test(l)), 120_000, 'job a to resume');
    const resumedLog = (await job(ida)).log.find((l: string) => /resumed at step/.test(l));
    assert.match(resumedLog, new RegExp(`resumed at step ${stepAtStop}\\b`));
    assert.equal((await api('POST', `/api/jobs/${ida}/cancel`)).status, 200);
    await status(ida, ['cancelled']);
    // Retrying would replace its LoRA files: only when confirmed.
    const retry = await api('POST', `/api/jobs/${idc}/retry`, {});
    assert.equal(retry.status, 409);
    assert.equal(retry.body.exists, true);
    assert.equal((await api('POST', `/api/jobs/${idb}/resume`)).status, 409, 'a job cancelled before it ran has no state');
    assert.equal((await api('POST', `/api/jobs/${idb}/stop`)).status, 409);
    assert.equal((await api('GET', '/api/jobs/999')).status, 404);
    const sample = await api('GET', `/api/jobs/${idc}/samples/..%2F..%2Fx.png`);
    assert.equal(sample.status, 400);
    const withSamples = await job(ida);
    assert.ok(withSamples.samples.length > 0, 'job a wrote samples');
    const png = await fetch(`${s.base}/api/jobs/${ida}/samples/${withSamples.samples[0]}`, { headers: { 'x-sdlora-token': s.token } });
    assert.equal(png.headers.get('content-type'), 'image/png');
    // Confirmed: the retry runs again from the start and replaces the files.
    const confirmed = await api('POST', `/api/jobs/${idc}/retry`, { overwrite: true });
    assert.equal(confirmed.status, 200);
    assert.ok(['queued', 'running'].includes(confirmed.body.job.status), confirmed.body.job.status);
    await status(idc, ['done']);
    assert.ok((await job(idc)).log.filter((l: string) => /^\S+ starting$/.test(l)).length >= 2, 'ran twice');
  });

  it('marks a job whose process dies as failed, with its log, and resumes it from its last saved state', async () => {
    const r = await api('POST', '/api/jobs', { values: tinyJob('ds', 'killed', { max_train_steps: 40, train_batch_size: 1, save_every_n_steps: 2 }) });
    const id = r.body.job.id;
    await waitFor(async () => { const j = (await job(id)).job; return j.step >= 3 && existsSync(path.join(s.workspace.root, 'loras/killed/killed-state/train_state.json')); }, 120_000, 'a saved state');
    const pid = Number(/local pid (\d+)/.exec((await job(id)).job.worker)![1]);
    process.kill(pid, 'SIGKILL');
    const failed = await status(id, ['failed'], 30_000);
    assert.match(failed.job.error, /SIGKILL/);
    assert.ok(failed.log.some((l: string) => /ended without a result/.test(l)));
    assert.equal((await api('POST', `/api/jobs/${id}/resume`)).status, 200);
    await waitFor(async () => (await job(id)).log.some((l: string) => /resumed at step \d+/.test(l)), 120_000, 'resume');
    await api('POST', `/api/jobs/${id}/cancel`);
    await status(id, ['cancelled']);
  });
});

describe('library', () => {
  it('lists LoRA cards with family, algorithm, dim/alpha, trigger tags, hash and preview; searches', async () => {
    const r = await api('GET', '/api/library');
    const third = r.body.loras.find((c: any) => c.relName === 'third/third');
    assert.ok(third, JSON.stringify(r.body.loras.map((c: any) => c.relName)));
    assert.equal(third.dim, '4');
    assert.equal(third.alpha, '4');
    assert.deepEqual(third.algorithms, ['lora']);
    assert.match(third.family, /sd1/);
    assert.ok(third.triggerTags.includes('mytoken'));
    assert.match(third.hash, /^[0-9a-f]{12,}/);
    assert.ok(!r.body.loras.some((c: any) => /-state/.test(c.relName)), 'training state is not a LoRA');
    const long = r.body.loras.find((c: any) => c.relName.startsWith('long/'));
    assert.ok(long.preview, 'a card with samples beside it has a preview');
    const preview = await fetch(`${s.base}/api/library/preview?path=${encodeURIComponent(long.preview)}`, { headers: { 'x-sdlora-token': s.token } });
    assert.equal(preview.headers.get('content-type'), 'image/png');
    assert.deepEqual((await api('GET', '/api/library?q=mytoken')).body.loras.length > 0, true);
    assert.equal((await api('GET', '/api/library?q=zzzz-nothing')).body.loras.length, 0);
  });

  it('moves and renames without overwriting, refuses traversal, deletes into the trash', async () => {
    const taken = path.join(s.workspace.root, 'loras/other/taken.safetensors');
    mkdirSync(path.dirname(taken), { recursive: true });
    writeFileSync(taken, 'not overwritten');
    assert.equal((await api('POST', '/api/library/move', { from: 'third/third', to: 'other/taken' })).status, 409);
    assert.equal(readFileSync(taken, 'utf8'), 'not overwritten');
    assert.equal((await api('POST', '/api/library/move', { from: 'third/third', to: '../../escaped' })).status, 400);
    assert.equal((await api('POST', '/api/library/move', { from: 'third/third', to: 'keep/third-v1' })).status, 200);
    assert.ok(existsSync(path.join(s.workspace.root, 'loras/keep/third-v1.safetensors')));
    assert.equal((await api('POST', '/api/library/move', { from: 'third/third', to: 'x' })).status, 404);
    assert.equal((await api('POST', '/api/library/delete', { name: 'other/taken' })).status, 200);
    assert.ok(!existsSync(taken));
    assert.ok(readdirSync(path.join(s.workspace.root, 'trash'), { recursive: true }).some((f) => String(f).endsWith('taken.safetensors')));
    assert.equal((await api('POST', '/api/library/delete', { name: '../jobs/jobs' })).status, 400);
    assert.equal((await api('GET', '/api/library/preview?path=../../etc/passwd')).status, 400);
  });
});

describe('generate', () => {
  it('makes an image with a LoRA tag and keeps its infotext in the gallery', async () => {
    const r = await api('POST', '/api/generate', { prompt: 'a cross <lora:third-v1:0.8>', width: 32, height: 32, steps: 3, seed: 7, sampler: 'euler' });
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.images[0].infotext, /Lora hashes: "third-v1: [0-9a-f]{12}"/);
    const g = await api('GET', '/api/gallery');
    assert.equal(g.body.images[0].file, r.body.images[0].file);
    assert.match(g.body.images[0].infotext, /Seed: 7/);
    const png = await fetch(`${s.base}/api/gallery/${r.body.images[0].file}`, { headers: { 'x-sdlora-token': s.token } });
    assert.equal(png.headers.get('content-type'), 'image/png');
  });

  it('makes a LoRA weight x saved epoch grid with one seed, and separate te/unet weights', async () => {
    const step = (await api('GET', '/api/library')).body.loras.find((c: any) => /killed-step/.test(c.relName));
    assert.ok(step, 'a step file of the killed job');
    const r = await api('POST', '/api/generate', { prompt: 'a cross <lora:GRID>', width: 32, height: 32, steps: 2, seed: 3, grid: { loras: ['keep/third-v1', step.relName], weights: [0, 1] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.images.length, 4);
    assert.deepEqual(r.body.images.map((i: any) => [i.cell.lora, i.cell.weight]), [['keep/third-v1', 0], ['keep/third-v1', 1], [step.relName, 0], [step.relName, 1]]);
    assert.ok(r.body.images.every((i: any) => i.seed === 3));
    assert.match(r.body.images[1].infotext, /<lora:keep\/third-v1:1>/);
    const split = await api('POST', '/api/generate', { prompt: 'a cross <lora:third-v1:0.5:1.5>', width: 32, height: 32, steps: 2, seed: 3 });
    assert.equal(split.status, 200, split.text);
  });

  it('refuses bad generation requests', async () => {
    assert.equal((await api('POST', '/api/generate', { prompt: '' })).status, 400);
    assert.equal((await api('POST', '/api/generate', { prompt: 'x', sampler: 'magic' })).status, 400);
    assert.equal((await api('POST', '/api/generate', { prompt: 'x', steps: 0 })).status, 400);
    assert.equal((await api('POST', '/api/generate', { prompt: 'x <lora:GRID>', grid: { loras: ['../../x'], weights: [1] } })).status, 400);
    assert.equal((await api('POST', '/api/generate', { prompt: 'x <lora:nope:1>', width: 32, height: 32, steps: 1 })).status, 400);
    assert.equal((await api('GET', '/api/gallery/..%2Fjobs%2Fjobs.sqlite')).status, 400);
  });
});

describe('restart', () => {
  it('keeps the queue across a restart of the studio; a job running at shutdown is resumable', async () => {
    const r = await api('POST', '/api/jobs', { values: tinyJob('ds', 'restart', { max_train_steps: 400, train_batch_size: 1, save_every_n_steps: 2 }) });
    const id = r.body.job.id;
    await waitFor(async () => existsSync(path.join(s.workspace.root, 'loras/restart/restart-state/train_state.json')), 120_000, 'a saved state');
    const before = (await api('GET', '/api/jobs')).body.jobs.map((j: any) => [j.id, j.name]);
    await s.close();
    s = await tempStudio({ dir: s.workspace.root });
    api = s.api;
    const jobs = (await api('GET', '/api/jobs')).body.jobs;
    assert.deepEqual(jobs.map((j: any) => [j.id, j.name]), before);
    const j = jobs.find((x: any) => x.id === id);
    assert.ok(['stopped', 'failed'].includes(j.status), j.status);
    assert.ok(j.stateDir);
  });
});
