// network_module = "lycoris.kohya": LyCORIS' kohya network (lycoris/kohya.py create_network and
// LycorisNetworkKohya) on any family's components. A preset (lycoris/config.py PRESET) picks the
// layers by the sd-scripts UNet/CLIP classes they sit in (Transformer2DModel, ResnetBlock2D,
// Down/Upsample2D, CrossAttention, CLIPAttention, CLIPMLP) and by name (conv_in, conv_out,
// time_embedding.linear_1/2); Linear and 1x1 conv layers get network_dim/network_alpha, kxk convs
// conv_dim/conv_alpha (both default to network_dim/network_alpha, and presets without convs skip
// them). The file holds LyCORIS' own keys (`<lora_name>.hada_w1_a`, `.lokr_w1`, `.lora_down.weight`,
// `.alpha`, `.dora_scale`), which A1111 and ComfyUI load.
import type * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type LoRAComponent, moduleName } from '../lora/components.js';
import type { AdapterModule } from '../lora/formats/kinds.js';
import type { LoRAFile } from '../lora/lora-file.js';
import { layerPaths } from '../lora/names.js';
import { splitArgs } from './arg-spec.js';
import { type LycorisAlgo, LycorisModule, type LycorisModuleOptions, createLycorisModule } from './lycoris-modules.js';
import { AdapterNetwork, type NetworkModels, type NetworkParam, componentsOf } from './adapter-network.js';

/** What a preset targets: text-encoder parts, UNet parts, layers by sd-scripts name, and whether kxk convs are trained. */
interface Preset {
  te: ('attn' | 'mlp')[];
  unet: ('transformer' | 'resnet' | 'sampler' | 'attention')[];
  names: string[];
  conv: boolean;
}

const FULL_NAMES = ['conv_in', 'conv_out', 'time_embedding.linear_1', 'time_embedding.linear_2'];

/** LyCORIS' built-in presets (lycoris/config.py), for the SD UNet and CLIP text encoders. */
export const LYCORIS_PRESETS: Record<string, Preset> = {
  full: { te: ['attn', 'mlp'], unet: ['transformer', 'resnet', 'sampler'], names: FULL_NAMES, conv: true },
  'full-lin': { te: ['attn', 'mlp'], unet: ['transformer', 'resnet'], names: FULL_NAMES.slice(2), conv: false },
  'attn-mlp': { te: ['attn', 'mlp'], unet: ['transformer'], names: [], conv: false },
  'attn-only': { te: ['attn'], unet: ['attention'], names: [], conv: false },
  'unet-only': { te: [], unet: ['transformer', 'resnet', 'sampler'], names: FULL_NAMES, conv: true },
  'unet-transformer-only': { te: [], unet: ['transformer'], names: [], conv: false },
  'unet-convblock-only': { te: [], unet: ['resnet', 'sampler'], names: FULL_NAMES.slice(0, 2), conv: true },
};

/** The algos sdlora trains (`lora` is LyCORIS' name for LoCon). */
export const LYCORIS_TRAINED_ALGOS = ['lora', 'locon', 'loha', 'lokr'];

const TE_PART = { attn: /\.self_attn\.(q|k|v|out)_proj$/, mlp: /\.mlp\.fc[12]$/ };
const UNET_PART = {
  // Every Linear/Conv inside a Transformer2DModel, ResnetBlock2D, Down/Upsample2D, CrossAttention.
  transformer: /(^|\.)attentions\.\d+\./,
  resnet: /(^|\.)resnets\.\d+\./,
  sampler: /(^|\.)(downsamplers|upsamplers)\.\d+\./,
  attention: /\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/,
};

export interface LycorisNetworkOptions extends LycorisModuleOptions {
  dim: number;
  alpha: number;
  convDim: number;
  convAlpha: number;
  preset: string;
  trainUnet: boolean;
  trainTextEncoder: boolean;
}

const bool = (v: string | undefined, d: boolean) => (v === undefined ? d : /^true$/i.test(v));

/** LyCORIS create_network's reading of network_args (already checked by network-args.ts). */
export function lycorisOptions(networkArgs: string[], o: { dim: number; alpha: number; trainUnet: boolean; trainTextEncoder: boolean }): LycorisNetworkOptions {
  const a = splitArgs(networkArgs);
  const algo = (a.algo ?? 'lora').toLowerCase();
  if (!LYCORIS_TRAINED_ALGOS.includes(algo)) throw new Error(`lycoris.kohya algo=${algo} is not implemented in sdlora (it trains ${LYCORIS_TRAINED_ALGOS.join(', ')})`);
  const preset = a.preset ?? 'full';
  if (!LYCORIS_PRESETS[preset]) throw new Error(`lycoris.kohya preset=${preset}: sdlora implements LyCORIS' built-in presets ${Object.keys(LYCORIS_PRESETS).join(', ')}; preset files and ia3 are not implemented`);
  // kohya.py: int(conv_dim or network_dim), float(conv_alpha or network_alpha); a preset without convs sets conv_dim 0.
  const convDim = Number(a.conv_dim) || o.dim, convAlpha = Number(a.conv_alpha) || o.alpha;
  return {
    ...o, algo: (algo === 'lora' ? 'locon' : algo) as LycorisAlgo, preset, convDim: LYCORIS_PRESETS[preset].conv ? convDim : 0, convAlpha,
    useTucker: ['use_tucker', 'use_cp', 'use_conv_cp', 'disable_conv_cp'].some((k) => bool(a[k], false)),
    factor: a.factor === undefined ? -1 : Number(a.factor),
    decomposeBoth: bool(a.decompose_both, false), fullMatrix: bool(a.full_matrix, false),
    unbalancedFactorization: bool(a.unbalanced_factorization, false),
    doraWd: bool(a.dora_wd, false), wdOnOutput: bool(a.wd_on_output, true), rsLora: bool(a.rs_lora, false),
    rankDropout: Number(a.rank_dropout ?? 0), moduleDropout: Number(a.module_dropout ?? 0),
  };
}

