// Training configuration: sd-scripts-style JSON or TOML files (or kohya_ss GUI presets) and --flags
// of the same names, validated against config-schema.ts with errors that name the source, the key
// and the fix. Unknown names in files are warnings, as sd-scripts lets them through (--strict: errors).
import { readFileSync } from 'node:fs';
import { ConfigSyntaxError, parseConfigText } from '../io/config-text.js';
import { OPTIONS, OPTION_MAP, type OptionSpec } from './config-schema.js';
import { closest, suggestion } from './did-you-mean.js';
import { isKohyaGuiPreset, kohyaGuiPresetOptions } from './kohya-gui-preset.js';
import { checkNetworkArgs, implementedNetworkArgs } from './network-args.js';
import { checkOptimizerArgs, implementedOptimizerArgs } from './optimizer-args.js';
import { splitArgs } from './arg-spec.js';
import { checkDatasetConfigFile } from '../data/dataset-config.js';
import { trainingMethodNotes, trainingMethodProblems } from './training-method.js';

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

export function didYouMean(key: string, candidates: Iterable<string> = OPTION_MAP.keys()): string | undefined {
  return closest(key, candidates);
}

/** One source of option values (a file or the command line) and what reading it found to say. */
export interface ConfigLayer {
  source: string;
  values: Record<string, unknown>;
  /** Messages about the source itself, e.g. the kohya GUI keys that have no effect. */
  notes?: string[];
  /** Unknown names are errors here even without --strict (command-line flags: argparse refuses them too). */
  strict?: boolean;
}

function parseFile(file: string): unknown {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new ConfigError([`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`]); }
  try { return parseConfigText(file, text); } catch (e) {
    if (e instanceof ConfigSyntaxError) throw new ConfigError([e.message]);
    throw e;
  }
}

/** Reads a JSON or TOML config file; TOML tables (sd-scripts --config_file sections) are flattened. */
export function readConfigFile(file: string): Record<string, unknown> {
  return readConfigLayer(file).values;
}

/** A config file as a layer: sd-scripts options, or a kohya_ss GUI preset mapped to them. */
export function readConfigLayer(file: string): ConfigLayer {
  const raw = parseFile(file);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`${file}: the top level must be an object of options`]);
  if (isKohyaGuiPreset(raw as Record<string, unknown>)) {
    const { values, notes } = kohyaGuiPresetOptions(raw as Record<string, unknown>, file);
    return { source: file, values, notes };
  }
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && !OPTION_MAP.has(k)) Object.assign(flat, v);
    else flat[k] = v;
  }
  return { source: file, values: flat };
}

