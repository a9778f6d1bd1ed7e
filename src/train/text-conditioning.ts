// Captions to UNet conditioning during training, for any family (src/families/text.ts: SD 1.x's
// last/clip-skipped layer, SDXL's two penultimate layers and pooled text embeds; long prompts as
// sd-scripts stitches them). With cache_text_encoder_outputs each distinct caption is encoded once
// (no gradient: the text encoders are frozen then) and reused, as sd-scripts caches them.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { TextConditioning } from '../families/family.js';
import { type TextOptions, type TextStack, encodeText } from '../families/text.js';

export class TextConditioner {
  private readonly cached = new Map<string, TextConditioning>();

  /** `cache`: keep each caption's outputs (only with frozen text encoders). */
  constructor(private readonly model: TextStack, private readonly options: TextOptions, readonly cache: boolean) {}

  /** The conditioning of a batch; `grad` when a text-encoder LoRA trains through it. */
  encode(captions: string[], grad: boolean): TextConditioning {
    if (grad && this.cache) throw new Error('text encoder outputs are cached, so no text-encoder LoRA can train through them');
    if (grad) return encodeText(this.model, captions, this.options);
    if (!this.cache) return E.noGrad(() => encodeText(this.model, captions, this.options));
    const missing = [...new Set(captions.filter((c) => !this.cached.has(c)))];
    if (missing.length) this.put(missing, E.noGrad(() => encodeText(this.model, missing, this.options)));
    return joinRows(captions.map((c) => this.cached.get(c)!));
  }

  /** Stores the outputs of `captions` (rows of `cond`, in order): computed here or read from a disk cache. */
  put(captions: string[], cond: TextConditioning): void {
    captions.forEach((c, i) => this.cached.set(c, rowOf(cond, i)));
  }

  /** The cached outputs of one caption (computing them if needed), for writing to disk. */
  get(caption: string): TextConditioning {
    this.encode([caption], false);
    return this.cached.get(caption)!;
  }
}

const row = (t: Tensor, i: number) => E.slice(t, 0, i, i + 1);
const rowOf = (c: TextConditioning, i: number): TextConditioning => ({ context: row(c.context, i), textEmbeds: c.textEmbeds ? row(c.textEmbeds, i) : undefined });

function joinRows(rows: TextConditioning[]): TextConditioning {
  const context = E.concat(rows.map((r) => r.context), 0);
  return rows[0].textEmbeds ? { context, textEmbeds: E.concat(rows.map((r) => r.textEmbeds!), 0) } : { context };
}
