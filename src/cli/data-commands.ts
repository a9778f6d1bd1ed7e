// `sdlora dataset check` and `sdlora estimate`.
import type { Command } from 'commander';
import { checkDataset, formatCheckReport } from '../data/dataset-check.js';
import { calibrateCpu } from '../estimate/calibrate.js';
import { ASSUMPTIONS } from '../estimate/estimate.js';
import { METHOD_ASSUMPTIONS } from '../estimate/method-estimate.js';
import { estimateConfig } from '../estimate/config-estimate.js';
import { methodOf } from '../train/training-method.js';
import { DEVICES, findDevice } from '../estimate/gpus.js';
import { FAMILY_IDS, type FamilyFound, familyOfModel } from '../estimate/family-inputs.js';
import { type FamilyId, familyById, familyLabel } from '../families/index.js';
import { readJson } from '../models/loader.js';
import { configFromArgs } from './train-command.js';

export function registerDataCommands(program: Command): void {
  const ds = program.command('dataset').description('dataset tools');
  ds.command('check').description('check a kohya-layout dataset (counts, captions, duplicates, buckets, tags, backgrounds)')
    .argument('<dir>', 'the train_data_dir (parent of <repeats>_<name> folders)')
    .option('--resolution <n>', 'training resolution', Number, 512).option('--caption-extension <ext>', 'caption extension', '.txt')
    .option('--batch-size <n>', 'batch size (for bucket fill)', Number, 1).option('--json', 'machine-readable report')
    .action(async (dir: string, o: { resolution: number; captionExtension: string; batchSize: number; json?: boolean }) => {
      const r = await checkDataset(dir, { resolution: o.resolution, captionExtension: o.captionExtension, batchSize: o.batchSize });
      console.log(o.json ? JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2) : formatCheckReport(r));
      if (r.concepts.some((c) => c.unreadable.length)) process.exitCode = 1;
    });

  program.command('estimate').description('estimate VRAM, RAM and time of a training config on GPUs, per resolution')
    .option('--config <file>', 'training config (JSON/TOML); its resolution, batch, rank, precision and steps are used')
    .option('--gpu <ids>', `comma-separated: ${DEVICES.map((d) => d.id).join(', ')}, or "all"`, 'rtx-5070-ti,rtx-5080,rtx-5090')
    .option('--resolutions <list>', 'resolutions to tabulate (default: the config\'s)', '')
    .option('--family <id>', `model family: ${FAMILY_IDS.join(', ')} (default: from the config's pretrained_model_name_or_path, else sd1)`)
    .option('--unet-config <json>', 'diffusers UNet config (default: the family\'s, or the model folder\'s unet/config.json)')
    .option('--naive-attention', 'count materialized attention scores (no flash attention)')
    .option('--calibrate', 'measure the cpu backend on this machine first')
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; family?: string; gpu: string; resolutions: string; unetConfig?: string; naiveAttention?: boolean; calibrate?: boolean; json?: boolean }) => {
      const cfg = o.config ? configFromArgs(['--config', o.config]) : configFromArgs(['--pretrained_model_name_or_path', 'sd15', '--train_data_dir', '.', '--mixed_precision', 'fp16', '--gradient_checkpointing', '--network_dim', '32']);
      if (o.family !== undefined && !FAMILY_IDS.includes(o.family as FamilyId)) throw new Error(`--family ${o.family}: expected one of ${FAMILY_IDS.join(', ')}`);
      const found: FamilyFound = o.family ? { id: o.family as FamilyId, how: '--family' } : familyOfModel(o.config ? cfg.pretrained_model_name_or_path as string : undefined, Boolean(cfg.v2));
      const family = familyById(found.id);
      const unetConfig = o.unetConfig ? readJson(o.unetConfig) as Record<string, unknown> : undefined;
      const prediction = cfg.v_parameterization ? 'v_prediction' : 'epsilon';
      const devices = (o.gpu === 'all' ? DEVICES : o.gpu.split(',').map((g) => findDevice(g.trim()))).map((d) => ({ ...d }));
      const cpu = devices.find((d) => d.id === 'cpu');
      if (o.calibrate && cpu) {
        const c = await calibrateCpu(cpu.tflops);
        cpu.efficiency = c.efficiency;
        console.error(`calibrated: a small UNet training step ran at ${c.gflops.toFixed(1)} GFLOP/s (${c.msPerStep.toFixed(0)} ms), ${(100 * c.efficiency).toFixed(0)}% of the GEMM peak`);
      }
      // The family's default resolution (SDXL: 1024 px) unless the config gives one, as training does.
      const explicit = (cfg.__explicit as string[] | undefined ?? []).includes('resolution') && o.config;
      const side = family.defaults(prediction).resolution;
      const [cw, ch] = explicit ? cfg.resolution as [number, number] : [side, side];
      const resolutions: [number, number][] = o.resolutions ? o.resolutions.split(',').map((r) => [Number(r), Number(r)]) : [[cw, ch]];
      const rows = [];
      for (const d of devices) for (const res of resolutions) {
        const e = estimateConfig(cfg, found, d, { resolution: res, unetConfig, naiveAttention: o.naiveAttention });
        rows.push({ device: d.name, resolution: `${res[0]}x${res[1]}`, ...e });
      }
      const assumptions = [...ASSUMPTIONS, ...METHOD_ASSUMPTIONS];
      if (o.json) { console.log(JSON.stringify({ family: found.id, familyFrom: found.how, rows, assumptions }, null, 2)); return; }
      console.log(`${familyLabel(family, prediction)} (from ${found.how}), ${methodOf(cfg)}, batch ${cfg.train_batch_size}, ${methodOf(cfg) === 'lora' ? `rank ${cfg.network_dim}, ` : ''}${cfg.mixed_precision === 'no' ? 'fp32' : cfg.mixed_precision}, gradient checkpointing ${cfg.gradient_checkpointing ? 'on' : 'off'}, ${cfg.optimizer_type}, ${cfg.max_train_steps} steps\n`);
      // Every figure with its expected range: VRAM from sdlora's own accounting up to what kohya
      // users need in practice, time with the error band of the fit (src/estimate/estimate.ts).
      console.log('| device | resolution | VRAM GB (sdlora - kohya practice) | fits | RAM GB | TFLOP/step | s/step (range) | total (range) |');
      console.log('|---|---|---:|---|---:|---:|---:|---:|');
      const dur = (h: number) => (h >= 1 ? `${h.toFixed(1)} h` : `${(h * 60).toFixed(0)} min`);
      for (const r of rows) {
        const [lo, hi] = r.secondsRange, f = r.totalHours / r.secondsPerStep;
        console.log(`| ${r.device} | ${r.resolution} | ${r.vramRangeGB[0].toFixed(1)} - ${r.vramRangeGB[1].toFixed(1)} | ${r.fits ? 'yes' : 'NO'} | ${r.ramGB.toFixed(1)} | ${r.stepTflop.toFixed(2)} | ${r.secondsPerStep.toFixed(2)} (${lo.toFixed(2)}-${hi.toFixed(2)}) | ${dur(r.totalHours)} (${dur(lo * f)}-${dur(hi * f)}) |`);
      }
      console.log('\nassumptions:');
      for (const a of assumptions) console.log(`  - ${a}`);
    });
}
