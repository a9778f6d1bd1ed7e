// The whole studio workflow in a real browser (Debian's chromium via playwright-core): create a
// dataset, upload images into a concept folder, edit a caption, start a tiny training job on the
// bundled model, watch its progress and loss chart, find the LoRA in the library, generate an
// image with it, and switch the UI to Japanese. Screenshots of each page go to
// SDLORA_STUDIO_SCREENSHOTS when set (the README's pictures).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from './browser.js';
import { DEMO_IMAGES, tempStudio, waitFor } from './studio-helpers.js';

const shots = process.env.SDLORA_STUDIO_SCREENSHOTS;
let s: Awaited<ReturnType<typeof tempStudio>>;
let browser: Browser;
let page: Page;
const errors: string[] = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM}: apt-get install chromium (or set SDLORA_CHROMIUM)`);
  s = await tempStudio();
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
});
after(async () => { await browser?.close(); await s?.close(); });

const shot = async (name: string) => { if (shots) { mkdirSync(shots, { recursive: true }); await page.evaluate(() => { (document.activeElement as HTMLElement | null)?.blur(); window.scrollTo(0, 0); }); await page.screenshot({ path: path.join(shots, `${name}.png`) }); } };

it('upload, caption, train, watch, library, generate', { timeout: 300_000 }, async () => {
  await page.goto(s.url);
  await page.getByTestId('nav-datasets').waitFor();

  // Datasets: a new dataset, a concept folder with repeats, four images, one caption.
  await page.getByTestId('new-dataset-name').fill('shapes');
  await page.getByTestId('create-dataset').click();
  await page.getByTestId('concept-name').fill('cross');
  await page.getByTestId('concept-repeats').fill('5');
  await page.getByTestId('add-concept').click();
  const zone = page.locator('[data-testid=dropzone][data-folder="5_cross"]');
  await zone.waitFor();
  const files = readdirSync(DEMO_IMAGES).filter((f) => f.endsWith('.png')).sort().slice(0, 4);
  // A real drop: the files go into a DataTransfer dispatched on the concept's drop zone.
  const payload = files.map((f) => ({ name: f, b64: readFileSync(path.join(DEMO_IMAGES, f)).toString('base64') }));
  const dt = await page.evaluateHandle((items) => {
    const d = new DataTransfer();
    for (const it of items) d.items.add(new File([Uint8Array.from(atob(it.b64), (c) => c.charCodeAt(0))], it.name, { type: 'image/png' }));
    return d;
  }, payload.slice(0, 2));
  await zone.dispatchEvent('drop', { dataTransfer: dt });
  await waitFor(async () => (await page.getByTestId('thumb').count()) === 2, 20_000, 'two thumbnails after the drop');
  await zone.getByTestId('upload').setInputFiles(files.slice(2).map((f) => path.join(DEMO_IMAGES, f)));
  await waitFor(async () => (await page.getByTestId('thumb').count()) === 4, 20_000, 'four thumbnails');
  const first = page.getByTestId('thumb').first();
  await first.getByTestId('caption').fill('mytoken, cross, red');
  await first.getByTestId('save-caption').click();
  const captionFile = path.join(s.workspace.root, 'datasets/shapes/5_cross', files[0].replace('.png', '.txt'));
  await waitFor(() => existsSync(captionFile) && readFileSync(captionFile, 'utf8') === 'mytoken, cross, red', 10_000, 'the caption on disk');
  await waitFor(async () => (await page.getByTestId('tags').innerText()).includes('mytoken'), 10_000, 'the tag chip');
  await page.getByTestId('check').click();
  await page.getByTestId('check-report').waitFor();
  assert.match(await page.getByTestId('check-report').innerText(), /too few/);
  await shot('datasets');

  // Train: the tiny preset, this dataset, a few steps at 32 px with a sample.
  await page.getByTestId('nav-train').click();
  await page.getByTestId('preset').selectOption('tiny-demo');
  await page.getByTestId('train-dataset').selectOption('shapes');
  await page.getByTestId('opt-output_name').fill('mycross');
  await page.getByTestId('opt-max_train_steps').fill('6');
  await page.getByTestId('opt-save_every_n_steps').fill('3');
  await page.getByTestId('opt-sample_every_n_steps').fill('3');
  await page.getByTestId('opt-sample_prompts').fill('mytoken, cross --w 32 --h 32 --s 4');
  await waitFor(async () => /fits/.test(await page.getByTestId('est-fits').innerText()), 10_000, 'the estimate');
  await shot('train');
  await page.getByTestId('start-training').click();

  // Jobs: live step and loss chart, then done.
  await page.waitForURL(/#\/jobs/);
  await waitFor(async () => Number(await page.getByTestId('loss-chart').getAttribute('data-points')) >= 2, 120_000, 'loss points on the chart');
  assert.match(await page.getByTestId('job-step').innerText(), /^\d+ \/ 6$/);
  assert.ok(await page.locator('.loss-chart canvas').count() > 0, 'uPlot drew a canvas');
  await waitFor(async () => (await page.getByTestId('job-status').innerText()) === 'done', 120_000, 'the job to finish');
  assert.equal(await page.getByTestId('job-step').innerText(), '6 / 6');
  await page.locator('.samples img').first().waitFor();
  await shot('jobs');

  // Library: the new LoRA's card, with its trigger tag.
  await page.getByTestId('nav-library').click();
  const card = page.locator('[data-testid=lora-card][data-name="mycross/mycross"]');
  await card.waitFor({ timeout: 20_000 });
  assert.match(await card.innerText(), /mytoken/);
  await page.getByTestId('library-search').fill('mycross');
  await shot('library');

  // Generate with it: the chip and the prompt tag stay in sync.
  await card.getByTestId('use-lora').click();
  await page.getByTestId('prompt').waitFor();
  await waitFor(async () => (await page.getByTestId('prompt').inputValue()).includes('<lora:mycross/mycross:1>'), 10_000, 'the lora tag in the prompt');
  await page.getByTestId('prompt').fill(`mytoken, cross ${await page.getByTestId('prompt').inputValue()}`);
  await page.getByTestId('lora-chip').getByTestId('lora-weight').fill('0.8');
  await waitFor(async () => (await page.getByTestId('prompt').inputValue()).includes('<lora:mycross/mycross:0.8>'), 10_000, 'the weight written into the prompt');
  await page.getByTestId('gen-width').fill('32');
  await page.getByTestId('gen-height').fill('32');
  await page.getByTestId('gen-steps').fill('4');
  await page.getByTestId('generate').click();
  await page.getByTestId('gallery-item').first().waitFor({ timeout: 60_000 });
  assert.match(await page.getByTestId('infotext').first().innerText(), /Lora hashes: "mycross\/mycross: [0-9a-f]{12}"/);
  await shot('generate');

  // Japanese, from the same catalogue-driven components.
  await page.getByTestId('lang').selectOption('ja');
  assert.equal(await page.getByTestId('nav-datasets').innerText(), 'データセット');
  await page.getByTestId('nav-jobs').click();
  await page.getByTestId('job-status').waitFor();
  assert.equal(await page.getByTestId('job-status').innerText(), '完了');
  await shot('jobs-ja');
  assert.deepEqual(errors, []);
});
