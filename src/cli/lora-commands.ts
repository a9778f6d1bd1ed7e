// `sdlora lora ...`: list a LoRA folder, and the merge / resize / extract tools.
import path from 'node:path';
import type { Command } from 'commander';
import * as E from '../engine/index.js';
import { LoRALibrary } from '../lora/library.js';
import { addnetHash, saveLoRA } from '../lora/lora-save.js';
import { type LoRAFile, assertPlainLoRA, loadLoRA } from '../lora/lora-file.js';
import { mergeIntoFamilyCheckpoint } from '../lora/merge-family-checkpoint.js';
import { extractFamilyMetadata, extractLayers } from '../lora/extract-layers.js';
import { extractMetadata, loraArchitecture, modelspec, resizeMetadata, svdMergeMetadata } from '../lora/tool-metadata.js';
import { DEFAULT_CLAMP_QUANTILE, DYNAMIC_METHODS, type DynamicMethod, extractLoRA, resizeLoRA, svdMergeLoRAs } from '../lora/tools.js';
import { loadSDModel } from '../models/sd-model.js';
import { readJson } from '../models/loader.js';
import { ProgressBar } from './progress.js';

/** "file.safetensors:0.7" -> file and ratio (default 1). */
function weighted(spec: string): { file: string; ratio: number } {
  const m = /^(.*?)(?::(-?[\d.]+))?$/.exec(spec)!;
  const ratio = m[2] === undefined ? 1 : Number(m[2]);
  if (!Number.isFinite(ratio)) throw new Error(`bad ratio in "${spec}"`);
  return { file: m[1], ratio };
}

function topTags(json: string | undefined, n = 5): string {
  if (!json) return '';
  try {
    const freq = JSON.parse(json) as Record<string, Record<string, number>>;
    const all = new Map<string, number>();
    for (const d of Object.values(freq)) for (const [t, c] of Object.entries(d)) all.set(t, (all.get(t) ?? 0) + c);
    return [...all].sort((a, b) => b[1] - a[1]).slice(0, n).map(([t, c]) => `${t}(${c})`).join(' ');
  } catch { return '(unreadable ss_tag_frequency)'; }
}