export interface LycorisTarget { name: string; path: string; component: LoRAComponent; dim: number; alpha: number }

/** The layers a preset trains, with LyCORIS' rank and alpha for each (create_single_module). */
export function lycorisTargets(components: readonly LoRAComponent[], o: LycorisNetworkOptions): LycorisTarget[] {
  const preset = LYCORIS_PRESETS[o.preset];
  const out: LycorisTarget[] = [];
  for (const c of components) {
    for (const p of layerPaths(c.weights)) {
      const hit = c.lrGroup === 'te'
        ? preset.te.some((k) => TE_PART[k].test(p))
        : preset.unet.some((k) => UNET_PART[k].test(p)) || preset.names.includes(c.namePath(p));
      if (!hit) continue;
      const s = c.weights.raw(`${p}.weight`).shape;
      const kxk = s.length === 4 && s[2] * s[3] > 1;
      if (kxk && !o.convDim) continue;
      out.push({ name: moduleName(c, p), path: p, component: c, dim: kxk ? o.convDim : o.dim, alpha: kxk ? o.convAlpha : o.alpha });
    }
  }
  return out;
}

/** The algo of a module read from a file (network_weights). */
const algoOf = (m: AdapterModule): LycorisAlgo => {
  if (m.kind === 'lora') return 'locon';
  if (m.kind === 'full') throw new Error(`module "${m.name}" is a full weight diff, which sdlora does not train`);
  return m.kind;
};

export class LycorisNetwork extends AdapterNetwork<LycorisModule> {
  constructor(readonly options: LycorisNetworkOptions, readonly rng: E.Rng) { super(); }

  static create(models: NetworkModels, o: LycorisNetworkOptions, rng: E.Rng): LycorisNetwork {
    const net = new LycorisNetwork(o, rng);
    for (const t of lycorisTargets(componentsOf(models).filter((c) => net.trains(c)), o)) {
      net.modules.push(createLycorisModule(t.name, t.path, t.component, t.component.weights.get(`${t.path}.weight`), t.dim, t.alpha, o, rng));
    }
    return net;
  }

  /** Modules from an existing LyCORIS file (network_weights), trainable, of the kinds it holds. */
  static fromFile(file: LoRAFile, models: NetworkModels, o: LycorisNetworkOptions, rng: E.Rng): LycorisNetwork {
    const net = new LycorisNetwork(o, rng);
    for (const [m, ref] of net.layersOf(file.path, file.adapters.values(), models)) {
      const params = new Map<string, Tensor>();
      const put = (k: string, t?: Tensor) => { if (t) params.set(k, t.detach().requireGrad()); };
      let alpha: number | undefined;
      if (m.kind === 'lora') {
        put('lora_down.weight', m.weights.down); put('lora_mid.weight', m.mid); put('lora_up.weight', m.weights.up);
        alpha = m.weights.alpha;
      } else if (m.kind === 'loha') {
        for (const [k, t] of [['hada_w1_a', m.w1a], ['hada_w1_b', m.w1b], ['hada_w2_a', m.w2a], ['hada_w2_b', m.w2b], ['hada_t1', m.t1], ['hada_t2', m.t2]] as const) put(k, t);
        alpha = m.alpha ?? m.w1b.shape[0];
      } else if (m.kind === 'lokr') {
        for (const [k, t] of [['lokr_w1', m.w1], ['lokr_w1_a', m.w1a], ['lokr_w1_b', m.w1b], ['lokr_w2', m.w2], ['lokr_w2_a', m.w2a], ['lokr_w2_b', m.w2b], ['lokr_t2', m.t2]] as const) put(k, t);
        alpha = m.alpha ?? m.w1b?.shape[0] ?? m.w2b?.shape[0] ?? 1;
      }
      put('dora_scale', m.doraScale);
      const shape = ref.component.weights.raw(`${ref.path}.weight`).shape;
      net.modules.push(new LycorisModule(moduleName(ref.component, ref.path), ref.path, ref.component, algoOf(m), params, alpha!, shape, o, rng));
    }
    return net;
  }

  /** Whether this network trains a component (network_train_unet_only / _text_encoder_only). */
  trains(c: LoRAComponent): boolean {
    return c.lrGroup === 'te' ? this.options.trainTextEncoder : this.options.trainUnet;
  }

  /** Parameters with their group ('te' or 'unet'), named by their file keys. */
  parameters(): NetworkParam[] {
    return this.modules.flatMap((m) => [...m.params.keys()].map((k) => ({
      param: () => m.params.get(k)!, set: (t: Tensor) => { m.params.set(k, t); }, group: m.component.lrGroup, name: `${m.name}.${k}`,
    })));
  }

  /** Every tensor of the file, sorted by key (safetensors' order for one dtype). */
  tensors(): [string, Tensor][] {
    return this.modules.flatMap((m) => m.tensors()).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** scale_weight_norms on the host copies of the parameters (LyCORIS apply_max_norm_regularization). */
  async applyMaxNorm(maxNorm: number, host: (t: Tensor) => Promise<Float32Array>): Promise<number> {
    let scaled = 0;
    for (const m of this.modules) if (await m.applyMaxNorm(maxNorm, host)) scaled++;
    return scaled;
  }
}
