// HTML character references decoded by the HTML5 rules, as Python's html.unescape does them: OpenAI's CLIP
// tokenizer runs it twice after ftfy, and ftfy uses it for numeric references. This mirrors CPython 3.11's
// Lib/html/__init__.py (the behaviour, not the code).
import { HTML5_ENTITIES } from './html5-entities.js';

/** Numeric references the standard redirects: NUL and the Windows-1252 range 0x80-0x9F. */
const REDIRECTED = new Map<number, string>([
  [0x00, '\ufffd'], [0x0d, '\r'],
  ...[...'\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f'
    + '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178']
    .map((c, i) => [0x80 + i, c] as [number, string]),
]);

/** Code points a numeric reference may not produce: they decode to nothing. */
function isDroppedCodePoint(n: number): boolean {
  if ((n >= 0x01 && n <= 0x08) || n === 0x0b || (n >= 0x0e && n <= 0x1f) || (n >= 0x7f && n <= 0x9f)) return true;
  if (n >= 0xfdd0 && n <= 0xfdef) return true;
  return (n & 0xfffe) === 0xfffe; // U+xFFFE and U+xFFFF on every plane
}

/** The character a numeric reference stands for ('&#65;', '&#x41;'), by the standard's error rules. */
export function decodeNumericReference(digits: string, hex: boolean): string {
  // Digit strings longer than any code point become Infinity/huge numbers: out of range either way.
  const n = hex ? parseInt(digits, 16) : parseInt(digits, 10);
  const redirected = REDIRECTED.get(n);
  if (redirected !== undefined) return redirected;
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  if (isDroppedCodePoint(n)) return '';
  return String.fromCodePoint(n);
}

function decodeNamedReference(name: string): string {
  const whole = HTML5_ENTITIES[name];
  if (whole !== undefined) return whole;
  // Legacy names may run into the following text ("&ampx" is "&" + "x"): take the longest known prefix
  // of at least two characters.
  const chars = [...name];
  for (let len = chars.length - 1; len >= 2; len--) {
    const hit = HTML5_ENTITIES[chars.slice(0, len).join('')];
    if (hit !== undefined) return hit + chars.slice(len).join('');
  }
  return `&${name}`;
}

// A reference: decimal, hexadecimal, or a name of up to 32 characters, each with an optional ';'.
const REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Python's html.unescape. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, (_m, ref: string) => {
    if (ref[0] !== '#') return decodeNamedReference(ref);
    const hex = ref[1] === 'x' || ref[1] === 'X';
    return decodeNumericReference(ref.slice(hex ? 2 : 1).replace(/;$/, ''), hex);
  });
}
