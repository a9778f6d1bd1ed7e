// README claims about the repository itself and the Japanese twin: the Layout section names
// folders that exist and every top folder of src/, README-ja's first-LoRA config trains as written
// (on the bundled tiny model and a tiny dataset instead of SD 1.5 and the user's images), and
// README-ja carries the English README's SDXL set-up.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { DEMO_DATASET } from '../src/cli/demo.js';
import { loadSafetensors } from '../src/io/safetensors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const README_JA = readFileSync(path.join(ROOT, 'README-ja.md'), 'utf8');
const section = (text: string, head: string) => {
  const i = text.indexOf(`\n${head}\n`);
  assert.ok(i >= 0, `section ${head}`);
  const j = text.indexOf('\n## ', i + head.length + 2);
  return text.slice(i, j < 0 ? undefined : j);
};

it('the Layout section names folders that exist, and every top folder of src/', () => {
  const layout = section(README, '## Layout');
  const named = [...layout.matchAll(/`([\w.-]+(?:\/[\w.-]+)*\/?)`/g)].map((m) => m[1].replace(/\/$/, ''));
  assert.ok(named.length >= 10, `folders named: ${named}`);
  for (const f of named) assert.ok(existsSync(path.join(ROOT, f)) && statSync(path.join(ROOT, f)).isDirectory(), `${f} is a folder`);
  const src = readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `src/${e.name}`);
  for (const f of src) assert.ok(named.includes(f), `the Layout section lists ${f}`);
  for (const top of ['web', 'scripts', 'test', 'bench']) assert.ok(named.includes(top), `the Layout section lists ${top}/`);
});

it('README-ja\'s first-LoRA config trains as written (max_train_epochs, cache_latents, save_every_n_epochs), on the tiny model', { timeout: 240_000 }, async () => {
  const step2 = README_JA.slice(README_JA.indexOf('2. **設定を書く。**'), README_JA.indexOf('3. **見積もって学習する。**'));
  const json = /```json\n([\s\S]*?)```/.exec(step2)?.[1];
  assert.ok(json, 'README-ja shows the config as JSON');
  const cfg = JSON.parse(json) as Record<string, unknown>;
  for (const k of ['max_train_epochs', 'cache_latents', 'save_every_n_epochs', 'output_name', 'network_dim', 'network_alpha', 'mixed_precision', 'gradient_checkpointing']) assert.ok(k in cfg, `the config sets ${k}`);
  // Step 3 trains it with exactly this command.
  assert.match(README_JA, /node bin\/sdlora\.js train --config mychar\.json/);
  // The user's model and images swapped for the bundled tiny model and two images at its 32 px.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-ja-'));
  const concept = path.join(dir, 'dataset/train/1_mychar');
  mkdirSync(concept, { recursive: true });
  const src = path.join(DEMO_DATASET, readdirSync(DEMO_DATASET)[0]);
  for (const f of readdirSync(src).filter((x) => x.endsWith('.png')).slice(0, cfg.train_batch_size as number)) {
    copyFileSync(path.join(src, f), path.join(concept, f));
    writeFileSync(path.join(concept, f.replace(/\.png$/, String(cfg.caption_extension))), 'mychar, 1girl, smile');
  }
  const run = { ...cfg, pretrained_model_name_or_path: 'tiny', train_data_dir: path.join(dir, 'dataset/train'), output_dir: path.join(dir, 'output'), resolution: 32 };
  writeFileSync(path.join(dir, 'mychar.json'), JSON.stringify(run));
  execFileSync(process.execPath, [path.join(ROOT, 'bin/sdlora.js'), 'train', '--config', 'mychar.json', '--device', 'cpu'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 200_000 });
  const epochs = cfg.max_train_epochs as number, every = cfg.save_every_n_epochs as number, name = cfg.output_name as string;
  const out = readdirSync(path.join(dir, 'output'));
  // One batch per epoch here: max_train_epochs epochs, a LoRA every save_every_n_epochs, the last one final.
  const want = [...Array.from({ length: epochs - 1 }, (_, i) => i + 1).filter((e) => e % every === 0).map((e) => `${name}-${String(e).padStart(6, '0')}.safetensors`), `${name}.safetensors`];
  assert.deepEqual(out.filter((f) => f.endsWith('.safetensors')).sort(), want.sort());
  const { metadata } = await loadSafetensors(path.join(dir, 'output', `${name}.safetensors`));
  assert.equal(Number(metadata.ss_num_epochs), epochs);
  assert.equal(Number(metadata.ss_max_train_steps), epochs);
  assert.equal(metadata.ss_cache_latents, 'True');
  assert.equal(Number(metadata.ss_network_dim), cfg.network_dim);
  assert.equal(Number(metadata.ss_network_alpha), cfg.network_alpha);
  assert.equal(metadata.ss_mixed_precision, cfg.mixed_precision);
  assert.equal(metadata.ss_gradient_checkpointing, 'True');
});

