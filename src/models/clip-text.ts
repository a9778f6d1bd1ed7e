// CLIPTextModel and CLIPTextModelWithProjection (transformers models/clip/modeling_clip.py) as
// Stable Diffusion uses them: token + position embeddings, pre-LN encoder layers with a causal mask,
// final layer norm, pooled output at the EOS token; the projection variant (SDXL's second encoder,
// OpenCLIP bigG) adds `text_projection` (no bias) on the pooled row.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { lin, lnorm } from './layers.js';
import type { Weights } from './weights.js';

export interface CLIPTextConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  vocab_size: number;
  hidden_act: 'quick_gelu' | 'gelu' | 'gelu_new';
  layer_norm_eps: number;
  eos_token_id: number;
  /** Width of `text_projection` (CLIPTextModelWithProjection only). */
  projection_dim: number;
}

export function parseCLIPTextConfig(raw: Record<string, unknown>, source = 'text encoder config'): CLIPTextConfig {
  const num = (k: string, d?: number) => {
    const v = raw[k] ?? d;
    if (typeof v !== 'number') throw new Error(`${source}: "${k}" must be a number`);
    return v;
  };
  const act = (raw.hidden_act as string) ?? 'quick_gelu';
  if (!['quick_gelu', 'gelu', 'gelu_new'].includes(act)) throw new Error(`${source}: hidden_act ${act} is not supported`);
  return {
    hidden_size: num('hidden_size'), intermediate_size: num('intermediate_size'), num_hidden_layers: num('num_hidden_layers'),
    num_attention_heads: num('num_attention_heads'), max_position_embeddings: num('max_position_embeddings', 77),
    vocab_size: num('vocab_size'), hidden_act: act as CLIPTextConfig['hidden_act'], layer_norm_eps: num('layer_norm_eps', 1e-5),
    eos_token_id: num('eos_token_id', 2),
    projection_dim: num('projection_dim', num('hidden_size')),
  };
}

export interface CLIPTextOutput {
  /** final_layer_norm(last layer). */
  lastHiddenState: Tensor;
  /** Embeddings output, then each layer's output (no final norm): num_hidden_layers + 1 entries. */
  hiddenStates: Tensor[];
  /** lastHiddenState at the EOS position of each row. */
  pooled: Tensor;
}

export class CLIPTextModel {
  /**
   * Rows appended to the token embedding (textual-inversion vectors, ids vocab_size and up): the
   * table the forward reads is [token_embedding; extraTokenEmbeddings], the stored one is untouched.
   */
  extraTokenEmbeddings: Tensor | null = null;

  constructor(readonly config: CLIPTextConfig, readonly weights: Weights) {}

  /** The token embedding table the forward uses ([vocab_size + extra rows, hidden]). */
  tokenTable(): Tensor {
    const base = this.weights.get('text_model.embeddings.token_embedding.weight');
    return this.extraTokenEmbeddings ? E.concat([base, this.extraTokenEmbeddings], 0) : base;
  }

  /**
   * Token embeddings of `ids` (host copy `host`). With extra rows, ids past the stored table read
   * those rows and the rest the table, so a gradient (textual inversion) is only the extra rows' size:
   * the stored table, which on a GPU may be split across buffers, gets none. The same values as a
   * lookup in tokenTable().
   */
  private embedTokens(ids: Tensor, host: Int32Array): Tensor {
    const base = this.weights.get('text_model.embeddings.token_embedding.weight');
    const extra = this.extraTokenEmbeddings;
    if (!extra) return E.embedding(ids, base);
    const vocab = base.shape[0], be = ids.backend;
    const pick = (f: (id: number) => number) => E.tensor(host.map(f), ids.shape, 'i32', be);
    const inExtra = Float32Array.from(host, (id) => (id >= vocab ? 1 : 0));
    const mask = (m: Float32Array) => E.tensor(m, [...ids.shape, 1], 'f32', be);
    return E.add(
      E.mul(E.embedding(pick((id) => (id < vocab ? id : 0)), base), mask(inExtra.map((v) => 1 - v))),
      E.mul(E.embedding(pick((id) => (id >= vocab ? id - vocab : 0)), extra), mask(inExtra)),
    );
  }

