// Checking key=value argument lists (network_args, optimizer_args) against a table of the keys a
// network module or optimizer takes: sd-scripts passes them on as Python keyword arguments, where
// an unknown name is an error, so here a typo or a bad value is an error that names it.
import { suggestion } from './did-you-mean.js';

export type ArgValue =
  | { kind: 'number'; min?: number; max?: number; integer?: boolean; below?: number }
  | { kind: 'bool' }
  | { kind: 'pair'; min?: number; below?: number }
  | { kind: 'choice'; choices: readonly string[]; open?: boolean }
  | { kind: 'list' };

export interface ArgSpec {
  value: ArgValue;
  /** Why it has no effect in sdlora; undefined when sdlora implements it. */
  noEffect?: string;
  /** The value sdlora's implementation amounts to: any other value is refused as not implemented. */
  only?: string;
}

export interface ArgReport { problems: string[]; notes: string[] }

const unquote = (s: string) => s.trim().replace(/^(["'])(.*)\1$/, '$2');

/** key=value strings as an object of strings (quotes around a value, as the kohya GUI writes them, dropped). */
export function splitArgs(list: string[]): Record<string, string> {
  return Object.fromEntries(list.filter((a) => a.includes('=')).map((a) => {
    const i = a.indexOf('=');
    return [a.slice(0, i).trim(), unquote(a.slice(i + 1))];
  }));
}

function checkValue(v: string, t: ArgValue): string | undefined {
  const num = (s: string) => (s.trim() === '' ? NaN : Number(s));
  switch (t.kind) {
    case 'number': {
      const n = num(v);
      if (!Number.isFinite(n)) return 'must be a number';
      if (t.integer && !Number.isInteger(n)) return 'must be an integer';
      if (t.min !== undefined && n < t.min) return `must be at least ${t.min}`;
      if (t.max !== undefined && n > t.max) return `must be at most ${t.max}`;
      if (t.below !== undefined && n >= t.below) return `must be below ${t.below}`;
      return undefined;
    }
    case 'bool': return /^(true|false)$/i.test(v) ? undefined : 'must be True or False';
    case 'pair': {
      const p = v.replace(/[()[\]\s]/g, '').split(',').map(num);
      if (p.length !== 2 || p.some((x) => !Number.isFinite(x))) return 'must be two numbers like 0.9,0.999';
      if (t.min !== undefined && p.some((x) => x < t.min!)) return `must be two numbers of at least ${t.min}`;
      if (t.below !== undefined && p.some((x) => x >= t.below!)) return `must be two numbers below ${t.below}`;
      return undefined;
    }
    case 'choice':
      return t.open || t.choices.some((c) => c.toLowerCase() === v.toLowerCase()) ? undefined : `must be one of ${t.choices.join(', ')}`;
    case 'list': return v.trim() === '' ? 'must not be empty' : undefined;
  }
}

/** " (it takes a, b, c)": the arguments that change what sdlora does, when no name is close. */
function takes(table: Record<string, ArgSpec>): string {
  const keys = Object.entries(table).filter(([, s]) => !s.noEffect && s.only === undefined).map(([k]) => k);
  return keys.length ? ` (it takes ${keys.join(', ')})` : '';
}

/** Every problem of an argument list: malformed entries, repeats, unknown keys, bad values. */
export function checkArgList(option: string, owner: string, list: string[], table: Record<string, ArgSpec>): ArgReport {
  const problems: string[] = [], notes: string[] = [];
  const seen = new Set<string>();
  for (const a of list) {
    const i = a.indexOf('=');
    const key = i < 0 ? '' : a.slice(0, i).trim();
    if (!key) { problems.push(`${option}: "${a}" is not key=value`); continue; }
    if (seen.has(key)) problems.push(`${option}: "${key}" is given twice`);
    seen.add(key);
    const spec = table[key], value = unquote(a.slice(i + 1));
    if (!spec) { problems.push(`${option}: unknown argument "${key}" for ${owner}${suggestion(key, Object.keys(table)) || takes(table)}`); continue; }
    const bad = checkValue(value, spec.value);
    if (bad) problems.push(`${option}: ${key}=${value} ${bad}`);
    else if (spec.only !== undefined && value.toLowerCase() !== spec.only.toLowerCase()) problems.push(`${option}: ${key}=${value} is not implemented in sdlora's ${owner} (only ${key}=${spec.only})`);
    else if (spec.noEffect) notes.push(`${option}: "${key}" has no effect in sdlora (${spec.noEffect})`);
  }
  return { problems, notes };
}

/** The entries of a checked list that change what sdlora does: no-effect ones and fixed defaults dropped. */
export function implementedArgs(list: string[], table: Record<string, ArgSpec>): string[] {
  return Object.entries(splitArgs(list)).filter(([k]) => table[k] && !table[k].noEffect && table[k].only === undefined).map(([k, v]) => `${k}=${v}`);
}
