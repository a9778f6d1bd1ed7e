// The safetensors metadata sd-scripts' LoRA tools write: train_util.build_minimum_network_metadata
// (svd_merge_lora.py), the ss_* updates of resize_lora.py's resize(), and extract_lora_from_models.py's
// minimum metadata. Values are Python str()/json.dumps renderings, so they read the same as the
// files sd-scripts writes.
import path from 'node:path';

/** Python's repr of a float: 1.0, 0.9, 1e-05, 1e+16. */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  // The decimal exponent of the shortest round-trip digits (log10 can land one off near powers of ten).
  const [m, e] = x.toExponential().split('e');
  const exp = Number(e);
  if (exp < -4 || exp >= 16) {
    // Python: mantissa, 'e', sign, at least two exponent digits
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Python json.dumps of a flat dict (', ' and ': ' separators); numbers must be ints. */
export function pyJsonDumps(obj: Record<string, string | number>): string {
  const items = Object.entries(obj).map(([k, v]) => {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new Error(`pyJsonDumps: ${k} = ${v} is not an int`);
    return `${JSON.stringify(k)}: ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`;
  });
  return `{${items.join(', ')}}`;
}

/**
 * svd_merge_lora: ss_network_module/dim/alpha (alpha = the new rank), ss_network_args with the conv
 * rank, and ss_v2 / ss_base_model_version taken from the first input that has them.
 */
export function svdMergeMetadata(inputs: Record<string, string>[], rank: number, convRank: number): Record<string, string> {
  const first = (key: string) => inputs.find((m) => m[key] !== undefined)?.[key];
  const v2 = first('ss_v2'), base = first('ss_base_model_version');
  return {
    ss_network_module: 'networks.lora', ss_network_dim: String(rank), ss_network_alpha: String(rank),
    ...(v2 !== undefined ? { ss_v2: v2 } : {}), ...(base !== undefined ? { ss_base_model_version: base } : {}),
    ss_network_args: pyJsonDumps({ conv_dim: convRank, conv_alpha: convRank }),
  };
}

export interface ResizeInfo {
  oldRank: number;
  rank: number;
  convRank: number;
  method?: string;
  param?: number;
  /** alpha of the last module resized (sd-scripts reports that one) */
  lastAlpha: number;
}

/** resize_lora.resize(): the input's metadata with ss_training_comment, ss_network_dim/alpha updated. */
export function resizeMetadata(input: Record<string, string>, r: ResizeInfo): Record<string, string> {
  const meta = { ...input };
  // The input's hashes describe other tensors; saving adds fresh ones.
  delete meta.sshs_model_hash;
  delete meta.sshs_legacy_hash;
  const comment = input.ss_training_comment ?? '';
  if (!r.method) {
    const conv = r.rank === r.convRank ? '' : ` (conv: ${r.convRank})`;
    meta.ss_training_comment = `dimension is resized from ${r.oldRank} to ${r.rank}${conv}; ${comment}`;
    meta.ss_network_dim = String(r.rank);
    meta.ss_network_alpha = pyFloat(r.lastAlpha);
  } else {
    meta.ss_training_comment = `Dynamic resize with ${r.method}: ${pyFloat(r.param!)} from ${r.oldRank}; ${comment}`;
    meta.ss_network_dim = 'Dynamic';
    meta.ss_network_alpha = 'Dynamic';
  }
  return meta;
}

/** model_util.get_model_version_str_for_sd1_sd2 */
const sdVersion = (v2: boolean, vParam: boolean) => `sd_${v2 ? 'v2' : 'v1'}${vParam ? '_v' : ''}`;

/** extract_lora_from_models: the minimum metadata (alpha is str(float(dim)), conv args as strings). */
export function extractMetadata(o: { v2: boolean; vParameterization: boolean; dim: number; convDim?: number }): Record<string, string> {
  const args: Record<string, string> = o.convDim === undefined ? {} : { conv_dim: String(o.convDim), conv_alpha: pyFloat(o.convDim) };
  return {
    ss_v2: o.v2 ? 'True' : 'False', ss_base_model_version: sdVersion(o.v2, o.vParameterization),
    ss_network_module: 'networks.lora', ss_network_dim: String(o.dim), ss_network_alpha: pyFloat(o.dim),
    ss_network_args: pyJsonDumps(args),
  };
}

/** sai_model_spec's architecture for a LoRA of an SD model ("<arch>/lora"). */
export function loraArchitecture(meta: { ss_v2?: string; ss_base_model_version?: string }, vParameterization = meta.ss_v2 === 'True'): string {
  const base = meta.ss_base_model_version ?? '';
  const arch = base.toLowerCase().startsWith('sdxl') ? 'stable-diffusion-xl-v1-base'
    : meta.ss_v2 === 'True' ? (vParameterization ? 'stable-diffusion-v2-768-v' : 'stable-diffusion-v2-512') : 'stable-diffusion-v1';
  return `${arch}/lora`;
}

/** The modelspec keys sdlora adds (sd-scripts adds these unless --no_metadata). */
export function modelspec(out: string, architecture: string, mergedFrom?: string): Record<string, string> {
  return {
    'modelspec.sai_model_spec': '1.0.1', 'modelspec.architecture': architecture,
    'modelspec.title': path.basename(out, path.extname(out)),
    ...(mergedFrom !== undefined ? { 'modelspec.merged_from': mergedFrom } : {}),
  };
}
