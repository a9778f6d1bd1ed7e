// A prompt and its negative to the UNet's conditioning for classifier-free guidance, for any
// family, as A1111 encodes them: the prompt in 75-token chunks, each chunk through every text
// encoder (BOS + 75 + EOS, padded with the tokenizer's pad id), the family picking layers
// (SD 1.x: clip skip; SDXL: both penultimate layers), chunks joined along the sequence and both
// prompts brought to the same chunk count. SDXL also gets the pooled text embeds of the first
// chunk and A1111's size conditioning: original size = target size = the image, no crop.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { TextConditioning } from '../families/family.js';
import { runTextEncoders } from '../families/text.js';
import type { AddedConditioning } from '../models/unet.js';
import type { SDModel } from '../models/sd-model.js';

/** One 77-token row of `ids` chunk `c` for a tokenizer. */
function chunkRow(tok: SDModel['tokenizers'][number], ids: number[], c: number): number[] {
  const row = [tok.bosId, ...ids.slice(c * 75, (c + 1) * 75), tok.eosId];
  while (row.length < 77) row.push(tok.padId);
  return row;
}

/** One prompt as `chunks` chunks: context joined along the sequence, pooled embeds from the first chunk. */
function encodePrompt(m: SDModel, text: string, chunks: number, clipSkip: number | undefined): TextConditioning {
  const ids = m.tokenizers.map((t) => t.encode(text));
  const parts: TextConditioning[] = [];
  for (let c = 0; c < chunks; c++) {
    const rows = m.tokenizers.map((t, i) => E.tensor(chunkRow(t, ids[i], c), [1, 77], 'i32'));
    parts.push(m.family.condition(runTextEncoders(m, rows), 1, 1, clipSkip));
  }
  return { context: chunks === 1 ? parts[0].context : E.concat(parts.map((p) => p.context), 1), textEmbeds: parts[0].textEmbeds };
}

/** Chunks a prompt needs (at least one). */
const chunksOf = (m: SDModel, text: string): number => Math.max(1, Math.ceil(m.tokenizers[0].encode(text).length / 75));

/** [negative, prompt] conditioning and, for SDXL, the added conditioning of a width x height image. */
export function guidanceConditioning(m: SDModel, prompt: string, negative: string, size: { width: number; height: number }, clipSkip: number | undefined): { context: Tensor; added?: AddedConditioning } {
  return E.noGrad(() => {
    const chunks = Math.max(chunksOf(m, prompt), chunksOf(m, negative));
    const [neg, pos] = [negative, prompt].map((t) => encodePrompt(m, t, chunks, clipSkip));
    const text: TextConditioning = { context: E.concat([neg.context, pos.context], 0), textEmbeds: pos.textEmbeds ? E.concat([neg.textEmbeds!, pos.textEmbeds], 0) : undefined };
    const s = { originalSize: [size.height, size.width] as [number, number], cropTopLeft: [0, 0] as [number, number], targetSize: [size.height, size.width] as [number, number] };
    return { context: text.context, added: m.family.addedConditioning(text, [s, s]) };
  });
}
