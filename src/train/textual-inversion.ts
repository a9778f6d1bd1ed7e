// Textual Inversion as sd-scripts' train_textual_inversion.py does it: `token_string` becomes
// num_vectors_per_token new token-embedding rows per text encoder, initialised from `init_word`'s
// token embeddings, and only those rows train (the model's own table is never written, so every
// other row stays bit-identical). Captions may be replaced by sd-scripts' object or style templates.
// The file holds the trained rows as sd-scripts and A1111 read them: `emb_params` [n, dim] for
// SD 1.x/2.x, `clip_l` and `clip_g` for SDXL.
import path from 'node:path';
import * as E from '../engine/index.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { SDModel } from '../models/sd-model.js';
import type { TrainConfig } from './config.js';
import { type MethodContext, type MethodHooks, type MethodResult, type TrainingMethod, trainWithMethod } from './method-loop.js';
import { checkpointModelspec } from './method-metadata.js';
import { typed } from './options.js';

/** sd-scripts' imagenet_templates_small (use_object_template). */
export const OBJECT_TEMPLATES = [
  'a photo of a {}', 'a rendering of a {}', 'a cropped photo of the {}', 'the photo of a {}', 'a photo of a clean {}',
  'a photo of a dirty {}', 'a dark photo of the {}', 'a photo of my {}', 'a photo of the cool {}', 'a close-up photo of a {}',
  'a bright photo of the {}', 'a cropped photo of a {}', 'a photo of the {}', 'a good photo of the {}', 'a photo of one {}',
  'a close-up photo of the {}', 'a rendition of the {}', 'a photo of the clean {}', 'a rendition of a {}', 'a photo of a nice {}',
  'a good photo of a {}', 'a photo of the nice {}', 'a photo of the small {}', 'a photo of the weird {}', 'a photo of the large {}',
  'a photo of a cool {}', 'a photo of a small {}',
];

/** sd-scripts' imagenet_style_templates_small (use_style_template). */
export const STYLE_TEMPLATES = [
  'a painting in the style of {}', 'a rendering in the style of {}', 'a cropped painting in the style of {}', 'the painting in the style of {}',
  'a clean painting in the style of {}', 'a dirty painting in the style of {}', 'a dark painting in the style of {}', 'a picture in the style of {}',
  'a cool painting in the style of {}', 'a close-up painting in the style of {}', 'a bright painting in the style of {}', 'a cropped painting in the style of {}',
  'a good painting in the style of {}', 'a close-up painting in the style of {}', 'a rendition in the style of {}', 'a nice painting in the style of {}',
  'a small painting in the style of {}', 'a weird painting in the style of {}', 'a large painting in the style of {}',
];

/** The tensor name of each text encoder's vectors in an embedding file (sd-scripts / A1111). */
export function embeddingKeys(model: Pick<SDModel, 'family'>): string[] {
  return model.family.textEncoders.length === 1 ? ['emb_params'] : ['clip_l', 'clip_g'];
}

const TOKEN_KEY = 'text_model.embeddings.token_embedding.weight';

/**
 * Registers `word` with every tokenizer of the model as `vectors[i].shape[0]` new ids past the text
 * encoder's table, and appends the vectors to that encoder's extra rows. Returns the ids per encoder.
 */
export function addEmbeddingWord(model: Pick<SDModel, 'textEncoders' | 'tokenizers'>, word: string, vectors: E.Tensor[]): number[][] {
  return model.textEncoders.map((te, i) => {
    const table = te.weights.raw(TOKEN_KEY);
    const v = vectors[i].toBackend(table.backend);
    if (v.rank !== 2 || v.shape[1] !== table.shape[1]) throw new Error(`"${word}": vectors [${v.shape.join(', ')}] do not fit text encoder ${i + 1} (width ${table.shape[1]})`);
    const start = table.shape[0] + (te.extraTokenEmbeddings?.shape[0] ?? 0);
    const ids = Array.from({ length: v.shape[0] }, (_, k) => start + k);
    model.tokenizers[i].addWord(word, ids);
    te.extraTokenEmbeddings = te.extraTokenEmbeddings ? E.concat([te.extraTokenEmbeddings, v], 0) : v;
    return ids;
  });
}

