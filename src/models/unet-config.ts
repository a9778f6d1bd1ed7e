// The subset of diffusers' UNet2DConditionModel config that SD 1.x, SD 2.x and SDXL use, read from
// config.json (diffusers unets/unet_2d_condition.py). Variants outside that subset are refused by name.
export interface UNetConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  mid_block_type: string;
  layers_per_block: number;
  /** Heads per level (diffusers' legacy name: attention_head_dim holds the head count). */
  heads: number[];
  transformer_layers: number[];
  cross_attention_dim: number;
  norm_num_groups: number;
  norm_eps: number;
  use_linear_projection: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  downsample_padding: number;
  /**
   * SDXL's added conditioning (`addition_embed_type: "text_time"`): pooled text embeds and six
   * sinusoidally embedded size/crop ids through `add_embedding`; null for SD 1.x/2.x.
   */
  addition: { type: 'text_time'; time_embed_dim: number; input_dim: number } | null;
}

const FIXED: [string, unknown[]][] = [
  ['act_fn', ['silu']], ['time_embedding_type', ['positional']], ['resnet_time_scale_shift', ['default']],
  ['conv_in_kernel', [3]], ['conv_out_kernel', [3]], ['center_input_sample', [false]], ['dual_cross_attention', [false]],
  ['only_cross_attention', [false]], ['class_embeddings_concat', [false]], ['resnet_skip_time_act', [false]],
  ['resnet_out_scale_factor', [1]], ['mid_block_scale_factor', [1]], ['attention_type', ['default']],
  ['cross_attention_norm', [null]], ['timestep_post_act', [null]], ['time_embedding_act_fn', [null]], ['dropout', [0]],
  ['mid_block_only_cross_attention', [false]], ['encoder_hid_dim_type', [null]], ['num_class_embeds', [null]],
];

const perLevel = (v: unknown, n: number, what: string): number[] => {
  if (typeof v === 'number') return new Array(n).fill(v);
  if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number')) return v as number[];
  throw new Error(`unet config: ${what} must be a number or a list of ${n} numbers, got ${JSON.stringify(v)}`);
};

export function parseUNetConfig(raw: Record<string, unknown>, source = 'unet config'): UNetConfig {
  const need = (k: string) => {
    if (raw[k] === undefined) throw new Error(`${source}: missing "${k}"`);
    return raw[k];
  };
  const boc = need('block_out_channels') as number[];
  const n = boc.length;
  const down = need('down_block_types') as string[];
  const up = need('up_block_types') as string[];
  for (const t of [...down, ...up]) {
    if (!['DownBlock2D', 'CrossAttnDownBlock2D', 'UpBlock2D', 'CrossAttnUpBlock2D'].includes(t)) throw new Error(`${source}: block type ${t} is not supported`);
  }
  const mid = (raw.mid_block_type as string | undefined) ?? 'UNetMidBlock2DCrossAttn';
  if (mid !== 'UNetMidBlock2DCrossAttn') throw new Error(`${source}: mid_block_type ${mid} is not supported`);
  for (const k of ['class_embed_type', 'encoder_hid_dim', 'time_cond_proj_dim', 'reverse_transformer_layers_per_block', 'time_embedding_dim']) {
    if (raw[k] !== null && raw[k] !== undefined) throw new Error(`${source}: "${k}" (${JSON.stringify(raw[k])}) is not supported (SD 1.x/2.x/SDXL UNets only)`);
  }
  // Keys whose other values would change the computation: only the value implemented here is accepted.
  for (const [k, ok] of FIXED) {
    const v = raw[k];
    // Per-level lists (only_cross_attention [false, false]) are fine when every entry is.
    const fine = v === undefined || v === null || (Array.isArray(v) ? v.every((x) => ok.includes(x)) : ok.includes(v));
    if (!fine) throw new Error(`${source}: "${k}" ${JSON.stringify(raw[k])} is not supported (expected ${ok.map((v) => JSON.stringify(v)).join(' or ')})`);
  }
  const additionType = raw.addition_embed_type ?? null;
  if (additionType !== null && additionType !== 'text_time') {
    throw new Error(`${source}: addition_embed_type ${JSON.stringify(additionType)} is not supported (only SDXL's "text_time")`);
  }
  const addition = additionType === 'text_time'
    ? { type: 'text_time' as const, time_embed_dim: need('addition_time_embed_dim') as number, input_dim: need('projection_class_embeddings_input_dim') as number }
    : null;
  for (const k of ['layers_per_block', 'cross_attention_dim']) {
    if (raw[k] !== undefined && typeof raw[k] !== 'number') throw new Error(`${source}: "${k}" must be one number (per-level lists are not supported), got ${JSON.stringify(raw[k])}`);
  }
  const heads = perLevel(raw.num_attention_heads ?? raw.attention_head_dim ?? 8, n, 'attention_head_dim');
  return {
    in_channels: need('in_channels') as number,
    out_channels: need('out_channels') as number,
    block_out_channels: boc,
    down_block_types: down,
    up_block_types: up,
    mid_block_type: mid,
    layers_per_block: (raw.layers_per_block as number) ?? 2,
    heads,
    transformer_layers: perLevel(raw.transformer_layers_per_block ?? 1, n, 'transformer_layers_per_block'),
    cross_attention_dim: need('cross_attention_dim') as number,
    norm_num_groups: (raw.norm_num_groups as number) ?? 32,
    norm_eps: (raw.norm_eps as number) ?? 1e-5,
    use_linear_projection: Boolean(raw.use_linear_projection),
    flip_sin_to_cos: (raw.flip_sin_to_cos as boolean) ?? true,
    freq_shift: (raw.freq_shift as number) ?? 0,
    downsample_padding: (raw.downsample_padding as number) ?? 1,
    addition,
  };
}