const precisionOpt = (v: string) => {
  const p = v.toUpperCase();
  if (!['F32', 'F16', 'BF16', 'FLOAT', 'FP16'].includes(p)) throw new Error(`precision must be f32, f16 or bf16, got ${v}`);
  return (p === 'FLOAT' ? 'F32' : p === 'FP16' ? 'F16' : p) as 'F32' | 'F16' | 'BF16';
};

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${v}`);
  return n;
};

const nonNegative = (v: string) => {
  const x = Number(v);
  if (!(x >= 0)) throw new Error(`expected a number >= 0, got ${v}`);
  return x;
};

const quantileOpt = (v: string) => {
  const q = Number(v);
  if (!(q >= 0 && q <= 1)) throw new Error(`--clamp-quantile must be in [0, 1], got ${v}`);
  return q;
};

/** A LoRA for the SVD tools, which rewrite every module: keys they do not understand are refused, not dropped. */
async function loadToolLoRA(file: string, tool: string): Promise<LoRAFile> {
  const l = await loadLoRA(file);
  assertPlainLoRA(l, tool);
  return l;
}

export function registerLoRACommands(program: Command): void {
  const lora = program.command('lora').description('LoRA library and tools');

  lora.command('list').description('list the LoRAs in a folder (subfolders included) with their training metadata')
    .argument('<dir>', 'LoRA folder').option('--json', 'machine-readable output')
    .action(async (dir: string, o: { json?: boolean }) => {
      const lib = await LoRALibrary.scan(dir);
      const rows = [];
      for (const e of lib.entries) {
        const md = e.metadata;
        rows.push({
          name: e.relName, alias: e.alias, base: md.ss_sd_model_name ?? md.ss_base_model_version ?? '',
          // A Textual Inversion embedding (sd-scripts' ModelSpec says so) is not a LoRA: say what it is.
          algorithm: md['modelspec.architecture']?.endsWith('/textual-inversion') ? 'textual-inversion embedding (txt2img --embeddings-dir, sdlora embeddings list)' : e.summary.algorithms.join('+'),
          rank: e.summary.rank, alpha: e.summary.alpha, family: e.summary.family,
          resolution: md.ss_resolution ?? md['modelspec.resolution'] ?? '', tags: topTags(md.ss_tag_frequency),
          hash: (md.sshs_model_hash ?? (await addnetHash(e.path))).slice(0, 12), mb: (e.bytes / 1048576).toFixed(1),
        });
      }
      if (o.json) { console.log(JSON.stringify({ root: dir, loras: rows, problems: lib.problems }, null, 2)); return; }
      if (!rows.length) console.log(`no .safetensors LoRAs under ${dir}`);
      for (const r of rows) {
        console.log(`${r.name}${r.alias !== path.basename(r.name) ? ` (alias ${r.alias})` : ''}  [${r.hash}]  ${r.mb} MB`);
        console.log(`    ${r.algorithm}  rank: ${r.rank}  alpha: ${r.alpha}  family: ${r.family}  base: ${r.base || '?'}  resolution: ${r.resolution || '?'}`);
        if (r.tags) console.log(`    tags: ${r.tags}`);
      }
      for (const p of lib.problems) console.error(`skipped: ${p}`);
    });

  lora.command('merge').description('merge LoRAs into a single-file checkpoint (merge_lora.py --sd_model)')
    .requiredOption('--model <ckpt>', 'base .safetensors checkpoint (LDM/SGM layout: SD 1.x, SD 2.x or SDXL)')
    .requiredOption('--lora <file:ratio...>', 'LoRA files with ratios, e.g. a.safetensors:0.8')
    .requiredOption('--out <file>', 'output checkpoint')
    .option('--unet-config <json>', 'diffusers UNet config.json of the model (default: the full-size config of the family its keys show)')
    .option('--precision <p>', 'save precision f32|f16|bf16', precisionOpt, 'F32' as const)
    .action(async (o: { model: string; lora: string[]; out: string; unetConfig?: string; precision: 'F32' | 'F16' | 'BF16' }) => {
      const loras = await Promise.all(o.lora.map(async (s) => { const w = weighted(s); return { lora: await loadLoRA(w.file), ratio: w.ratio }; }));
      const bar = new ProgressBar('merge', loras.length, 'lora');
      const r = await mergeIntoFamilyCheckpoint(o.model, loras, o.out, { unetConfig: o.unetConfig ? readJson(o.unetConfig) : undefined, precision: o.precision, onProgress: (i) => bar.update(i) });
      console.log(`${o.out}: ${r.changed} weights of the ${r.family} model changed`);
      if (r.unknown.length) console.log(`${r.unknown.length} LoRA modules matched no layer (first: ${r.unknown[0]})`);
    });

  lora.command('merge-loras').description('merge several LoRAs into one by SVD (svd_merge_lora.py)')
    .requiredOption('--lora <file:ratio...>', 'LoRA files with ratios')
    .option('--rank <n>', 'new rank (new_rank)', positiveInt, 4)
    .option('--conv-rank <n>', 'new rank of 3x3 conv modules (new_conv_rank; default --rank)', positiveInt)
    .option('--no-clamp', 'skip the 0.99-quantile clamp sd-scripts applies (exact best rank-k approximation)')
    .requiredOption('--out <file>', 'output LoRA').option('--precision <p>', 'f32|f16|bf16', precisionOpt, 'F32' as const)
    .action(async (o: { lora: string[]; rank: number; convRank?: number; clamp: boolean; out: string; precision: 'F32' | 'F16' | 'BF16' }) => {
      const inputs = await Promise.all(o.lora.map(async (s) => { const w = weighted(s); return { lora: await loadToolLoRA(w.file, 'merge-loras'), ratio: w.ratio }; }));
      const convRank = o.convRank ?? o.rank;
      const modules = svdMergeLoRAs(inputs, o.rank, { convRank, clampQuantile: o.clamp ? DEFAULT_CLAMP_QUANTILE : null });
      const meta = svdMergeMetadata(inputs.map((i) => i.lora.metadata), o.rank, convRank);
      const titles = inputs.map((i) => i.lora.metadata['modelspec.title'] ?? path.basename(i.lora.path, path.extname(i.lora.path)));
      await saveLoRA(o.out, modules, { ...meta, ...modelspec(o.out, loraArchitecture(meta), titles.join(', ')) }, o.precision);
      console.log(`${o.out}: ${modules.length} modules at rank ${o.rank} (conv ${convRank})${o.clamp ? '' : ', unclamped'}`);
    });

  lora.command('resize').description('change the rank of a LoRA by SVD (resize_lora.py)')
    .argument('<in>', 'input LoRA').option('--rank <n>', 'new (maximum) rank (new_rank)', positiveInt, 4).requiredOption('--out <file>', 'output LoRA')
    .option('--conv-rank <n>', 'rank of conv modules, 1x1 included as in sd-scripts (new_conv_rank; default --rank)', positiveInt)
    .option('--dynamic-method <m>', 'sv_ratio | sv_fro | sv_cumulative').option('--dynamic-param <x>', 'parameter of the dynamic method', Number)
    .option('--precision <p>', 'f32|f16|bf16', precisionOpt, 'F32' as const)
    .action(async (input: string, o: { rank: number; out: string; convRank?: number; dynamicMethod?: string; dynamicParam?: number; precision: 'F32' | 'F16' | 'BF16' }) => {
      if (o.dynamicMethod && !(DYNAMIC_METHODS as readonly string[]).includes(o.dynamicMethod)) throw new Error(`--dynamic-method must be ${DYNAMIC_METHODS.join(', ')}, got ${o.dynamicMethod}`);
      if (o.dynamicMethod && !o.dynamicParam) throw new Error('--dynamic-method needs a non-zero --dynamic-param');
      if (!o.dynamicMethod && o.dynamicParam !== undefined) throw new Error('--dynamic-param has no effect without --dynamic-method');
      const file = await loadToolLoRA(input, 'resize');
      const convRank = o.convRank ?? o.rank;
      const method = o.dynamicMethod as DynamicMethod | undefined;
      const { modules, ranks, oldRank } = resizeLoRA(file, o.rank, { convRank, method, param: o.dynamicParam });
      const meta = resizeMetadata(file.metadata, { oldRank, rank: o.rank, convRank, method, param: o.dynamicParam, lastAlpha: modules[modules.length - 1]?.alpha ?? 0 });
      await saveLoRA(o.out, modules, meta, o.precision);
      const rs = [...ranks.values()];
      console.log(`${o.out}: ranks ${Math.min(...rs)}..${Math.max(...rs)} (mean ${(rs.reduce((a, b) => a + b, 0) / rs.length).toFixed(1)})`);
    });

  lora.command('extract').description('extract a LoRA from the difference of two models (extract_lora_from_models.py)')
    .requiredOption('--base <model>', 'original model (folder or single file)').requiredOption('--tuned <model>', 'fine-tuned model')
    .option('--dim <n>', 'rank', positiveInt, 4).option('--conv-dim <n>', 'rank of 3x3 convs (LoCon); off by default', positiveInt)
    .option('--clamp-quantile <q>', 'clamp both factors to [-hi, hi], hi = this quantile of their signed values (as sd-scripts)', quantileOpt, DEFAULT_CLAMP_QUANTILE)
    .option('--min-diff <x>', 'text-encoder differences at most this are ignored', nonNegative, 0.01)
    .option('--config-dir <dir>', 'configs for single-file models').requiredOption('--out <file>', 'output LoRA')
    .option('--precision <p>', 'f32|f16|bf16', precisionOpt, 'F32' as const)
    .action(async (o: { base: string; tuned: string; dim: number; convDim?: number; clampQuantile: number; minDiff: number; configDir?: string; out: string; precision: 'F32' | 'F16' | 'BF16' }) => {
      await E.initCpuBackend(); // the SVDs' float32 products run on the WebAssembly GEMM
      const base = await loadSDModel(o.base, { configDir: o.configDir });
      const tuned = await loadSDModel(o.tuned, { configDir: o.configDir });
      const layers = extractLayers(base, tuned, { conv: o.convDim !== undefined, baseName: o.base, tunedName: o.tuned });
      const bar = new ProgressBar('extract', layers.length, 'module');
      const modules = E.noGrad(() => extractLoRA(layers, o.dim, { convDim: o.convDim, minDiff: o.minDiff, clampQuantile: o.clampQuantile, onProgress: (i) => bar.update(i) }));
      // sd-scripts takes v2 from --v2; sdlora reads it from the model (SD 2.x cross-attends to 1024-wide embeddings).
      const v2 = base.unet.config.cross_attention_dim === 1024, vParameterization = base.scheduler.prediction_type === 'v_prediction';
      const meta = { ...extractMetadata({ v2, vParameterization, dim: o.dim, convDim: o.convDim }), ...extractFamilyMetadata(base) };
      await saveLoRA(o.out, modules, { ...meta, ...modelspec(o.out, loraArchitecture(meta, vParameterization)) }, o.precision);
      console.log(`${o.out}: ${modules.length} modules (text encoder ${modules.some((m) => /^lora_te\d?_/.test(m.name)) ? 'included' : 'unchanged, skipped'})`);
    });
}
