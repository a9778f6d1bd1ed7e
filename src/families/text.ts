// Captions to UNet conditioning for any family: tokenize for each text encoder (its own padding),
// run the encoders over [B * chunks, 77] ids, and let the family pick layers and pool. Long prompts
// (max_token_length 150/225) are stitched as sd-scripts does (library/strategy_sd.py,
// strategy_sdxl.py): the first chunk's BOS state, 75 states per chunk, the last chunk's final state.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { CLIPTextModel, CLIPTextProjectionOutput } from '../models/clip-text.js';
import type { CLIPTokenizer } from '../models/clip-tokenizer.js';
import type { ModelFamily, TextConditioning, TextEncoderRun } from './family.js';

export interface TextOptions {
  /** sd-scripts max_token_length: undefined (75), 150 or 225. */
  maxTokenLength?: number;
  /** sd-scripts clip_skip (SD 1.x/2.x only). */
  clipSkip?: number;
}

export interface TextStack {
  family: ModelFamily;
  textEncoders: CLIPTextModel[];
  tokenizers: CLIPTokenizer[];
}

/**
 * [B * k, 77, d] chunk states -> [B, 2 + 75k, d]. One rule for every family: sd-scripts' v2 branch
 * (pad != eos) would copy a PAD state over an empty chunk's first state, but it compares token ids
 * with the EOS token *string*, so it never fires; its SDXL branch has it commented out.
 */
export function stitchChunks(h: Tensor, batch: number, k: number): Tensor {
  if (k === 1) return h;
  const [, len, d] = h.shape;
  const per = E.reshape(h, [batch, k, len, d]);
  const parts: Tensor[] = [E.reshape(E.slice(E.slice(per, 1, 0, 1), 2, 0, 1), [batch, 1, d])];
  for (let j = 0; j < k; j++) parts.push(E.reshape(E.slice(E.slice(per, 1, j, j + 1), 2, 1, len - 1), [batch, len - 2, d]));
  parts.push(E.reshape(E.slice(E.slice(per, 1, k - 1, k), 2, len - 1, len), [batch, 1, d]));
  return E.concat(parts, 1);
}

/** Runs every text encoder of the family on its own token ids. */
export function runTextEncoders(m: Pick<TextStack, 'family' | 'textEncoders'>, ids: Tensor[]): TextEncoderRun[] {
  return m.family.textEncoders.map((spec, i) => {
    const te = m.textEncoders[i];
    const out = te.forward(ids[i]);
    return {
      spec,
      hiddenStates: out.hiddenStates,
      finalNorm: (h: Tensor) => te.finalNorm(h),
      textEmbeds: spec.withProjection ? (out as CLIPTextProjectionOutput).textEmbeds : undefined,
    };
  });
}

/** Token ids per text encoder: [B * chunks, 77] each, and the number of chunks. */
export function tokenizeCaptions(m: TextStack, captions: string[], maxTokenLength?: number): { ids: Tensor[]; chunks: number } {
  let chunks = 0;
  const ids = m.tokenizers.map((tok) => {
    const rows = captions.map((c) => tok.encodeLong(c, maxTokenLength ?? 75));
    chunks = rows[0].length;
    return E.tensor(rows.flat(2), [captions.length * chunks, rows[0][0].length], 'i32');
  });
  return { ids, chunks };
}

/** Captions to the family's conditioning (differentiable: text encoder LoRA trains through it). */
export function encodeText(m: TextStack, captions: string[], o: TextOptions = {}): TextConditioning {
  if (m.textEncoders.length !== m.family.textEncoders.length || m.tokenizers.length !== m.textEncoders.length) {
    throw new Error(`${m.family.name}: needs ${m.family.textEncoders.length} text encoders and tokenizers, got ${m.textEncoders.length} and ${m.tokenizers.length}`);
  }
  const { ids, chunks } = tokenizeCaptions(m, captions, o.maxTokenLength);
  return m.family.condition(runTextEncoders(m, ids), captions.length, chunks, o.clipSkip);
}
