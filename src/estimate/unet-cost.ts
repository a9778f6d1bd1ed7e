// FLOPs and saved activations of one UNet forward pass, by walking the same block structure as
// models/unet.ts (2 FLOPs per multiply-add; activations in elements, per image).
import type { UNetConfig } from '../models/unet-config.js';

export interface Cost {
  flops: number;
  /** Elements kept for backward without checkpointing. */
  activations: number;
  /** Largest single block's saved elements (what checkpointing keeps alive at once). */
  maxBlock: number;
  /** Elements at block boundaries (kept with checkpointing). */
  boundaries: number;
  /** Attention score elements if materialized (no flash attention), largest block. */
  maxScores: number;
}

export function unetCost(c: UNetConfig, latentH: number, latentW: number, ctxLen = 77): Cost {
  let flops = 0, act = 0, maxBlock = 0, boundaries = 0, maxScores = 0;
  let block = 0;
  const endBlock = (outElems: number) => { maxBlock = Math.max(maxBlock, block); block = 0; boundaries += outElems; };
  const conv = (cin: number, cout: number, k: number, h: number, w: number) => { flops += 2 * cin * cout * k * k * h * w; block += cin * h * w; act += cin * h * w; };
  const elem = (n: number, times = 1) => { block += n * times; act += n * times; };
  const resnet = (cin: number, cout: number, h: number, w: number) => {
    elem(cin * h * w, 2); conv(cin, cout, 3, h, w); elem(cout * h * w, 3); conv(cout, cout, 3, h, w);
    if (cin !== cout) conv(cin, cout, 1, h, w);
    endBlock(cout * h * w);
  };
  const transformer = (ch: number, heads: number, layers: number, h: number, w: number) => {
    const L = h * w;
    elem(ch * L); conv(ch, ch, 1, h, w);
    for (let i = 0; i < layers; i++) {
      // self attention
      elem(ch * L); flops += 2 * L * ch * ch * 4; elem(ch * L, 4);
      flops += 2 * 2 * L * L * ch; const s1 = heads * L * L; maxScores = Math.max(maxScores, s1);
      // cross attention
      elem(ch * L); flops += 2 * L * ch * ch * 2 + 2 * 2 * ctxLen * c.cross_attention_dim * ch; elem(ch * L, 3);
      flops += 2 * 2 * L * ctxLen * ch; maxScores = Math.max(maxScores, heads * L * ctxLen);
      // GEGLU feed-forward
      elem(ch * L); flops += 2 * L * ch * 8 * ch + 2 * L * 4 * ch * ch; elem(L * 8 * ch, 2);
    }
    conv(ch, ch, 1, h, w);
    endBlock(ch * L);
  };
  const boc = c.block_out_channels, n = boc.length;
  let h = latentH, w = latentW;
  conv(c.in_channels, boc[0], 3, h, w);
  const skips: number[] = [boc[0]];
  let ch = boc[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c.layers_per_block; j++) {
      resnet(ch, boc[i], h, w); ch = boc[i];
      if (c.down_block_types[i].startsWith('CrossAttn')) transformer(ch, c.heads[i], c.transformer_layers[i], h, w);
      skips.push(ch);
    }
    if (i < n - 1) { conv(ch, ch, 3, h / 2, w / 2); h /= 2; w /= 2; skips.push(ch); endBlock(ch * h * w); }
  }
  resnet(ch, ch, h, w); transformer(ch, c.heads[n - 1], c.transformer_layers[n - 1], h, w); resnet(ch, ch, h, w);
  for (let i = 0; i < n; i++) {
    const o = boc[n - 1 - i];
    for (let j = 0; j <= c.layers_per_block; j++) {
      resnet(ch + skips.pop()!, o, h, w); ch = o;
      if (c.up_block_types[i].startsWith('CrossAttn')) transformer(ch, c.heads[n - 1 - i], c.transformer_layers[n - 1 - i], h, w);
    }
    if (i < n - 1) { h *= 2; w *= 2; conv(ch, ch, 3, h, w); endBlock(ch * h * w); }
  }
  elem(ch * h * w, 2); conv(ch, c.out_channels, 3, h, w);
  return { flops, activations: act, maxBlock, boundaries, maxScores };
}

/** Parameters of the LoRA on the default targets: rank * (in + out) per layer. */
export function loraParams(shapes: Map<string, number[]>, pattern: RegExp, rank: number): number {
  let n = 0;
  for (const [k, s] of shapes) if (k.endsWith('.weight') && pattern.test(k.slice(0, -7)) && s.length >= 2) n += rank * (s[0] + s.slice(1).reduce((a, b) => a * b, 1));
  return n;
}
