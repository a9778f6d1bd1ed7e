// sd-scripts sample prompt files: .txt lines "prompt --n neg --w 512 --h 512 --d seed --l cfg
// --s steps --ss sampler", or .toml/.json lists of {prompt, negative_prompt, width, ...}.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parsePythonJson } from '../io/python-json.js';

export interface SamplePrompt {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  seed?: number;
  cfgScale: number;
  steps: number;
  sampler?: string;
}

const DEFAULTS = { negativePrompt: '', width: 512, height: 512, cfgScale: 7.5, steps: 30 };
const size = (v: number) => Math.max(64, Math.floor(v / 8) * 8);

export function parsePromptLine(line: string, file = 'prompts'): SamplePrompt {
  const [prompt, ...opts] = line.split(' --');
  const p: SamplePrompt = { ...DEFAULTS, prompt: prompt.trim() };
  for (const o of opts) {
    const m = /^(\w+)\s*(.*)$/.exec(o.trim());
    if (!m) continue;
    const key = m[1].toLowerCase(), val = m[2].trim();
    const num = () => { const n = Number(val); if (!Number.isFinite(n)) throw new Error(`${file}: "--${key} ${val}" is not a number in: ${line}`); return n; };
    switch (key) {
      case 'n': p.negativePrompt = val; break;
      case 'w': p.width = size(num()); break;
      case 'h': p.height = size(num()); break;
      case 'd': p.seed = Math.trunc(num()); break;
      case 'l': p.cfgScale = num(); break;
      case 's': p.steps = Math.min(1000, Math.max(1, Math.trunc(num()))); break;
      case 'ss': p.sampler = val; break;
      default: break; // --g, --cn and unknown options are ignored, as sd-scripts does for other models
    }
  }
  return p;
}

export function readSamplePrompts(file: string): SamplePrompt[] {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { throw new Error(`${file}: cannot read the sample prompts file`); }
  const ext = path.extname(file).toLowerCase();
  if (ext === '.txt') return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => parsePromptLine(l, file));
  const raw = ext === '.toml' ? (parseToml(text) as { prompt?: Record<string, unknown> & { subset?: Record<string, unknown>[] } }) : parsePythonJson(text);
  const list: unknown[] = ext === '.toml'
    ? ((raw as { prompt?: { subset?: Record<string, unknown>[] } }).prompt?.subset ?? []).map((s) => ({ ...(raw as { prompt: Record<string, unknown> }).prompt, ...s, subset: undefined }))
    : (raw as unknown[]);
  if (!Array.isArray(list)) throw new Error(`${file}: expected a list of prompts`);
  return list.map((e) => {
    if (typeof e === 'string') return parsePromptLine(e, file);
    const o = e as Record<string, unknown>;
    return {
      prompt: String(o.prompt ?? ''), negativePrompt: String(o.negative_prompt ?? ''), width: size(Number(o.width ?? 512)), height: size(Number(o.height ?? 512)),
      seed: o.seed === undefined ? undefined : Number(o.seed), cfgScale: Number(o.scale ?? 7.5), steps: Number(o.sample_steps ?? 30),
      sampler: o.sample_sampler === undefined ? undefined : String(o.sample_sampler),
    };
  });
}
