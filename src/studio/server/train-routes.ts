// Train page API: the option schema the form is generated from (the CLI's own list), presets,
// import of sd-scripts JSON/TOML and kohya_ss GUI configs through the CLI's config reader,
// export as JSON or TOML, and the estimator's VRAM/RAM/time for the form's values.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { estimateConfig } from '../../estimate/config-estimate.js';
import { ASSUMPTIONS, type Estimate } from '../../estimate/estimate.js';
import { familyOfModel } from '../../estimate/family-inputs.js';
import { familyById, familyLabel } from '../../families/index.js';
import { DEVICES, findDevice } from '../../estimate/gpus.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';
import { TINY_MODEL_DIR } from '../../models/hub.js';
import { OPTIONS } from '../../train/config-schema.js';
import { ConfigError, type TrainConfig, readConfigLayer, resolveConfig } from '../../train/config.js';
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
  // The family as `sdlora estimate` finds it (a folder's configs, a file's keys, else SD 1.x), and
  // the method's own estimate (LoRA, textual inversion, DreamBooth).
  const model = String(cfg.pretrained_model_name_or_path);
  const found = familyOfModel(model === 'tiny' ? TINY_MODEL_DIR : model, Boolean(cfg.v2));
  const e = estimateConfig(cfg as TrainConfig, found, device);
  return { ...e, device: device.name, model: `${familyLabel(familyById(found.id), cfg.v_parameterization ? 'v_prediction' : 'epsilon')} (from ${model === 'tiny' ? 'the bundled tiny model' : found.how})` };
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
