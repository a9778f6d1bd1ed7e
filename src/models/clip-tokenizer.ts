// CLIP's byte-level BPE tokenizer (OpenAI simple_tokenizer / transformers CLIPTokenizer), with
// Stable Diffusion's 77-token padding and sd-scripts' long prompts in 75-token chunks. Text is cleaned as
// OpenAI's simple_tokenizer cleans it, ftfy 6.1.1 included (src/text/ftfy.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fixText } from '../text/ftfy.js';
import { htmlUnescape } from '../text/html-unescape.js';

/**
 * GPT-2's reversible byte -> printable unicode map, indexed by byte. `ordered` lists the characters
 * in the reference's dict order (printable bytes first), which is the order of the base vocabulary.
 */
export function bytesToUnicode(): { map: string[]; ordered: string[] } {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const map: string[] = new Array(256);
  bs.forEach((b, i) => { map[b] = String.fromCodePoint(cs[i]); });
  return { map, ordered: cs.map((c) => String.fromCodePoint(c)) };
}

// Whitespace as OpenAI's tokenizer sees it: its `regex` module's \s is Unicode White_Space (JavaScript's \s
// adds U+FEFF), and Python's str.strip also drops the separators U+1C-U+1F.
const WHITE_SPACE = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITE_RUNS = new RegExp(`[${WHITE_SPACE}]+`, 'gu');
const STRIP = new RegExp(`^[${WHITE_SPACE}\\x1c-\\x1f]+|[${WHITE_SPACE}\\x1c-\\x1f]+$`, 'gu');
const PATTERN = new RegExp(`<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WHITE_SPACE}\\p{L}\\p{N}]+`, 'giu');

/**
 * The reference's text cleaning before BPE: ftfy.fix_text, html.unescape twice, whitespace runs to one space,
 * stripped, lowercased.
 */
export function cleanText(text: string): string {
  const basic = htmlUnescape(htmlUnescape(fixText(text))).replace(STRIP, '');
  return basic.replace(WHITE_RUNS, ' ').replace(STRIP, '').toLowerCase();
}

export interface TokenizerOptions {
  /** Padding id: the EOS for SD 1.x (clip-vit-large-patch14), 0 for SD 2.x (OpenCLIP). */
  padId?: number;
}