function setupTextualInversion(ctx: MethodContext): TrainingMethod {
  const { cfg, model, rng, log } = ctx;
  const c = typed(cfg);
  const token = String(cfg.token_string);
  const n = Number(cfg.num_vectors_per_token ?? 1);
  const initWord = cfg.init_word as string | undefined;
  const keys = embeddingKeys(model);
  const vectors = model.textEncoders.map((te, i) => {
    const tok = model.tokenizers[i];
    if (tok.addedWords().has(token.toLowerCase())) throw new Error(`token_string "${token}": the tokenizer already has it`);
    const table = te.weights.get(TOKEN_KEY);
    const [, dim] = table.shape;
    const rows = new Float32Array(n * dim);
    if (initWord !== undefined) {
      // sd-scripts: new vector k takes init token k mod (number of init tokens).
      const ids = tok.encode(initWord);
      if (!ids.length) throw new Error(`init_word "${initWord}" has no tokens`);
      if (ids.length > 1 && ids.length !== n) log(`note: init_word "${initWord}" is ${ids.length} tokens for ${n} vectors (text encoder ${i + 1}): its tokens repeat or are cut`);
      const t = table.dataSync() as Float32Array;
      for (let k = 0; k < n; k++) rows.set(t.subarray(ids[k % ids.length] * dim, (ids[k % ids.length] + 1) * dim), k * dim);
    } else {
      // A fresh row as transformers' resize_token_embeddings initialises it: N(0, 0.02).
      for (let k = 0; k < rows.length; k++) rows[k] = rng.normal() * 0.02;
    }
    // Where the table is (the model moves to the training device after setup; rebind follows it).
    return E.tensor(rows, [n, dim], 'f32', table.backend).requireGrad();
  });
  addEmbeddingWord(model, token, vectors);
  // sd-scripts adds token_string, token_string1, ...; the caption's token_string stands for all of
  // them (its caption replacement), and each numbered one for its own vector.
  model.tokenizers.forEach((tok, i) => {
    const ids = tok.addedWords().get(token.toLowerCase())!;
    for (let k = 1; k < n; k++) tok.addWord(`${token}${k}`, [ids[k]]);
    log(`tokens added for text encoder ${i + 1}: ${token} -> ids ${ids.join(', ')}`);
  });
  const templates = cfg.use_object_template ? OBJECT_TEMPLATES : cfg.use_style_template ? STYLE_TEMPLATES : null;
  if (templates) log(`captions replaced by ${cfg.use_object_template ? 'object' : 'style'} templates`);
  else if (!ctx.data.datasets.some((d) => d.images.some((img) => tokenIn(`${img.subset.captionPrefix ?? ''} ${img.caption} ${img.subset.captionSuffix ?? ''}`, token)))) {
    log(`warning: no caption contains "${token}", so its vectors get no gradient (put it in the captions or use use_object_template / use_style_template)`);
  }
  let params = vectors.map((t, i) => ({ name: keys[i], group: 'emb', tensor: t }));
  const precision = c.save_precision === 'fp16' ? 'F16' : c.save_precision === 'bf16' ? 'BF16' : 'F32';
  return {
    id: 'textual_inversion',
    get params() { return params; },
    rebind() {
      // After the model moved (webgpu): the vectors follow, and stay the encoders' extra rows.
      params = params.map((p, i) => {
        const te = model.textEncoders[i], b = te.weights.backend ?? p.tensor.backend;
        if (p.tensor.backend === b) return p;
        const t = p.tensor.toBackend(b).requireGrad();
        te.extraTokenEmbeddings = t;
        return { ...p, tensor: t };
      });
    },
    groups: new Map([['emb', { name: 'emb', lr: c.learning_rate }]]),
    config: { token_string: token, num_vectors_per_token: n, init_word: initWord ?? null, keys },
    caption: templates ? (_cap, r) => templates[Math.floor(r.uniform() * templates.length)].replace('{}', token) : undefined,
    textGrad: () => true,
    activeGroups: () => new Set(['emb']),
    outputPath: (dir, stem) => path.join(dir, `${stem}.safetensors`),
    async save(file, _at, run) {
      const meta = checkpointModelspec(cfg, model, 'textual-inversion', run.startedAt);
      await saveSafetensors(file, params.map((p): [string, E.Tensor] => [p.name, p.tensor.detach()]), meta, precision);
    },
  };
}

const tokenIn = (caption: string, token: string) => new RegExp(`(?<![\\p{L}\\p{N}])${token.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'iu').test(caption);

/** sd-scripts train_textual_inversion.py: output_name defaults to token_string. */
export async function trainTextualInversion(cfg: TrainConfig, hooks: MethodHooks = {}): Promise<MethodResult> {
  if (!cfg.token_string) throw new Error('training_method textual_inversion needs token_string');
  const run = { ...cfg, output_name: cfg.output_name ?? cfg.token_string } as TrainConfig;
  return trainWithMethod(run, setupTextualInversion, hooks);
}
