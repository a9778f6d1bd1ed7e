// The README's "What `sdlora demo` does" claims, checked against the code and the bundled files:
// the demo's defaults (LoCon rank 16, 300 steps, batch 4, 12 prompts), its dataset (24 captioned
// images in the kohya layout), the tiny UNet's size, a base model that never saw a cross, the
// template-match scorer, and the pictures the section shows. Numbers come from the README text, so
// a change on either side breaks the test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import sharp from 'sharp';
import { CONCEPT, DEMO_DATASET, demoTrainValues } from '../../src/cli/demo.js';
import { Rng } from '../../src/engine/random.js';
import { BACKGROUNDS, BASE_SHAPES, COLORS, type ShapeName, drawShape } from '../../src/data/procedural.js';
import { foregroundMask, matchShapes } from '../../src/infer/shape-score.js';
import { parseHeader } from '../../src/io/safetensors.js';
import { TINY_MODEL_DIR } from '../../src/models/hub.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const DEMO = README.slice(README.indexOf('## What `sdlora demo` does'), README.indexOf('## Studio'));
const num = (re: RegExp, what: string) => { const m = re.exec(DEMO); assert.ok(m, `the README's demo section states ${what}`); return Number(m[1]); };

it('the demo trains a LoCon of the README\'s rank, steps and batch, and samples its number of prompts', () => {
  const m = /\(LoCon, rank (\d+), (\d+) steps, batch (\d+)\)/.exec(DEMO);
  assert.ok(m, 'the README gives the demo\'s LoCon rank, steps and batch');
  const [rank, steps, batch] = m.slice(1).map(Number);
  const prompts = num(/the same (\d+) prompts/, 'the number of prompts');
  // The command's defaults, as `sdlora demo --help` prints them.
  const help = execFileSync(process.execPath, [path.join(ROOT, 'bin/sdlora.js'), 'demo', '--help'], { encoding: 'utf8' });
  const def = (opt: string) => Number(new RegExp(`--${opt} <n>.*\\(default: (\\d+)\\)`).exec(help)?.[1]);
  assert.equal(def('steps'), steps);
  assert.equal(def('images'), prompts);
  // The training settings behind them.
  const v = demoTrainValues({ out: '/tmp/x', steps: def('steps'), seed: 1 });
  assert.equal(v.max_train_steps, steps);
  assert.equal(v.train_batch_size, batch);
  assert.equal(v.network_dim, rank);
  assert.equal(v.network_module ?? 'networks.lora', 'networks.lora');
  // LoCon: kohya's LoRA with the 3x3 convs too, at the same rank.
  assert.ok((v.network_args as string[]).includes(`conv_dim=${rank}`), `conv layers trained: ${v.network_args}`);
  assert.equal(v.train_data_dir, DEMO_DATASET);
});

it('the demo dataset is the README\'s folder of captioned images in the kohya layout', async () => {
  const m = /`(assets\/demo-dataset\/train\/(\d+)_(\w+))` \((\d+) captioned images in the kohya layout\)/.exec(DEMO);
  assert.ok(m, 'the README names the demo dataset and its size');
  const [, rel, , name, count] = m;
  const dir = path.join(ROOT, rel);
  assert.equal(path.dirname(dir), DEMO_DATASET);
  assert.equal(name, CONCEPT);
  // Kohya layout: the train folder holds <repeats>_<name> folders only.
  for (const f of readdirSync(DEMO_DATASET)) assert.match(f, /^\d+_\w+$/);
  const images = readdirSync(dir).filter((f) => /\.(png|jpe?g|webp)$/i.test(f));
  assert.equal(images.length, Number(count));
  for (const f of images) {
    const cap = path.join(dir, f.replace(/\.\w+$/, '.txt'));
    assert.ok(existsSync(cap), `${f} has a caption`);
    assert.match(readFileSync(cap, 'utf8'), new RegExp(`\\b${CONCEPT}\\b`), `${f}'s caption names the ${CONCEPT}`);
  }
});

it('the bundled tiny UNet has about the README\'s parameter count', () => {
  const m = /\((\d+(?:\.\d+)?)M-parameter UNet/.exec(DEMO);
  assert.ok(m, 'the README gives the tiny UNet\'s size');
  const file = path.join(TINY_MODEL_DIR, 'unet/diffusion_pytorch_model.safetensors');
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const { entries } = parseHeader(file, buf.subarray(8, 8 + n).toString('utf8'), buf.length - 8 - n);
  const params = entries.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const said = Number(m[1]) * 1e6;
  assert.ok(Math.abs(params - said) / said < 0.1, `${params} parameters, the README says ${m[1]}M`);
});

it('the tiny model was pretrained on circles, squares and triangles, never on a cross', () => {
  assert.deepEqual([...BASE_SHAPES].sort(), ['circle', 'square', 'triangle']);
  assert.match(DEMO, /circles, squares and triangles/);
  assert.match(DEMO, new RegExp(`never seen a ${CONCEPT}`));
  assert.ok(!(BASE_SHAPES as readonly string[]).includes(CONCEPT));
  // The build script draws its pretraining images from BASE_SHAPES only: randomBatch defaults to
  // them, and no call passes other shapes.
  const script = readFileSync(path.join(ROOT, 'scripts/build-tiny-model.ts'), 'utf8');
  assert.match(script, /function randomBatch\(n: number, rng: E\.Rng, shapes: readonly string\[\] = BASE_SHAPES\)/);
  const calls = [...script.matchAll(/randomBatch\(([^)]*)\)/g)].map((c) => c[1]).filter((a) => !a.startsWith('n: number'));
  assert.ok(calls.length > 0);
  for (const a of calls) assert.equal(a.split(',').length, 2, `randomBatch(${a}) passes only n and rng`);
  assert.ok(!/drawShape\(/.test(script.replace(/drawShape\(SIZE, shape,/, '')), 'no other drawShape call in the script');
});

it('the template-match scorer names the shape drawn: cross, circle, square or triangle', async () => {
  const shapes: ShapeName[] = ['cross', 'circle', 'square', 'triangle'];
  assert.match(DEMO, /which shape template \(cross,\s+circle, square, triangle\)/);
  const rng = new Rng(5);
  const colors = Object.keys(COLORS), bgs = Object.keys(BACKGROUNDS);
  for (const shape of shapes) {
    for (let i = 0; i < 3; i++) {
      const img = drawShape(32, shape, colors[(i * 2 + shapes.indexOf(shape)) % colors.length], bgs[i % bgs.length], rng);
      const m = matchShapes(foregroundMask(img.rgb, 32), 32, shapes);
      assert.equal(m.best, shape, `${img.caption}: ${JSON.stringify(m.iou)}`);
    }
  }
  // The demo dataset's own pictures score as crosses.
  const dir = path.join(DEMO_DATASET, readdirSync(DEMO_DATASET)[0]);
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.png')).slice(0, 6)) {
    const { data, info } = await sharp(path.join(dir, f)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(matchShapes(foregroundMask(new Uint8Array(data), info.width), info.width, shapes).best, CONCEPT, f);
  }
});

it('the demo section\'s pictures exist and are PNG images', async () => {
  const pics = [...DEMO.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]);
  assert.deepEqual(pics.sort(), ['docs/images/demo-after.png', 'docs/images/demo-before.png', 'docs/images/demo-dataset.png']);
  for (const p of pics) {
    const buf = readFileSync(path.join(ROOT, p));
    assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${p} is a PNG`);
    const meta = await sharp(buf).metadata();
    assert.equal(meta.format, 'png');
    assert.ok(meta.width! >= 32 && meta.height! >= 32, p);
  }
});
