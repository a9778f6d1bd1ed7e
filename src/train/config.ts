// Training configuration: sd-scripts-style JSON or TOML files and --flags of the same names,
// validated against config-schema.ts with errors that name the source, the key and the fix.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parsePythonJson } from '../io/python-json.js';
import { OPTIONS, OPTION_MAP, type OptionSpec } from './config-schema.js';

export type TrainConfig = {
  [k: string]: unknown;
  pretrained_model_name_or_path: string;
  resolution: [number, number];
  network_args: string[];
  optimizer_args: string[];
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
    d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

export function didYouMean(key: string, candidates: Iterable<string> = OPTION_MAP.keys()): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const dist = levenshtein(key.toLowerCase(), c);
    if (dist < bestD) { bestD = dist; best = c; }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Reads a JSON or TOML config file; TOML tables (sd-scripts --config_file sections) are flattened. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new ConfigError([`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`]); }
  let raw: unknown;
  try {
    raw = path.extname(file).toLowerCase() === '.toml' ? parseToml(text) : parsePythonJson(text);
  } catch (e) {
    throw new ConfigError([`${file}: not valid ${path.extname(file).toLowerCase() === '.toml' ? 'TOML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`]);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`${file}: the top level must be an object of options`]);
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && !OPTION_MAP.has(k)) Object.assign(flat, v);
    else flat[k] = v;
  }
  return flat;
}

/** `--key value`, `--key=value`, `--flag` (kebab-case accepted) into a raw object of strings/booleans. */
export function parseCliOptions(argv: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new ConfigError([`unexpected argument "${a}" (options look like --learning_rate 1e-4)`]);
    let key = a.slice(2).replace(/-/g, '_');
    let value: unknown;
    const eq = key.indexOf('=');
    if (eq >= 0) { value = key.slice(eq + 1); key = key.slice(0, eq); }
    const spec = OPTION_MAP.get(key);
    if (value === undefined) {
      if (spec?.type === 'boolean' && (i + 1 >= argv.length || argv[i + 1].startsWith('--') || !/^(true|false)$/i.test(argv[i + 1]))) value = true;
      else if (spec?.type === 'string[]') {
        const vals: string[] = [];
        while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) vals.push(argv[++i]);
        value = vals;
      } else if (i + 1 < argv.length) value = argv[++i];
      else throw new ConfigError([`--${key} needs a value`]);
    }
    out[key] = value;
  }
  return out;
}