it('README-ja carries the English README\'s SDXL set-up: the same commands and config', () => {
  const en = README.slice(README.indexOf('**SDXL.** The same config trains'));
  const enToml = /```toml\n([\s\S]*?)```/.exec(en)?.[1];
  assert.ok(enToml, 'the English README shows the SDXL config');
  const jaSdxl = README_JA.slice(README_JA.indexOf('## SDXL'));
  assert.ok(README_JA.includes('## SDXL'), 'README-ja has an SDXL section');
  const jaToml = /```toml\n([\s\S]*?)```/.exec(jaSdxl)?.[1];
  assert.ok(jaToml, 'README-ja shows the SDXL config');
  const keys = (t: string) => t.split('\n').filter((l) => /^\w+ =/.test(l)).map((l) => l.replace(/\s*#.*$/, ''));
  assert.deepEqual(keys(jaToml), keys(enToml));
  // The set-up commands for SDXL (train, txt2img, estimate) are the English README's, verbatim.
  const setup = /Your own LoRA on a real base[\s\S]*?```sh\n([\s\S]*?)```/.exec(README)?.[1];
  assert.ok(setup);
  // Commands joined across their continuation lines, without the trailing comment.
  const commands = (block: string) => block.replace(/\\\n\s*/g, '').split('\n').filter((l) => l.startsWith('node ')).map((l) => l.replace(/\s+#.*$/, '').trim());
  const sdxlCommands = commands(setup).filter((c) => /sd_?xl/i.test(c));
  assert.deepEqual(sdxlCommands.map((c) => c.split(' ')[2]), ['train', 'txt2img', 'estimate']);
  const jaCommands = commands(/```sh\n([\s\S]*?)```/.exec(jaSdxl)?.[1] ?? '');
  assert.deepEqual(jaCommands, sdxlCommands);
});

it('README-ja is the twin for set-up, the first LoRA, the studio and the options, with the same studio facts', () => {
  assert.match(README, /\[README-ja\.md\]\(README-ja\.md\) is this README's Japanese twin for set-up, the first LoRA, the studio\s+and the options/);
  for (const h of ['## セットアップ', '## はじめての LoRA', '## スタジオ (Web UI)', '## オプション']) assert.ok(README_JA.includes(`\n${h}\n`), `README-ja has ${h}`);
  // The studio's defaults and limits, as the English README gives them.
  const studioEn = section(README, '## Studio'), studioJa = section(README_JA, '## スタジオ (Web UI)');
  const host = /It listens on ([\d.]+)/.exec(studioEn)![1];
  const dir = /\(`--dir`, default\s+`([^`]+)`\)/.exec(studioEn)![1];
  const mb = /limited to (\d+) MB/.exec(studioEn)![1];
  assert.ok(studioJa.includes(`${host} で待ち受け`), host);
  assert.ok(studioJa.includes(`既定は \`${dir}\``), dir);
  assert.ok(studioJa.includes(`${mb} MB までの PNG・JPEG・WebP`), mb);
  for (const f of ['datasets/', 'loras/', 'generated/', 'trash/', 'jobs/']) assert.ok(studioEn.includes(`\`${f}\``) && studioJa.includes(`\`${f}\``), f);
  assert.ok(studioJa.includes('src/studio/ui/i18n/en.json') && studioEn.includes('src/studio/ui/i18n/{en,ja}.json'));
});
