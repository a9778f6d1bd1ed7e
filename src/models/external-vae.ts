// An external VAE replacing the model's own (sd-scripts --vae, A1111's VAE setting): a single-file
// checkpoint with first_stage_model.* keys, a bare LDM VAE file (vae-ft-mse-840000 style), a VAE
// .safetensors with diffusers keys, or a diffusers vae/ folder (or a model folder holding one).
// LDM names go through the same key map as checkpoints; every file is checked against the config.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { reshape } from '../engine/ops/layout.js';
import type { Tensor } from '../engine/tensor.js';
import { checkShapes, loadStateDict, readJson } from './loader.js';
import { convertLdmKeys, vaePrefixMap } from './ldm-keys.js';
import { vaeParamShapes } from './model-params.js';
import { AutoencoderKL, type VAEConfig, parseVAEConfig } from './vae.js';
import { Weights } from './weights.js';

/** Older diffusers VAE attention names (before to_q/to_k/to_v/to_out.0). */
const OLD_ATTENTION: [string, string][] = [['.query.', '.to_q.'], ['.key.', '.to_k.'], ['.value.', '.to_v.'], ['.proj_attn.', '.to_out.0.']];

/** The file each externally loaded VAE came from (for infotext and logs). */
const loadedFrom = new WeakMap<AutoencoderKL, string>();
export const externalVaeSource = (vae: AutoencoderKL): string | undefined => loadedFrom.get(vae);

export type VaeKeyLayout = 'ldm' | 'diffusers';

/** How a state dict names its VAE tensors, and those tensors with any checkpoint prefix removed. */
export function vaeTensors(all: Map<string, Tensor>, file: string): { layout: VaeKeyLayout; tensors: Map<string, Tensor> } {
  const prefixed = [...all.keys()].some((k) => k.startsWith('first_stage_model.'));
  const tensors = prefixed
    ? new Map([...all].filter(([k]) => k.startsWith('first_stage_model.')).map(([k, v]) => [k.slice('first_stage_model.'.length), v]))
    : new Map([...all].filter(([k]) => /^(encoder|decoder|quant_conv|post_quant_conv)\./.test(k)));
  const keys = [...tensors.keys()];
  if (keys.some((k) => /^(encoder|decoder)\.(down|up)_blocks\.|^(encoder|decoder)\.mid_block\./.test(k))) return { layout: 'diffusers', tensors };
  if (keys.some((k) => /^(encoder|decoder)\.(down|up)\.\d+\.|^(encoder|decoder)\.mid\.block_/.test(k))) return { layout: 'ldm', tensors };
  throw new Error(`${file}: no VAE weights found (expected first_stage_model.*, LDM encoder.down.* or diffusers encoder.down_blocks.* keys)`);
}

/** Diffusers-named weights from either layout, checked against `cfg`. */
export function externalVaeWeights(all: Map<string, Tensor>, cfg: VAEConfig, file: string): Weights {
  const { layout, tensors } = vaeTensors(all, file);
  let w: Map<string, Tensor>;
  if (layout === 'ldm') {
    w = convertLdmKeys(tensors, vaePrefixMap(cfg));
  } else {
    w = new Map([...tensors].map(([k, v]) => {
      const r = OLD_ATTENTION.find(([a]) => k.includes('.attentions.') && k.includes(a));
      // Old diffusers attention projections may be stored as 1x1 convs.
      return [r ? k.replace(r[0], r[1]) : k, r && v.rank === 4 ? reshape(v, v.shape.slice(0, 2)) : v] as [string, Tensor];
    }));
  }
  checkShapes(vaeParamShapes(cfg), w, `${file} (external VAE, ${layout} keys)`);
  return new Weights(w, `${file} (external VAE)`);
}

/** The weights file and config of a diffusers VAE folder, or of a model folder's vae/. */
function folderParts(dir: string): { file: string; config: string } {
  const sub = existsSync(path.join(dir, 'vae', 'config.json')) ? path.join(dir, 'vae') : dir;
  const config = path.join(sub, 'config.json');
  if (!existsSync(config)) throw new Error(`${dir}: not a diffusers VAE folder (no config.json, no vae/config.json)`);
  for (const name of ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors']) {
    if (existsSync(path.join(sub, name))) return { file: path.join(sub, name), config };
  }
  throw new Error(`${sub}: no diffusion_pytorch_model.safetensors`);
}

/**
 * Loads the VAE at `source` for a model whose own VAE is `base`. A single file without a config
 * uses the base VAE's config (as sd-scripts does); a folder's config must give the same latents.
 * The latent scaling factor stays the model's.
 */
export async function loadExternalVae(source: string, base: AutoencoderKL): Promise<AutoencoderKL> {
  if (!existsSync(source)) throw new Error(`vae: ${source}: no such file or folder`);
  let file = source, cfg = base.config;
  const sibling = path.join(path.dirname(source), 'config.json');
  const configFile = statSync(source).isDirectory() ? folderParts(source).config : existsSync(sibling) && /diffusion_pytorch_model/.test(path.basename(source)) ? sibling : null;
  if (statSync(source).isDirectory()) file = folderParts(source).file;
  if (configFile) {
    // The latent scale belongs to the UNet's training (sd-scripts and A1111 keep the model's).
    cfg = { ...parseVAEConfig(readJson(configFile)), scaling_factor: base.config.scaling_factor };
    if (cfg.latent_channels !== base.config.latent_channels) {
      throw new Error(`vae: ${source} has ${cfg.latent_channels} latent channels, the model's UNet works on ${base.config.latent_channels}`);
    }
  }
  const vae = new AutoencoderKL(cfg, externalVaeWeights(await loadStateDict(file), cfg, file));
  loadedFrom.set(vae, source);
  return vae;
}
