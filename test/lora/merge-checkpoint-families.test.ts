// `lora merge` into single-file checkpoints of SD 2.x (OpenCLIP `cond_stage_model.model.*` with fused
// in_proj, the last resblock kept though the conditioning drops it) and SDXL (`conditioner.embedders.0
// .transformer.*`, OpenCLIP `conditioner.embedders.1.model.*`, SGM UNet names): the merged file loads
// and gives what applying the same LoRAs at runtime gives (text conditioning, pooled embeds, UNet
// output); the file keeps its key layout and every tensor no LoRA touches; a q/k/v LoRA lands in its
// slice of in_proj_weight. LoRAs: sd-scripts' module set trained on the tiny SD 2.x model and the
// golden SDXL LoRA files, with seeded random factors so that every module changes its layer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { encodeText } from '../../src/families/text.js';
import { type ModelFamily, SD2, SDXL } from '../../src/families/index.js';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { applyLoRA, removeLoRA } from '../../src/lora/apply.js';
import { familyComponents } from '../../src/lora/components.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { mergeIntoCheckpoint } from '../../src/lora/merge-checkpoint.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase } from '../helpers/golden.js';
import { loraFiles } from '../helpers/golden-sdxl.js';
import { tinySd2Folder, tinySd2SingleFile, tinySdxlSingleFile } from '../helpers/tiny-sd2.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-merge-families-'));
const run = (args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', cwd: tmp });
const ATOL = 1e-4;
const RATIOS = [0.7, 0.3];

interface Case { family: ModelFamily; file: string; configDir: string; loras: string[] }
const cases = new Map<string, Case>();

/** The file's tensors with every lora_down/lora_up replaced by seeded N(0, 0.2^2) values (alphas and metadata kept). */
async function randomized(src: string, out: string, seed: number): Promise<string> {
  const { tensors, metadata } = await loadSafetensors(src);
  const rng = new E.Rng(seed);
  const entries = Object.entries(tensors).map(([k, t]): [string, Tensor] => [k, /\.lora_(down|up)\.weight$/.test(k) ? E.mulScalar(E.randn([...t.shape], rng), 0.2) : t]);
  await saveSafetensors(out, entries, metadata);
  return out;
}

/** Text conditioning and one UNet output of a loaded model (runtime adapters included). */
function outputs(m: SDModel): Record<string, Tensor> {
  return E.noGrad(() => {
    const cond = encodeText(m, ['a blue star', 'a photo of a red circle on a white background']);
    const sizes = [0, 1].map(() => ({ originalSize: [40, 48] as [number, number], cropTopLeft: [0, 8] as [number, number], targetSize: [32, 32] as [number, number] }));
    const x = E.randn([2, m.unet.config.in_channels, 8, 8], new E.Rng(11));
    const out: Record<string, Tensor> = { context: cond.context, unet: m.unet.forward(x, E.tensor([100, 700], [2]), cond.context, m.family.addedConditioning(cond, sizes)) };
    if (cond.textEmbeds) out.textEmbeds = cond.textEmbeds;
    return out;
  });
}

async function runtime(c: Case): Promise<Record<string, Tensor>> {
  const m = await loadSDModel(c.file, { configDir: c.configDir });
  const reports = [];
  for (const [i, f] of c.loras.entries()) reports.push(applyLoRA(await loadLoRA(f), { components: familyComponents(m) }, { unet: RATIOS[i], te: RATIOS[i] }));
  try { return outputs(m); } finally { reports.forEach(removeLoRA); }
}

function merge(c: Case, out: string, loras = c.loras): void {
  const r = run(['lora', 'merge', '--model', c.file, '--lora', ...loras.map((f, i) => `${f}:${RATIOS[i]}`), '--out', out,
    '--unet-config', path.join(c.configDir, 'unet', 'config.json')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`weights of the ${c.family.name.replace(/[.]/g, '\\.')} model changed`));
}

async function keysOf(file: string): Promise<string[]> {
  const f = await SafetensorsFile.open(file);
  try { return f.keys(); } finally { await f.close(); }
}

describe('lora merge into SD 2.x and SDXL single files', () => {
  before(async () => {
    await E.initCpuBackend();
    // SD 2.x: sd-scripts' module set from a short training run on the tiny model, then random factors.
    const folder = await tinySd2Folder('v_prediction');
    const data = path.join(tmp, 'data');
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 2 });
    const trained = await train(resolveConfig([{ source: 'test', values: {
      pretrained_model_name_or_path: folder, train_data_dir: data, caption_extension: '.txt', resolution: 32, max_train_steps: 1,
      network_dim: 4, network_alpha: 2, seed: 5, v2: true, v_parameterization: true, output_dir: path.join(tmp, 'sd2-lora'),
    } }]), { log: () => {} });
    const sd2 = await tinySd2SingleFile('v_prediction');
    cases.set('sd2', { family: SD2, ...sd2, loras: await Promise.all([1, 2].map((s) => randomized(trained.finalPath!, path.join(tmp, `sd2-${s}.safetensors`), s))) });
    // SDXL: the golden kohya SDXL LoRAs (te1, te2, SGM UNet names, LoCon convs).
    const xl = await tinySdxlSingleFile();
    const golden = [...loraFiles(goldenCase('sdxl-lora')).values()].slice(0, 2);
    cases.set('sdxl', { family: SDXL, ...xl, loras: await Promise.all(golden.map((f, i) => randomized(f, path.join(tmp, `xl-${i}.safetensors`), 10 + i))) });
  });

  for (const id of ['sd2', 'sdxl']) {
    it(`${id}: the merged checkpoint gives the runtime LoRAs' outputs and keeps the file's layout`, async () => {
      const c = cases.get(id)!;
      const out = path.join(tmp, `${id}-merged.safetensors`);
      merge(c, out);
      const merged = await loadSDModel(out, { configDir: c.configDir });
      assert.equal(merged.family, c.family);
      const base = outputs(await loadSDModel(c.file, { configDir: c.configDir }));
      const want = await runtime(c), got = outputs(merged);
      for (const k of Object.keys(want)) {
        assert.ok(maxAbsDiff(want[k].dataSync(), base[k].dataSync()) > 1e-3, `${k}: the LoRAs change it`);
        const d = maxAbsDiff(got[k].dataSync(), want[k].dataSync());
        assert.ok(d <= ATOL, `${id} ${k}: merged vs runtime max |diff| ${d.toExponential(2)}`);
      }
      // Same keys in the same order; every tensor outside the LoRAs' layers unchanged (VAE, logit_scale, SD 2.x's dropped block).
      assert.deepEqual(await keysOf(out), await keysOf(c.file));
      const [src, dst] = [(await loadSafetensors(c.file)).tensors, (await loadSafetensors(out)).tensors];
      const changed = Object.keys(src).filter((k) => maxAbsDiff(src[k].dataSync(), dst[k].dataSync()) > 0);
      assert.ok(changed.length > 0);
      for (const k of changed) assert.match(k, /^(model\.diffusion_model\.|cond_stage_model\.|conditioner\.embedders\.)/, `${k} changed`);
      assert.ok(changed.every((k) => !k.startsWith('first_stage_model.')));
      for (const spec of c.family.textEncoders.filter((s) => s.layout === 'openclip')) {
        assert.ok(changed.some((k) => k.startsWith(spec.singleFilePrefix) && k.endsWith('.attn.in_proj_weight')), `${spec.singleFilePrefix}: fused q/k/v merged`);
        if (spec.dropLastBlock) {
          const last = Math.max(...Object.keys(src).map((k) => new RegExp(`^${spec.singleFilePrefix.replace(/\./g, '\\.')}transformer\\.resblocks\\.(\\d+)\\.`).exec(k)).filter((m) => m).map((m) => Number(m![1])));
          assert.ok(!changed.some((k) => k.startsWith(`${spec.singleFilePrefix}transformer.resblocks.${last}.`)), 'the dropped last block is kept as it was');
        }
      }
    });
  }

  it('sd2: a k_proj LoRA changes only the k rows of in_proj_weight, by ratio · alpha/rank · up @ down', async () => {
    const c = cases.get('sd2')!;
    const lora = await loadLoRA(c.loras[0]);
    const name = [...lora.modules.keys()].find((n) => /^lora_te_text_model_encoder_layers_\d+_self_attn_k_proj$/.test(n))!;
    const layer = Number(/layers_(\d+)_/.exec(name)![1]);
    const { tensors, metadata } = await loadSafetensors(c.loras[0]);
    const only = path.join(tmp, 'k-only.safetensors');
    await saveSafetensors(only, Object.entries(tensors).filter(([k]) => k.startsWith(`${name}.`)), metadata);
    const out = path.join(tmp, 'sd2-k.safetensors');
    merge(c, out, [only]);
    const key = `${SD2.textEncoders[0].singleFilePrefix}transformer.resblocks.${layer}.attn.in_proj_weight`;
    const [src, dst] = [(await loadSafetensors(c.file)).tensors[key], (await loadSafetensors(out)).tensors[key]];
    const w = src.shape[1], m = lora.modules.get(name)!;
    const delta = E.mulScalar(E.matmul(m.up, m.down), RATIOS[0] * m.alpha / m.down.shape[0]).dataSync();
    const s = src.dataSync(), d = dst.dataSync();
    for (let r = 0; r < 3 * w; r++) {
      for (let j = 0; j < w; j++) {
        const i = r * w + j;
        const want = r >= w && r < 2 * w ? s[i] + delta[(r - w) * w + j] : s[i];
        assert.ok(Math.abs(d[i] - want) <= 1e-6, `row ${r} col ${j}: ${d[i]} vs ${want}`);
      }
    }
  });

  it('names the checkpoint and its family when a LoRA of another family matches none of its layers', () => {
    const sd2 = cases.get('sd2')!, xl = cases.get('sdxl')!;
    const r = run(['lora', 'merge', '--model', sd2.file, '--lora', `${xl.loras[0]}:1`, '--out', path.join(tmp, 'bad.safetensors'),
      '--unet-config', path.join(sd2.configDir, 'unet', 'config.json')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /sd2\.safetensors \(SD 2\.x\)/);
    assert.match(r.stderr, /xl-0\.safetensors/);
    assert.match(r.stderr, /matches a layer of this model/);
  });

  it('the SD 1.x-only merge refuses SD 2.x and SDXL files, naming the file and family', async () => {
    for (const [id, name] of [['sd2', /SD 2\.x/], ['sdxl', /SDXL/]] as const) {
      const c = cases.get(id)!;
      await assert.rejects(mergeIntoCheckpoint(c.file, [{ lora: await loadLoRA(c.loras[0]), ratio: 1 }], path.join(tmp, `${id}-old.safetensors`)),
        (e: Error) => e.message.startsWith(c.file) && name.test(e.message) && /only cond_stage_model\.transformer\./.test(e.message));
    }
  });

  it('lora list names the base family of SD 2.x and SDXL LoRAs, from metadata or SDXL module names', async () => {
    const lib = path.join(tmp, 'list');
    mkdirSync(lib);
    const noMeta = async (src: string, name: string) => {
      const { tensors } = await loadSafetensors(src);
      await saveSafetensors(path.join(lib, name), Object.entries(tensors), {});
    };
    const sd2 = cases.get('sd2')!, xl = cases.get('sdxl')!;
    await saveSafetensors(path.join(lib, 'sd2.safetensors'), Object.entries((await loadSafetensors(sd2.loras[0])).tensors), (await loadSafetensors(sd2.loras[0])).metadata);
    await noMeta(xl.loras[0], 'xl-keys.safetensors');
    // UNet-only SDXL LoRA without metadata: the SGM block names tell.
    const { tensors } = await loadSafetensors(xl.loras[0]);
    await saveSafetensors(path.join(lib, 'xl-unet.safetensors'), Object.entries(tensors).filter(([k]) => k.startsWith('lora_unet_')), {});
    const r = run(['lora', 'list', lib, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const fam = Object.fromEntries((JSON.parse(r.stdout).loras as { name: string; family: string }[]).map((x) => [path.basename(x.name, '.safetensors'), x.family]));
    assert.equal(fam.sd2, 'sd2-v (from metadata)');
    assert.equal(fam['xl-keys'], 'sdxl (from keys)');
    assert.equal(fam['xl-unet'], 'sdxl (from keys)');
  });
});
