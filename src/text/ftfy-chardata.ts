// Character tables and patterns of ftfy's fixers: mirrors python-ftfy 6.1.1's chardata.py (quotes, ligatures,
// width forms, control characters, HTML entities and the byte patterns of damaged UTF-8).
import { HTML5_ENTITIES } from './html5-entities.js';
import { htmlUnescape } from './html-unescape.js';

/** Curly and modifier apostrophes that ftfy straightens to "'", and curly double quotes to '"'. */
export const SINGLE_QUOTES = /[\u02bc\u2018-\u201b]/gu;
export const DOUBLE_QUOTES = /[\u201c-\u201f]/gu;

/**
 * Latin ligatures and legacy digraph characters ftfy splits; others (æ, œ, scripts other than Latin) stay,
 * as they are usually meant.
 */
export const LIGATURES: ReadonlyMap<string, string> = new Map([
  ['Ĳ', 'IJ'], ['ĳ', 'ij'], ['ŉ', 'ʼn'],
  ['Ǳ', 'DZ'], ['ǲ', 'Dz'], ['ǳ', 'dz'], ['Ǆ', 'DŽ'], ['ǅ', 'Dž'], ['ǆ', 'dž'],
  ['Ǉ', 'LJ'], ['ǈ', 'Lj'], ['ǉ', 'lj'], ['Ǌ', 'NJ'], ['ǋ', 'Nj'], ['ǌ', 'nj'],
  ['ﬀ', 'ff'], ['ﬁ', 'fi'], ['ﬂ', 'fl'], ['ﬃ', 'ffi'], ['ﬄ', 'ffl'], ['ﬅ', 'ſt'], ['ﬆ', 'st'],
]);

/**
 * The Halfwidth and Fullwidth Forms block (U+FF01-U+FFEF) to its compatibility (NFKC) form, plus the
 * ideographic space to an ASCII space. Only this block: NFKC elsewhere would change meaning ("10³").
 */
export const WIDTH_MAP: ReadonlyMap<string, string> = (() => {
  const map = new Map([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const c = String.fromCodePoint(cp), nfkc = c.normalize('NFKC');
    if (nfkc !== c) map.set(c, nfkc);
  }
  return map;
})();

/**
 * Control characters with no visible effect that ftfy deletes: C0 controls other than tab, LF, FF and CR,
 * DEL, the deprecated Arabic format controls, the BOM, and interlinear annotation / object replacement.
 * C1 controls stay (they are mojibake evidence), as do joiners, direction marks and tag characters.
 */
export function isRemovedControl(cp: number): boolean {
  return cp <= 0x08 || cp === 0x0b || (cp >= 0x0e && cp <= 0x1f) || cp === 0x7f
    || (cp >= 0x206a && cp <= 0x206f) || cp === 0xfeff || (cp >= 0xfff9 && cp <= 0xfffc);
}

/** C1 control characters: left from Latin-1 decoding where Windows-1252 was meant. */
export const C1_CONTROL = /[\x80-\x9f]/gu;

/** ANSI terminal escapes (colours and the like); Python's \d is any decimal digit, not only ASCII. */
export const ANSI_ESCAPE = /\x1b\[((?:\p{Nd}|;)*)([a-zA-Z])/gu;

/** What ftfy's unescape_html looks at: an entity of 1-24 alphanumerics, always ended by ';'. */
export const HTML_ENTITY = /&#?[0-9A-Za-z]{1,24};/gu;

/**
 * The ';'-terminated HTML5 entities, plus all-caps spellings of the all-lowercase ones ("&EACUTE;" -> "É")
 * where the caps spelling does not already mean something to an HTML parser.
 */
export const HTML_ENTITIES: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const [name, char] of Object.entries(HTML5_ENTITIES)) {
    if (!name.endsWith(';')) continue;
    map.set(`&${name}`, char);
    // Python's str.lower/upper here; they agree with JavaScript's on the ASCII entity names.
    if (name !== name.toLowerCase()) continue;
    const upper = `&${name.toUpperCase()}`;
    if (htmlUnescape(upper) === upper) map.set(upper, char.toUpperCase());
  }
  return map;
})();

// Byte patterns, matched against binary strings (one character per byte).

/**
 * UTF-8 sequences that would be valid if a byte A0 had not been turned into a space by a Windows-1252
 * program. Only lead bytes whose A0 forms a likely character (NBSP, à, Š, Π, Р, ٠) in two-byte sequences;
 * in three-byte ones E0-E3 (not CJK) and in four-byte ones F0.
 */
export const ALTERED_UTF8 = new RegExp([
  '[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9] ',
  '[\\xe2\\xe3] [\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]',
  '[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf] ',
  '\\xf0 [\\x80-\\xbf][\\x80-\\xbf]',
  '\\xf0[\\x80-\\xbf] [\\x80-\\xbf]',
  '\\xf0[\\x80-\\xbf][\\x80-\\xbf] ',
].join('|'), 'g');

/** "Ã " that stands for "à " (the word), except before the Portuguese words that start with "à" itself. */
export const A_GRAVE_WORD = /\xc3 (?! |quele|quela|quilo|s )/g;

/**
 * UTF-8 sequences that lost continuation bytes: byte 1A is what the sloppy codecs encode '�' as, and an ASCII
 * '?' may stand in once per sequence. Includes CESU-8 surrogate pairs; a lone 1A also matches.
 */
export const LOSSY_UTF8 = new RegExp([
  '[\\xc2-\\xdf]\\x1a',
  '[\\xc2-\\xc3]\\?',
  '\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]',
  '\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]',
  '[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]',
  '[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]',
  '[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]',
  '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]',
  '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]',
  '\\x1a',
].join('|'), 'g');

// Characters that Latin-1-like decodings give for UTF-8 lead and continuation bytes: the clues for finding
// mojibake embedded in otherwise good text.
const FIRST_OF_2 = 'ÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßĂĆČĎĐĘĚĞİĹŃŇŐŘŞŢŮŰ'
  + 'ΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ';
const FIRST_OF_3 = 'àáâãäåæçèéêëìíîïăćčďęěĺŕΰαβγδεζηθικλμνξοабвгдежзийклмноп';
const FIRST_OF_4 = 'ðóđğπσру';
const CONTINUATION_STRICT = '\\x80-\\xbfĄąĽľŁłŒœŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅'
  + 'ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ†‡•‰‹›€№™';
// The loose set adds what may also stand for itself next to mojibake: a space (for A0), dashes, quotes, '…'.
const CONTINUATION = `${CONTINUATION_STRICT}–—―‘’‚“”„… `;

/**
 * Runs of likely UTF-8 mojibake (lead clue + continuation clues), not directly after a strict continuation
 * clue, so a few characters inside a larger garble are not "fixed" on their own.
 */
export const UTF8_DETECTOR = new RegExp(
  `(?<![${CONTINUATION_STRICT}])(?:[${FIRST_OF_2}][${CONTINUATION}]|[${FIRST_OF_3}][${CONTINUATION}]{2}|[${FIRST_OF_4}][${CONTINUATION}]{3})+`,
  'gu',
);
