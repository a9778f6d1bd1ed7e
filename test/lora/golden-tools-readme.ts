// The options of a lora-tools golden case, read from its README.md, where the generator records the
// sd-scripts calls it made (`merge_lora_models(models=[...], ratios=[...], new_rank=..)`, ...).
// Nothing here has a default: an option the README does not state fails, naming it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { goldenCase, requireFile } from '../helpers/golden.js';

/** The argument text of every `fn(...)` call (balanced parentheses) in `text`; fn '' matches bare `(...)`. */
function calls(text: string, fn: string): string[] {
  const out: string[] = [];
  for (let i = text.indexOf(`${fn}(`); i >= 0; i = text.indexOf(`${fn}(`, i + 1)) {
    let depth = 0, j = i + fn.length;
    for (; j < text.length; j++) {
      if (text[j] === '(') depth++;
      else if (text[j] === ')' && --depth === 0) break;
    }
    out.push(text.slice(i + fn.length + 1, j));
  }
  return out;
}

export class ToolsReadme {
  readonly text: string;
  constructor(readonly dir: string) {
    this.text = readFileSync(requireFile(dir, 'README.md'), 'utf8');
  }

  /** The README section of one output file ("## svd_merge.safetensors" up to the next "## "). */
  section(file: string): string {
    const start = this.text.split(/\n(?=## )/).find((s) => s.startsWith('## ') && s.split('\n')[0].includes(file));
    if (!start) throw new Error(`${this.dir}/README.md has no section for ${file}`);
    return start;
  }

  /** The argument list of the call to `fn` in a section (the one containing `mustHave`, if given). */
  call(section: string, fn: string, mustHave?: string): string {
    const found = calls(section, fn).filter((c) => !mustHave || c.includes(mustHave));
    if (!found.length) throw new Error(`${this.dir}/README.md: no ${fn}(...${mustHave ?? ''}...) call recorded`);
    return found[0];
  }

  /** A keyword argument's raw text (`new_rank=3` -> "3", `ratios=[0.7, 0.3]` -> "[0.7, 0.3]"). */
  arg(call: string, name: string): string {
    const m = new RegExp(`(?:^|[\\s,(])${name}=(\\[[^\\]]*\\]|'[^']*'|[^,)\\s]+)`).exec(call);
    if (!m) throw new Error(`${this.dir}/README.md: the call "${call.slice(0, 80)}..." does not state ${name}`);
    return m[1];
  }

  num(call: string, name: string): number {
    const v = Number(this.arg(call, name));
    if (!Number.isFinite(v)) throw new Error(`${this.dir}/README.md: ${name} is not a number`);
    return v;
  }

  list(call: string, name: string): string[] {
    const raw = this.arg(call, name);
    if (!raw.startsWith('[')) throw new Error(`${this.dir}/README.md: ${name} is not a list`);
    return raw.slice(1, -1).split(',').map((s) => s.trim()).filter(Boolean);
  }

  /** A value the README states as `<label> <number>` (e.g. "torch.quantile(dist, 0.99)", "atol ~0.079"). */
  match(re: RegExp, what: string): number {
    const m = re.exec(this.text);
    if (!m) throw new Error(`${this.dir}/README.md does not state ${what}`);
    return Number(m[1]);
  }

  /** An input LoRA named as `../lora/lora_a`: that path, else the same file in the 'lora' case. */
  loraFile(ref: string): string {
    const file = /\.safetensors$/.test(ref) ? ref : `${ref}.safetensors`;
    const direct = path.resolve(this.dir, file);
    if (existsSync(direct)) return direct;
    return requireFile(goldenCase('lora'), path.basename(file));
  }
}