  private act(x: Tensor): Tensor {
    switch (this.config.hidden_act) {
      case 'quick_gelu': return E.quickGelu(x);
      case 'gelu': return E.gelu(x);
      case 'gelu_new': return E.geluTanh(x);
    }
  }

  /**
   * EOS position per row. transformers: with eos_token_id 2 (old configs) it takes argmax(ids),
   * which is the EOS because CLIP's EOS is the largest id; otherwise the first eos_token_id.
   */
  eosIndex(ids: Int32Array, batch: number, len: number): number[] {
    const out: number[] = [];
    for (let b = 0; b < batch; b++) {
      const row = ids.subarray(b * len, (b + 1) * len);
      let k = 0;
      if (this.config.eos_token_id === 2) { for (let i = 1; i < len; i++) if (row[i] > row[k]) k = i; }
      else { k = row.indexOf(this.config.eos_token_id); if (k < 0) k = len - 1; }
      out.push(k);
    }
    return out;
  }

  forward(inputIds: Tensor): CLIPTextOutput {
    const w = this.weights, c = this.config;
    const ids = inputIds.to('i32');
    const [batch, len] = ids.shape;
    const p = 'text_model';
    const pos = E.tensor(Int32Array.from({ length: len }, (_, i) => i), [len], 'i32', ids.backend);
    const hostIds = ids.dataSync() as Int32Array;
    let h = E.add(this.embedTokens(ids, hostIds), E.embedding(pos, w.get(`${p}.embeddings.position_embedding.weight`)));
    const hidden: Tensor[] = [h];
    const heads = c.num_attention_heads;
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const l = `${p}.encoder.layers.${i}`;
      const x = lnorm(w, `${l}.layer_norm1`, h, c.layer_norm_eps);
      const q = lin(w, `${l}.self_attn.q_proj`, x), k = lin(w, `${l}.self_attn.k_proj`, x), v = lin(w, `${l}.self_attn.v_proj`, x);
      const o = E.multiHeadAttention(q, k, v, heads, { causal: true });
      h = E.add(h, lin(w, `${l}.self_attn.out_proj`, o));
      const y = lnorm(w, `${l}.layer_norm2`, h, c.layer_norm_eps);
      h = E.add(h, lin(w, `${l}.mlp.fc2`, this.act(lin(w, `${l}.mlp.fc1`, y))));
      hidden.push(h);
    }
    const last = this.finalNorm(h);
    const eos = this.eosIndex(hostIds, batch, len);
    const pooled = E.concat(eos.map((k, b) => E.reshape(E.slice(E.slice(last, 0, b, b + 1), 1, k, k + 1), [1, c.hidden_size])), 0);
    return { lastHiddenState: last, hiddenStates: hidden, pooled };
  }

  finalNorm(h: Tensor): Tensor {
    return lnorm(this.weights, 'text_model.final_layer_norm', h, this.config.layer_norm_eps);
  }

  /** The UNet context with sd-scripts' clip_skip: final_layer_norm(hidden_states[-clipSkip]). */
  encode(inputIds: Tensor, clipSkip = 1): Tensor {
    if (clipSkip <= 1) return this.forward(inputIds).lastHiddenState;
    const hs = this.forward(inputIds).hiddenStates;
    return this.finalNorm(hs[hs.length - clipSkip]);
  }
}

export interface CLIPTextProjectionOutput extends CLIPTextOutput {
  /** text_projection(pooled): SDXL's pooled `text_embeds`. [B, projection_dim] */
  textEmbeds: Tensor;
}

/** transformers CLIPTextModelWithProjection: the pooled EOS row through `text_projection` (no bias). */
export class CLIPTextModelWithProjection extends CLIPTextModel {
  override forward(inputIds: Tensor): CLIPTextProjectionOutput {
    const out = super.forward(inputIds);
    return { ...out, textEmbeds: lin(this.weights, 'text_projection', out.pooled) };
  }
}