export class CLIPTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  padId: number;
  private byteMap = bytesToUnicode().map;
  private ranks: Map<string, number>;
  private cache = new Map<string, number[]>();
  /** Added words (textual-inversion embeddings): a word -> the ids it stands for, matched before BPE. */
  private added = new Map<string, number[]>();
  private addedPattern: RegExp | null = null;

  constructor(readonly encoder: Map<string, number>, merges: [string, string][], opts: TokenizerOptions = {}) {
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const bos = encoder.get('<|startoftext|>'), eos = encoder.get('<|endoftext|>');
    if (bos === undefined || eos === undefined) throw new Error('CLIP tokenizer: the vocabulary lacks <|startoftext|> / <|endoftext|>');
    this.bosId = bos;
    this.eosId = eos;
    this.padId = opts.padId ?? eos;
  }

  /** From OpenAI's bpe_simple_vocab_16e6.txt.gz (the vocabulary is derived from the merges). */
  static fromBpeFile(file: string, opts?: TokenizerOptions): CLIPTokenizer {
    const text = gunzipSync(readFileSync(file)).toString('utf8');
    const lines = text.split('\n').slice(1, 49152 - 256 - 2 + 1);
    const merges = lines.map((l) => l.split(' ') as [string, string]);
    const bytes = bytesToUnicode().ordered;
    const vocab = [...bytes, ...bytes.map((b) => `${b}</w>`), ...merges.map(([a, b]) => a + b), '<|startoftext|>', '<|endoftext|>'];
    return new CLIPTokenizer(new Map(vocab.map((v, i) => [v, i])), merges, opts);
  }

  /** From a transformers tokenizer folder (vocab.json + merges.txt). */
  static fromFolder(dir: string, opts?: TokenizerOptions): CLIPTokenizer {
    const vf = path.join(dir, 'vocab.json'), mf = path.join(dir, 'merges.txt');
    if (!existsSync(vf) || !existsSync(mf)) throw new Error(`${dir}: a CLIP tokenizer folder needs vocab.json and merges.txt`);
    const vocab = JSON.parse(readFileSync(vf, 'utf8')) as Record<string, number>;
    const merges = readFileSync(mf, 'utf8').split('\n').filter((l) => l && !l.startsWith('#version')).map((l) => l.split(' ') as [string, string]);
    return new CLIPTokenizer(new Map(Object.entries(vocab)), merges, opts);
  }

  private bpe(token: string): number[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = [...token];
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      const a = word[best], b = word[best + 1];
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i < word.length - 1 && word[i] === a && word[i + 1] === b) { next.push(a + b); i += 2; } else { next.push(word[i]); i++; }
      }
      word = next;
    }
    const ids = word.map((w) => {
      const id = this.encoder.get(w);
      if (id === undefined) throw new Error(`CLIP tokenizer: "${w}" is not in the vocabulary`);
      return id;
    });
    this.cache.set(token, ids);
    return ids;
  }

  /**
   * Adds a word that stands for `ids` (rows past the text encoder's vocabulary, as transformers'
   * add_tokens does for textual inversion): matched as a whole word in the cleaned text, before BPE.
   */
  addWord(word: string, ids: number[]): void {
    const w = cleanText(word);
    if (!w || /\s/.test(w)) throw new Error(`"${word}": an added token must be one word`);
    if (this.added.has(w)) throw new Error(`"${word}": the tokenizer already has this added token`);
    this.added.set(w, ids);
    this.addedPattern = null;
  }

  /** The added words and their ids. */
  addedWords(): ReadonlyMap<string, number[]> { return this.added; }

  /** Token ids without BOS/EOS. */
  encode(text: string): number[] {
    const clean = cleanText(text);
    if (!this.added.size) return this.encodeClean(clean);
    if (!this.addedPattern) {
      const words = [...this.added.keys()].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      this.addedPattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
    }
    const ids: number[] = [];
    let at = 0;
    for (const m of clean.matchAll(this.addedPattern)) {
      ids.push(...this.encodeClean(clean.slice(at, m.index)), ...this.added.get(m[0])!);
      at = m.index! + m[0].length;
    }
    ids.push(...this.encodeClean(clean.slice(at)));
    return ids;
  }

  private encodeClean(clean: string): number[] {
    const ids: number[] = [];
    for (const m of clean.matchAll(PATTERN)) {
      const bytes = Buffer.from(m[0], 'utf8');
      let s = '';
      for (const b of bytes) s += this.byteMap[b];
      ids.push(...this.bpe(s));
    }
    return ids;
  }

  /** BOS + ids + EOS, truncated and padded to `length` (77 for SD). */
  encodePadded(text: string, length = 77): number[] {
    const ids = this.encode(text).slice(0, length - 2);
    const out = [this.bosId, ...ids, this.eosId];
    while (out.length < length) out.push(this.padId);
    return out;
  }

  /**
   * sd-scripts' long prompts: tokenize to maxTokenLength + 2, then cut into chunks of 77:
   * chunk j = [BOS] + ids[1 + 75j, 76 + 75j) + [last id]. With pad != eos (SD 2.x style), a chunk
   * whose second-to-last token is neither EOS nor PAD ends with EOS, and a leading BOS, PAD becomes
   * BOS, EOS.
   */
  encodeLong(text: string, maxTokenLength = 75): number[][] {
    if (![75, 150, 225].includes(maxTokenLength)) throw new Error(`max_token_length must be 75, 150 or 225, got ${maxTokenLength}`);
    const L = maxTokenLength + 2;
    const ids = this.encodePadded(text, L);
    if (maxTokenLength === 75) return [ids];
    const chunks: number[][] = [];
    for (let j = 0; j < maxTokenLength / 75; j++) {
      const chunk = [this.bosId, ...ids.slice(1 + 75 * j, 76 + 75 * j), ids[L - 1]];
      if (this.padId !== this.eosId) {
        if (chunk[75] !== this.eosId && chunk[75] !== this.padId) chunk[76] = this.eosId;
        if (chunk[1] === this.padId) chunk[1] = this.eosId;
      }
      chunks.push(chunk);
    }
    return chunks;
  }
}
