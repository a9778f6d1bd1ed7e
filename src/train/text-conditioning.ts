// Captions to UNet context as sd-scripts does (§3.8): 77 tokens, or max_token_length 150/225 in
// 75-token chunks encoded separately and stitched (first BOS state, 75 states per chunk, last EOS state).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { CLIPTextModel } from '../models/clip-text.js';
import type { CLIPTokenizer } from '../models/clip-tokenizer.js';

export function encodeCaptions(te: CLIPTextModel, tok: CLIPTokenizer, captions: string[], maxTokenLength: number | undefined, clipSkip: number | undefined): Tensor {
  const L = maxTokenLength ?? 75;
  const rows = captions.map((c) => tok.encodeLong(c, L));
  const k = rows[0].length;
  const ids = E.tensor(rows.flat(2), [captions.length * k, 77], 'i32');
  const h = te.encode(ids, clipSkip ?? 1);
  if (k === 1) return h;
  const d = h.shape[2];
  const per = E.reshape(h, [captions.length, k, 77, d]);
  const parts: Tensor[] = [E.reshape(E.slice(E.slice(per, 1, 0, 1), 2, 0, 1), [captions.length, 1, d])];
  for (let j = 0; j < k; j++) parts.push(E.reshape(E.slice(E.slice(per, 1, j, j + 1), 2, 1, 76), [captions.length, 75, d]));
  parts.push(E.reshape(E.slice(E.slice(per, 1, k - 1, k), 2, 76, 77), [captions.length, 1, d]));
  return E.concat(parts, 1);
}
