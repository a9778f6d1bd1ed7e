// Parsing a configuration file's text (TOML by extension, else JSON as Python writes it) with
// syntax errors that name the file, the line and the column, as compilers do (file:line:col).
import path from 'node:path';
import { TomlError, parse as parseToml } from 'smol-toml';
import { parsePythonJson } from './python-json.js';

export class ConfigSyntaxError extends Error {
  constructor(readonly file: string, readonly line: number, readonly column: number, what: string, detail: string) {
    super(`${file}:${line}:${column}: not valid ${what}: ${detail}`);
    this.name = 'ConfigSyntaxError';
  }
}

const isToml = (file: string) => path.extname(file).toLowerCase() === '.toml';

export function parseConfigText(file: string, text: string): unknown {
  if (isToml(file)) {
    try { return parseToml(text); } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      // smol-toml's message is "Invalid TOML document: <what>" followed by a code excerpt.
      const what = e.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigSyntaxError(file, e.line, e.column, 'TOML', what);
    }
  }
  try { return parsePythonJson(text); } catch (e) {
    const [line, column] = lineColumn(text, jsonErrorOffset(text));
    throw new ConfigSyntaxError(file, line, column, 'JSON', jsonProblem((e as Error).message));
  }
}

/** Length of a text once parsePythonJson has written NaN/Infinity as JSON (V8's positions count in that text). */
const pythonJsonLength = (t: string) => t.replace(/("(?:[^"\\]|\\.)*")|-Infinity|Infinity|NaN/g, (m, str) => (str ? m : m === 'NaN' ? 'null' : m === '-Infinity' ? '-1e999' : '1e999')).length;

/**
 * Where JSON.parse failed, as an offset in the file's own text. A prefix that is valid JSON so far
 * fails only at its end; the shortest prefix that fails before its end stops just after the
 * offending character (binary search, O(log n) parses). V8 names no position for an unexpected
 * token, and its positions count in the text with NaN/Infinity rewritten.
 */
function jsonErrorOffset(text: string): number {
  const failsInside = (k: number) => {
    const prefix = text.slice(0, k);
    try { parsePythonJson(prefix); return false; } catch (x) {
      // A cut NaN or Infinity is a bad token to V8 but only an unfinished one here.
      if (/(^|[^\w])(N|Na|-?I|-?In|-?Inf|-?Infi|-?Infin|-?Infini|-?Infinit)$/.test(prefix)) return false;
      const msg = (x as Error).message, at = /position (\d+)/.exec(msg);
      return at ? Number(at[1]) < pythonJsonLength(prefix) : !/end of JSON input/i.test(msg);
    }
  };
  let lo = 0, hi = text.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (failsInside(mid)) hi = mid; else lo = mid + 1; }
  return Math.max(0, lo - 1);
}

/** V8's message without its copy of the text and the offset (the line and column say where). */
function jsonProblem(message: string): string {
  return message.split('\n')[0].replace(/, ".*$/, '').replace(/ in JSON at position \d+.*$/, '');
}

/** 1-based line and column of a character offset. */
function lineColumn(text: string, offset: number): [number, number] {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return [line, offset - before.lastIndexOf('\n')];
}
