// ftfy's fix_text with its default configuration, as OpenAI's CLIP tokenizer (and so sd-scripts' and A1111's
// SD 1.x text encoders) runs it on every prompt. Mirrors python-ftfy 6.1.1 (__init__.py fix_text,
// fix_and_explain, fix_encoding; fixes.py): same fixers, same order, same repeat-until-stable loops.
import { isBad } from './ftfy-badness.js';
import {
  CHARMAP_ENCODINGS, type CharmapEncoding, decodeFromBinary, decodeUtf8, decodeUtf8Variants, encodeToBinary, isAscii,
  possibleEncoding,
} from './ftfy-charmaps.js';
import {
  A_GRAVE_WORD, ALTERED_UTF8, ANSI_ESCAPE, C1_CONTROL, DOUBLE_QUOTES, HTML_ENTITIES, HTML_ENTITY, LIGATURES,
  LOSSY_UTF8, SINGLE_QUOTES, UTF8_DETECTOR, WIDTH_MAP, isRemovedControl,
} from './ftfy-chardata.js';
import { htmlUnescape } from './html-unescape.js';

/** Longest piece ftfy fixes at once when a text has no line breaks (its max_decode_length). */
const MAX_SEGMENT = 1_000_000;

const has = (text: string, re: RegExp) => text.search(re) >= 0; // search() ignores a global regex's lastIndex

function mapChars(text: string, map: ReadonlyMap<string, string>): string {
  let out = '';
  for (const c of text) out += map.get(c) ?? c;
  return out;
}

/** Known entities ending in ';' only (so "this&not that" stays), numeric ones when they decode cleanly. */
export function unescapeHtml(text: string): string {
  return text.replace(HTML_ENTITY, (entity) => {
    const known = HTML_ENTITIES.get(entity);
    if (known !== undefined) return known;
    if (!entity.startsWith('&#')) return entity;
    const decoded = htmlUnescape(entity);
    return decoded.includes(';') ? entity : decoded;
  });
}

export function removeTerminalEscapes(text: string): string {
  return text.replace(ANSI_ESCAPE, '');
}

export function uncurlQuotes(text: string): string {
  return text.replace(DOUBLE_QUOTES, '"').replace(SINGLE_QUOTES, "'");
}

export function fixLatinLigatures(text: string): string {
  return mapChars(text, LIGATURES);
}

export function fixCharacterWidth(text: string): string {
  return mapChars(text, WIDTH_MAP);
}

export function fixLineBreaks(text: string): string {
  return text.replace(/\r\n|[\r\u2028\u2029\x85]/g, '\n');
}

/** Lone UTF-16 surrogates become U+FFFD (pairs are already single characters in a JavaScript string). */
export function fixSurrogates(text: string): string {
  return text.replace(/[\ud800-\udfff]/gu, '\ufffd');
}

export function removeControlChars(text: string): string {
  let out = '';
  for (const c of text) if (!isRemovedControl(c.codePointAt(0)!)) out += c;
  return out;
}

/** C1 controls read as the Windows-1252 characters they stand for, as web browsers do. */
export function fixC1Controls(text: string): string {
  return text.replace(C1_CONTROL, (c) => decodeFromBinary(c, 'sloppy-windows-1252'));
}

/** Puts back the byte A0 where a program turned it into a space inside a UTF-8 sequence (on bytes). */
function restoreByteA0(bytes: string): string {
  return bytes.replace(A_GRAVE_WORD, '\xc3\xa0 ').replace(ALTERED_UTF8, (m) => m.replace(/ /g, '\xa0'));
}

/** UTF-8 sequences that lost bytes to '�' (byte 1A here) or '?' become one '�' (on bytes). */
function replaceLossySequences(bytes: string): string {
  return bytes.replace(LOSSY_UTF8, '\xef\xbf\xbd');
}

/** Mojibake embedded in otherwise good text, fixed piece by piece. */
function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_DETECTOR, (m) => (m.length < text.length && isBad(m) ? fixEncoding(m) : m));
}

/** Text that was UTF-8 read as a single-byte encoding, decoded back; null when it is not. */
function undoSingleByteDecoding(text: string, encoding: CharmapEncoding): string | null {
  let bytes = encodeToBinary(text, encoding);
  if (has(bytes, ALTERED_UTF8)) bytes = restoreByteA0(bytes);
  if (encoding.startsWith('sloppy-')) bytes = replaceLossySequences(bytes);
  return /[\xc0\xed]/.test(bytes) ? decodeUtf8Variants(bytes) : decodeUtf8(bytes);
}

/** One step of ftfy's encoding repair; returns the text unchanged when nothing applies. */
function fixEncodingStep(text: string): string {
  if (text.length === 0 || isAscii(text) || !isBad(text)) return text;
  for (const encoding of CHARMAP_ENCODINGS) {
    if (!possibleEncoding(text, encoding)) continue;
    const fixed = undoSingleByteDecoding(text, encoding);
    if (fixed !== null) return fixed;
  }
  if (has(text, UTF8_DETECTOR)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }
  // ftfy next re-reads Latin-1 text as strict Windows-1252 (its check for "windows-1252" among the possible
  // encodings never succeeds: the list names the sloppy codec). On Latin-1 text that re-reading changes only
  // the C1 controls, exactly as fix_c1_controls below does, so that step alone gives the same result.
  return has(text, C1_CONTROL) ? fixC1Controls(text) : text;
}

/** ftfy.fix_encoding: repeats the repair until the text stops changing. */
export function fixEncoding(text: string): string {
  for (;;) {
    const next = fixEncodingStep(text);
    if (next === text) return text;
    text = next;
  }
}

const AFTER_ENCODING: ((text: string) => string)[] = [
  fixC1Controls, fixLatinLigatures, fixCharacterWidth, uncurlQuotes, fixLineBreaks, fixSurrogates,
  removeTerminalEscapes, removeControlChars,
];

/** ftfy.fix_and_explain on one segment: every fixer in order, then NFC, until nothing changes. */
function fixSegment(text: string, unescape: boolean): string {
  for (;;) {
    const original = text;
    if (unescape) text = unescapeHtml(text);
    text = fixEncoding(text);
    for (const fixer of AFTER_ENCODING) text = fixer(text);
    text = text.normalize('NFC');
    if (text === original) return text;
  }
}

/** Splits after each line break, and long lines every MAX_SEGMENT code points, as ftfy does. */
function segments(text: string): string[] {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  return lines.flatMap((line) => {
    if (line.length <= MAX_SEGMENT) return [line];
    const cps = [...line], out: string[] = [];
    for (let i = 0; i < cps.length; i += MAX_SEGMENT) out.push(cps.slice(i, i + MAX_SEGMENT).join(''));
    return out;
  });
}

/**
 * ftfy.fix_text with the default configuration. HTML entities are decoded unless a '<' shows the text is
 * real HTML; once a segment has one, entities stay in that segment and all later ones.
 */
export function fixText(text: string): string {
  let unescape = true;
  return segments(text).map((segment) => {
    if (segment.includes('<')) unescape = false;
    return fixSegment(segment, unescape);
  }).join('');
}
