// The subset of diffusers' UNet2DConditionModel config that SD 1.x/2.x use, read from config.json.
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
}

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
  for (const k of ['class_embed_type', 'addition_embed_type', 'encoder_hid_dim', 'time_cond_proj_dim']) {
    if (raw[k] !== null && raw[k] !== undefined) throw new Error(`${source}: "${k}" (${JSON.stringify(raw[k])}) is not supported (SD 1.x/2.x UNets only)`);
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
  };
}