function coerce(spec: OptionSpec, v: unknown, where: string, problems: string[]): unknown {
  const bad = (want: string) => { problems.push(`${where}: "${spec.key}" must be ${want}, got ${JSON.stringify(v)}`); return undefined; };
  if (v === null) return undefined;
  switch (spec.type) {
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
      return bad('true or false');
    case 'number': case 'number?': case 'integer': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(n)) return bad(spec.type === 'integer' ? 'an integer' : 'a number');
      if (spec.type === 'integer' && !Number.isInteger(n)) return bad('an integer');
      if (spec.min !== undefined && n < spec.min) { problems.push(`${where}: "${spec.key}" must be at least ${spec.min}, got ${n}`); return undefined; }
      if (spec.max !== undefined && n > spec.max) { problems.push(`${where}: "${spec.key}" must be at most ${spec.max}, got ${n}`); return undefined; }
      return n;
    }
    case 'string':
      if (typeof v !== 'string') return bad('a string');
      if (spec.choices) {
        const hit = spec.choices.find((c) => c.toLowerCase() === v.toLowerCase());
        if (!hit) { problems.push(`${where}: "${spec.key}" must be one of ${spec.choices.join(', ')}, got "${v}"`); return undefined; }
        return hit;
      }
      return v;
    case 'string[]':
      if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
      if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : String(x)}`);
      return bad('a list of key=value strings');
    case 'resolution': {
      const parts = typeof v === 'number' ? [v, v] : typeof v === 'string' ? v.split(/[,x]/).map((s) => Number(s.trim())) : Array.isArray(v) ? v.map(Number) : [];
      const wh = parts.length === 1 ? [parts[0], parts[0]] : parts;
      if (wh.length !== 2 || !wh.every((n) => Number.isInteger(n) && n > 0)) return bad('a size like 512, "512,768" or [512, 768]');
      if (wh.some((n) => n % 8 !== 0)) { problems.push(`${where}: "resolution" ${wh.join('x')} must be a multiple of 8`); return undefined; }
      return wh as [number, number];
    }
  }
}

/** Merges layers (later wins), fills defaults, validates types, ranges and combinations. */
export function resolveConfig(layers: { source: string; values: Record<string, unknown> }[]): TrainConfig {
  const problems: string[] = [];
  const cfg: Record<string, unknown> = {};
  for (const s of OPTIONS) if (s.default !== undefined) cfg[s.key] = s.default;
  if (Array.isArray(cfg.resolution) === false) cfg.resolution = [512, 512];
  const ignored = new Set<string>();
  for (const { source, values } of layers) {
    for (const [k, v] of Object.entries(values)) {
      const spec = OPTION_MAP.get(k);
      if (!spec) {
        const hint = didYouMean(k);
        problems.push(`${source}: unknown option "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
        continue;
      }
      const c = coerce(spec, v, source, problems);
      if (c !== undefined) cfg[k] = c;
      if (spec.ignored && v !== false && v !== null && v !== undefined) ignored.add(k);
    }
  }
  if (!cfg.pretrained_model_name_or_path) problems.push('"pretrained_model_name_or_path" is required (a model folder, a .safetensors file, or "tiny")');
  if (!cfg.train_data_dir && !cfg.dataset_config) problems.push('either "train_data_dir" or "dataset_config" is required');
  if (cfg.network_train_unet_only && cfg.network_train_text_encoder_only) problems.push('"network_train_unet_only" and "network_train_text_encoder_only" exclude each other');
  if (cfg.cache_latents_to_disk) cfg.cache_latents = true;
  if (cfg.cache_latents && (cfg.color_aug || cfg.random_crop)) problems.push('"cache_latents" cannot be used with "color_aug" or "random_crop" (the cached latents would freeze one augmentation)');
  if (cfg.lr_scheduler === 'constant' && (cfg.lr_warmup_steps as number) > 0) problems.push('"lr_scheduler" constant does not warm up; use constant_with_warmup with lr_warmup_steps');
  if (cfg.max_token_length !== undefined && ![75, 150, 225].includes(cfg.max_token_length as number)) problems.push(`"max_token_length" must be 75, 150 or 225, got ${cfg.max_token_length}`);
  if ((cfg.min_timestep as number) >= (cfg.max_timestep as number)) problems.push(`"min_timestep" (${cfg.min_timestep}) must be below "max_timestep" (${cfg.max_timestep})`);
  if ((cfg.bucket_reso_steps as number) % 64 !== 0 && !cfg.bucket_no_upscale) problems.push(`"bucket_reso_steps" must be a multiple of 64 for SD 1.x/2.x, got ${cfg.bucket_reso_steps}`);
  const [w, h] = cfg.resolution as [number, number];
  if (cfg.enable_bucket && !cfg.bucket_no_upscale && (Math.min(w, h) < (cfg.min_bucket_reso as number) || Math.max(w, h) > (cfg.max_bucket_reso as number))) {
    problems.push(`"resolution" ${w}x${h} must lie within min_bucket_reso ${cfg.min_bucket_reso} and max_bucket_reso ${cfg.max_bucket_reso}`);
  }
  for (const a of [...(cfg.network_args as string[]), ...(cfg.optimizer_args as string[])]) if (!a.includes('=')) problems.push(`"${a}" in network_args/optimizer_args is not key=value`);
  if (problems.length) throw new ConfigError(problems);
  if (ignored.size) cfg.__ignored = [...ignored];
  return cfg as TrainConfig;
}

/** key=value strings as an object of strings. */
export function parseArgList(list: string[]): Record<string, string> {
  return Object.fromEntries(list.map((a) => { const i = a.indexOf('='); return [a.slice(0, i).trim(), a.slice(i + 1).trim()]; }));
}

/** Markdown table of every option (README). */
export function optionsMarkdown(): string {
  const rows = OPTIONS.map((s) => `| \`${s.key}\` | ${s.type.replace('?', '')} | ${s.default === undefined ? '-' : `\`${JSON.stringify(s.default)}\``} | ${s.doc}${s.choices ? ` (${s.choices.join(', ')})` : ''} |`);
  return ['| option | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