/** `--key value`, `--key=value`, `--flag` (kebab-case accepted) into a raw object of strings/booleans. */
export function parseCliOptions(argv: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new ConfigError([`unexpected argument "${a}" (options look like --learning_rate 1e-4)`]);
    // Only the name is kebab-case: a value given with = keeps its dashes (1e-4, ./my-out).
    const eq = a.indexOf('=');
    const key = (eq >= 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_');
    let value: unknown = eq >= 0 ? a.slice(eq + 1) : undefined;
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
  if (spec.firstOfList && Array.isArray(v)) v = v.length ? v[0] : null;
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

export interface ResolveOptions {
  /** Refuse unknown option names instead of warning about them (sdlora train --strict, for CI). */
  strict?: boolean;
}

interface ResolveState { problems: string[]; warnings: string[]; ignored: Set<string>; invalid: Set<string> }

/**
 * Old spellings sd-scripts still reads, turned into the options they stand for. As in sd-scripts'
 * get_optimizer, an old optimizer switch given with optimizer_type or with the other switch is refused.
 */
function applyAliases(cfg: Record<string, unknown>, problems: string[]): void {
  if (cfg.caption_extention !== undefined) { cfg.caption_extension = cfg.caption_extention; delete cfg.caption_extention; }
  const explicit = new Set(cfg.__explicit as string[]);
  const switches = (['use_8bit_adam', 'use_lion_optimizer'] as const).filter((k) => cfg[k]);
  if (switches.length === 2) problems.push('"use_8bit_adam" and "use_lion_optimizer" exclude each other');
  else if (switches.length && explicit.has('optimizer_type')) problems.push(`"${switches[0]}" and "optimizer_type" exclude each other (${switches[0]} is the old form of optimizer_type ${switches[0] === 'use_8bit_adam' ? 'AdamW8bit' : 'Lion'})`);
  if (cfg.use_8bit_adam) cfg.optimizer_type = 'AdamW8bit';
  if (cfg.use_lion_optimizer) cfg.optimizer_type = 'Lion';
  delete cfg.use_8bit_adam; delete cfg.use_lion_optimizer;
}

/** Values of one layer into cfg; unknown names in files are warnings (sd-scripts lets them through) or, strict, problems. */
function applyLayer(layer: ConfigLayer, cfg: Record<string, unknown>, out: ResolveState, strict: boolean): void {
  for (const [k, v] of Object.entries(layer.values)) {
    const spec = OPTION_MAP.get(k);
    if (!spec) {
      const msg = `${layer.source}: unknown option "${k}"${suggestion(k, OPTION_MAP.keys())}`;
      if (strict) out.problems.push(msg); else out.warnings.push(`${msg}; it is ignored (--strict refuses it)`);
      continue;
    }
    const c = coerce(spec, v, layer.source, out.problems);
    if (c !== undefined) cfg[k] = c;
    else if (v !== null) out.invalid.add(k);
    // sd-scripts tests these options for truth: false, 0, "" and [] leave them off, so they need no note.
    if (spec.ignored && ![false, null, undefined, 0, ''].includes(v as never) && !(Array.isArray(v) && !v.length)) out.ignored.add(k);
  }
}

function checkCombinations(cfg: Record<string, unknown>, problems: string[]): void {
  if (!cfg.pretrained_model_name_or_path) problems.push('"pretrained_model_name_or_path" is required (a model folder, a .safetensors file, or "tiny")');
  if (!cfg.train_data_dir && !cfg.dataset_config) problems.push('either "train_data_dir" or "dataset_config" is required');
  if (cfg.network_train_unet_only && cfg.network_train_text_encoder_only) problems.push('"network_train_unet_only" and "network_train_text_encoder_only" exclude each other');
  if (cfg.cache_latents_to_disk) cfg.cache_latents = true;
  if (cfg.cache_text_encoder_outputs_to_disk) cfg.cache_text_encoder_outputs = true;
  if (cfg.cache_latents && (cfg.color_aug || cfg.random_crop)) problems.push('"cache_latents" cannot be used with "color_aug" or "random_crop" (the cached latents would freeze one augmentation)');
  if (cfg.lr_scheduler === 'constant' && (cfg.lr_warmup_steps as number) > 0) problems.push('"lr_scheduler" constant does not warm up; use constant_with_warmup with lr_warmup_steps');
  if (cfg.max_token_length !== undefined && ![75, 150, 225].includes(cfg.max_token_length as number)) problems.push(`"max_token_length" must be 75, 150 or 225, got ${cfg.max_token_length}`);
  if ((cfg.min_timestep as number) >= (cfg.max_timestep as number)) problems.push(`"min_timestep" (${cfg.min_timestep}) must be below "max_timestep" (${cfg.max_timestep})`);
  // The family's own multiple (64 for SD 1.x/2.x, 32 for SDXL) is checked once the model is loaded (family-training.ts).
  if ((cfg.bucket_reso_steps as number) % 32 !== 0 && !cfg.bucket_no_upscale) problems.push(`"bucket_reso_steps" must be a multiple of 64 for SD 1.x/2.x or of 32 for SDXL, got ${cfg.bucket_reso_steps}`);
  const [w, h] = cfg.resolution as [number, number];
  if (cfg.enable_bucket && !cfg.bucket_no_upscale && (Math.min(w, h) < (cfg.min_bucket_reso as number) || Math.max(w, h) > (cfg.max_bucket_reso as number))) {
    problems.push(`"resolution" ${w}x${h} must lie within min_bucket_reso ${cfg.min_bucket_reso} and max_bucket_reso ${cfg.max_bucket_reso}`);
  }
}

/** Merges layers (later wins), fills defaults, validates types, ranges and combinations. */
export function resolveConfig(layers: ConfigLayer[], opts: ResolveOptions = {}): TrainConfig {
  const out: ResolveState = { problems: [], warnings: [], ignored: new Set(), invalid: new Set() };
  const notes: string[] = layers.flatMap((l) => l.notes ?? []);
  const cfg: Record<string, unknown> = {};
  for (const s of OPTIONS) if (s.default !== undefined) cfg[s.key] = s.default;
  if (Array.isArray(cfg.resolution) === false) cfg.resolution = [512, 512];
  for (const layer of layers) applyLayer(layer, cfg, out, !!opts.strict || !!layer.strict);
  // Which options the user gave: the others may take the loaded model family's defaults (SDXL: 1024 px).
  cfg.__explicit = [...new Set(layers.flatMap((l) => Object.keys(l.values)))];
  const { problems } = out;
  applyAliases(cfg, problems);
  checkCombinations(cfg, problems);
  problems.push(...trainingMethodProblems(cfg));
  notes.push(...trainingMethodNotes(cfg));
  // The arguments are checked against the module and optimizer given, not a default standing in for a bad one.
  const reports = [
    out.invalid.has('network_module') ? undefined : checkNetworkArgs(String(cfg.network_module), cfg.network_args as string[]),
    out.invalid.has('optimizer_type') ? undefined : checkOptimizerArgs(String(cfg.optimizer_type), cfg.optimizer_args as string[]),
  ];
  for (const r of reports) if (r) { problems.push(...r.problems); notes.push(...r.notes); }
  if (typeof cfg.dataset_config === 'string') {
    const r = checkDatasetConfigFile(cfg.dataset_config, cfg as TrainConfig);
    problems.push(...r.problems); notes.push(...r.notes);
  }
  if (problems.length) throw new ConfigError(problems);
  cfg.network_args = implementedNetworkArgs(String(cfg.network_module), cfg.network_args as string[]);
  cfg.optimizer_args = implementedOptimizerArgs(String(cfg.optimizer_type), cfg.optimizer_args as string[]);
  if (out.ignored.size) cfg.__ignored = [...out.ignored];
  if (out.warnings.length) cfg.__warnings = out.warnings;
  if (notes.length) cfg.__notes = notes;
  return cfg as TrainConfig;
}

/** What the run should print about its configuration: unknown keys, and what has no effect. */
export function configMessages(cfg: TrainConfig): string[] {
  const list = (k: string) => (cfg[k] as string[] | undefined) ?? [];
  return [
    ...list('__warnings').map((w) => `warning: ${w}`),
    ...list('__ignored').map((k) => `note: "${k}" has no effect in sdlora (accepted for sd-scripts compatibility)`),
    ...list('__notes').map((n) => `note: ${n}`),
  ];
}

/** key=value strings as an object of strings (resolveConfig has checked every entry). */
export function parseArgList(list: string[]): Record<string, string> {
  return splitArgs(list);
}

/** Markdown table of every option (README); the sd-scripts options with no effect follow as one list. */
export function optionsMarkdown(): string {
  const row = (s: OptionSpec) => `| \`${s.key}\` | ${s.type.replace('?', '')} | ${s.default === undefined ? '-' : `\`${JSON.stringify(s.default)}\``} | ${s.doc}${s.choices ? ` (${s.choices.join(', ')})` : ''} |`;
  const noEffect = OPTIONS.filter((s) => s.ignored).map((s) => `\`${s.key}\``);
  return [
    '| option | type | default | meaning |', '|---|---|---|---|', ...OPTIONS.filter((s) => !s.ignored).map(row), '',
    `Accepted so that sd-scripts configs load, with a note that they have no effect here: ${noEffect.join(', ')}.`,
  ].join('\n');
}
