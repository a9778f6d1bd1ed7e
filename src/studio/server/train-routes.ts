// Train page API: the option schema the form is generated from (the CLI's own list), presets,
// import of sd-scripts JSON/TOML and kohya_ss GUI configs through the CLI's config reader,
// export as JSON or TOML, and the estimator's VRAM/RAM/time for the form's values.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { ASSUMPTIONS, type Estimate, estimate } from '../../estimate/estimate.js';
import { DEVICES, findDevice } from '../../estimate/gpus.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';
import { TINY_MODEL_DIR } from '../../models/hub.js';
import { SD15_TEXT_CONFIG, SD15_UNET_CONFIG } from '../../models/sd15-configs.js';
import { parseUNetConfig } from '../../models/unet-config.js';
import { OPTIONS } from '../../train/config-schema.js';
import { ConfigError, readConfigLayer, resolveConfig } from '../../train/config.js';
import { PATH_OPTIONS } from '../jobs/job-config.js';
import { HttpError, type Router, readJson, sendBytes, sendJson } from './http-kit.js';
import { toKohyaGui } from './kohya-gui-export.js';
import type { Workspace } from './workspace.js';

/** Starting points for the form; each names what it is for. */
export const PRESETS: { id: string; values: Record<string, unknown> }[] = [
  { id: 'tiny-demo', values: { pretrained_model_name_or_path: 'tiny', resolution: 32, train_batch_size: 2, max_train_steps: 40, learning_rate: 5e-3, network_dim: 8, network_alpha: 8, optimizer_type: 'AdamW', lr_scheduler: 'constant', cache_latents: true, save_every_n_steps: 10, seed: 1 } },
  { id: 'sd15-character', values: { resolution: 512, train_batch_size: 2, max_train_epochs: 10, learning_rate: 1e-4, unet_lr: 1e-4, text_encoder_lr: 5e-5, network_dim: 32, network_alpha: 16, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine_with_restarts', lr_warmup_steps: 0.05, mixed_precision: 'fp16', gradient_checkpointing: true, cache_latents: true, enable_bucket: true, min_snr_gamma: 5, save_every_n_epochs: 1, shuffle_caption: true, keep_tokens: 1 } },
  { id: 'sdxl', values: { resolution: 1024, train_batch_size: 1, max_train_epochs: 10, learning_rate: 1e-4, network_dim: 32, network_alpha: 16, network_train_unet_only: true, optimizer_type: 'AdamW8bit', lr_scheduler: 'cosine', mixed_precision: 'bf16', gradient_checkpointing: true, cache_latents: true, enable_bucket: true, min_bucket_reso: 512, max_bucket_reso: 2048, save_every_n_epochs: 1 } },
  { id: 'low-vram', values: { resolution: 512, train_batch_size: 1, max_train_epochs: 10, learning_rate: 1e-4, network_dim: 16, network_alpha: 8, network_train_unet_only: true, optimizer_type: 'AdamW8bit', mixed_precision: 'fp16', gradient_checkpointing: true, cache_latents: true, cache_latents_to_disk: true, save_every_n_epochs: 1 } },
];

/** What the form shows: the schema minus the options the studio sets itself and the no-effect ones. */
export function formSchema() {
  return OPTIONS.filter((o) => !o.ignored && !PATH_OPTIONS.includes(o.key) && o.key !== 'caption_extention')
    .map((o) => ({ key: o.key, type: o.type, default: o.default, doc: o.doc, choices: o.choices, min: o.min, max: o.max }));
}

function unetConfigFor(model: string): { unet: ReturnType<typeof parseUNetConfig>; te: number; vae: number; layers: number; hidden: number; label: string } {
  const dir = model === 'tiny' ? TINY_MODEL_DIR : model;
  const cfgFile = path.join(dir, 'unet', 'config.json');
  if (dir && existsSync(cfgFile)) {
    const te = JSON.parse(readFileSync(path.join(dir, 'text_encoder', 'config.json'), 'utf8')) as { hidden_size: number; num_hidden_layers: number; intermediate_size: number };
    // Frozen parameter counts from the configs (12 h^2 + 2 h i per layer, close enough for memory).
    const teParams = te.num_hidden_layers * (4 * te.hidden_size ** 2 + 2 * te.hidden_size * te.intermediate_size);
    return { unet: parseUNetConfig(JSON.parse(readFileSync(cfgFile, 'utf8'))), te: teParams, vae: model === 'tiny' ? 1e5 : 83.65e6, layers: te.num_hidden_layers, hidden: te.hidden_size, label: model };
  }
  return { unet: parseUNetConfig(SD15_UNET_CONFIG), te: 123e6, vae: 83.65e6, layers: SD15_TEXT_CONFIG.num_hidden_layers, hidden: SD15_TEXT_CONFIG.hidden_size, label: 'SD 1.5 (assumed)' };
}

/** The estimator's answer for a form's values on one device; `fits` false means the job is refused. */
export function estimateForm(values: Record<string, unknown>, deviceId: string): Estimate & { device: string; model: string } {
  let cfg: Record<string, unknown>;
  try {
    cfg = resolveConfig([{ source: 'form', values: { train_data_dir: '.', pretrained_model_name_or_path: 'tiny', ...values } }]) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof ConfigError) throw new HttpError(400, e.message);
    throw e;
  }
  let device;
  try { device = findDevice(deviceId); } catch (e) { throw new HttpError(400, (e as Error).message); }
  const m = unetConfigFor(String(cfg.pretrained_model_name_or_path));
  const e = estimate({
    unet: m.unet, textEncoderParams: m.te, vaeParams: m.vae, textEncoderLayers: m.layers, textHidden: m.hidden,
    resolution: cfg.resolution as [number, number], batch: cfg.train_batch_size as number, rank: cfg.network_dim as number, mixedPrecision: cfg.mixed_precision !== 'no',
    gradientCheckpointing: Boolean(cfg.gradient_checkpointing), cacheLatents: Boolean(cfg.cache_latents), trainTextEncoder: !cfg.network_train_unet_only,
    optimizer: String(cfg.optimizer_type), steps: cfg.max_train_steps as number, naiveAttention: device.id === 'cpu',
  }, device);
  return { ...e, device: device.name, model: m.label };
}

export function registerTrainRoutes(r: Router, ws: Workspace): void {
  r.add('GET', '/api/train/schema', (_q, res) => sendJson(res, 200, { options: formSchema(), presets: PRESETS, devices: DEVICES.map((d) => ({ id: d.id, name: d.name, memoryGB: d.memoryGB })), assumptions: ASSUMPTIONS }));

  r.add('POST', '/api/train/estimate', async (req, res) => {
    const b = await readJson<{ values: Record<string, unknown>; device?: string }>(req);
    sendJson(res, 200, estimateForm(b.values ?? {}, b.device ?? 'cpu'));
  });

  // Import: the text of a config file, read by the CLI's reader (kohya_ss GUI presets mapped too).
  r.add('POST', '/api/train/import', async (req, res) => {
    const b = await readJson<{ filename: string; text: string }>(req, 2 << 20);
    const ext = path.extname(String(b.filename ?? '')).toLowerCase();
    if (!['.json', '.toml'].includes(ext)) throw new HttpError(400, 'import a .json or .toml config file');
    if (typeof b.text !== 'string') throw new HttpError(400, 'text must be the file\'s content');
    const tmp = path.join(ws.folder('tmp'), `import-${process.pid}-${Date.now()}${ext}`);
    await writeBufferAtomic(tmp, Buffer.from(b.text));
    try {
      const layer = readConfigLayer(tmp);
      const values: Record<string, unknown> = {};
      const notes = [...(layer.notes ?? [])].map((n) => n.split(tmp).join(b.filename));
      const known = new Set(formSchema().map((o) => o.key));
      for (const [k, v] of Object.entries(layer.values)) {
        if (k === 'train_data_dir' || k === 'reg_data_dir') { notes.push(`${k} "${v}" is a folder of another machine: choose a studio dataset`); continue; }
        if (PATH_OPTIONS.includes(k) || k === 'sample_prompts') { notes.push(`${k} is set by the studio; the imported value is not used`); continue; }
        if (!known.has(k)) { notes.push(`${k}: not an option the studio form has; not imported`); continue; }
        values[k] = v;
      }
      sendJson(res, 200, { values, notes });
    } catch (e) {
      throw new HttpError(400, (e as Error).message.split(tmp).join(b.filename));
    } finally { rmSync(tmp, { force: true }); }
  });

  r.add('POST', '/api/train/export', async (req, res) => {
    const b = await readJson<{ values: Record<string, unknown>; format: string }>(req);
    const values = Object.fromEntries(Object.entries(b.values ?? {}).filter(([, v]) => v !== undefined && v !== null && v !== ''));
    if (b.format === 'toml') sendBytes(res, 'application/toml', toToml(values), { 'content-disposition': 'attachment; filename="config.toml"' });
    else if (b.format === 'json') sendBytes(res, 'application/json', JSON.stringify(values, null, 2), { 'content-disposition': 'attachment; filename="config.json"' });
    else if (b.format === 'kohya-gui') {
      const { config, notes } = toKohyaGui(values);
      sendBytes(res, 'application/json', JSON.stringify(config, null, 2), { 'content-disposition': 'attachment; filename="kohya-gui.json"', 'x-sdlora-notes': encodeURIComponent(JSON.stringify(notes)) });
    } else throw new HttpError(400, 'format must be json, toml or kohya-gui');
  });
}
