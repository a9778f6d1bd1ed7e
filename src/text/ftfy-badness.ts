// ftfy's mojibake detector: mirrors python-ftfy 6.1.1's badness.py. The ~400 characters that UTF-8 mojibake
// is made of are sorted into categories, and text is "bad" when it holds a juxtaposition of them that real
// text almost never has (an accented lowercase letter followed by a currency sign, and so on).

// Category contents, as character-class bodies (ranges allowed).
const COMMON = '\u00a0\u00ad\u00b7\u00b4\u2013\u2014\u2015\u2026\u2019'; // NBSP, soft hyphen, middle dot, acute, dashes, …, ’
const C1 = '\\x80-\\x9f';
const BAD = '\u00a6\u00a4\u00a8\u00ac\u00af\u00b6\u00a7\u00b8\u0192\u02c6\u02c7\u02d8\u02db\u02dc\u2020\u2021\u2030\u2310\u25ca\ufffd\u00aa\u00ba';
const CURRENCY = '\u00a2\u00a3\u00a5\u20a7\u20ac';
const START_PUNCT = '\u00a1\u00ab\u00bf\u00a9\u0384\u0385\u2018\u201a\u201c\u201e\u2022\u2039\uf8ff';
const END_PUNCT = '\u00ae\u00bb\u02dd\u201d\u203a\u2122';
const NUMERIC = '\u00b2\u00b3\u00b9\u00b1\u00bc\u00bd\u00be\u00d7\u00b5\u00f7\u2044\u2202\u2206\u220f\u2211\u221a\u221e\u2229\u222b\u2248\u2260\u2261\u2264\u2265\u2116';
// Letters that kaomoji faces are made of, so they may sit in odd company.
const KAOMOJI = 'Ò-Öò-öÙ-Üø-ü\u0150\u00b0';
const UPPER_ACCENTED = '\\xc0-\\xd1\u00d8\u00dc\u00dd\u0102\u0104\u0106\u010c\u010e\u0110\u0118\u011a\u011e\u0130\u0139\u013d\u0141\u0143\u0147\u0152\u0158\u015a\u015e\u0160\u0162\u0164\u016e\u0170\u0178\u0179\u017b\u017d\u0490';
const LOWER_ACCENTED = '\u00df\\xe0-\\xf1\u0103\u0105\u0107\u010d\u010f\u0111\u0119\u011b\u011f\u013a\u013e\u0142\u0153\u0155\u015b\u015f\u0161\u0165\u00fc\u017a\u017c\u017e\u0491\ufb01\ufb02';
const UPPER_COMMON = '\u00de\u0391-\u03a9\u0386\u0388\u0389\u038a\u038c\u038e\u038f\u03aa\u03ab\u0401-\u042f';
const LOWER_COMMON = '\u03b1-\u03c9\u03ac\u03ad\u03ae\u03af\u03b0\u0430-\u045f';
const BOX = '│┌┐┘├┤┬┼\u2550-\u256c▀▄█▌▐░▒▓';

// Python's \s and \w on str (the badness pattern is applied with Python's re module).
const PY_SPACE = '\\t\\n\\x0b\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WORD = '\\p{L}\\p{N}_';

const cls = (...parts: string[]) => `[${parts.join('')}]`;
const ACCENTED_ETC = cls(LOWER_ACCENTED, UPPER_ACCENTED, BOX, START_PUNCT, END_PUNCT, CURRENCY, NUMERIC);
const ARABIC_PAIR = `[ØÙ]${cls(COMMON, CURRENCY, BAD, NUMERIC, START_PUNCT, 'ŸŠ®°µ»')}`;

/** Each alternative is one improbable sequence; see badness.py for the reasoning behind each. */
const RULES = [
  cls(C1),
  `${cls(BAD, LOWER_ACCENTED, UPPER_ACCENTED, BOX, START_PUNCT, END_PUNCT, CURRENCY, NUMERIC)}${cls(BAD)}`,
  `[a-zA-Z]${cls(LOWER_COMMON, UPPER_COMMON)}${cls(BAD)}`,
  `${cls(BAD)}${ACCENTED_ETC}`,
  `${cls(LOWER_ACCENTED, LOWER_COMMON, BOX, END_PUNCT, CURRENCY, NUMERIC)}${cls(UPPER_ACCENTED)}`,
  `${cls(BOX, END_PUNCT, CURRENCY, NUMERIC)}${cls(LOWER_ACCENTED)}`,
  // An uppercase accented letter before a currency sign is left out: some stylised writing does that.
  `${cls(LOWER_ACCENTED, BOX, END_PUNCT)}${cls(CURRENCY)}`,
  `${cls(PY_SPACE)}${cls(UPPER_ACCENTED)}${cls(CURRENCY)}`,
  `${cls(UPPER_ACCENTED, BOX)}${cls(NUMERIC)}`,
  `${cls(LOWER_ACCENTED, UPPER_ACCENTED, BOX, CURRENCY, END_PUNCT)}${cls(START_PUNCT)}${cls(NUMERIC)}`,
  `${cls(LOWER_ACCENTED, UPPER_ACCENTED, CURRENCY, NUMERIC, BOX)}${cls(END_PUNCT)}${cls(START_PUNCT)}`,
  `${cls(CURRENCY, NUMERIC, BOX)}${cls(START_PUNCT)}`,
  `[a-z]${cls(UPPER_ACCENTED)}${cls(START_PUNCT, CURRENCY)}`,
  `${cls(BOX)}${cls(KAOMOJI)}`,
  `${cls(LOWER_ACCENTED, UPPER_ACCENTED, CURRENCY, NUMERIC, START_PUNCT, END_PUNCT)}${cls(BOX)}`,
  `${cls(BOX)}${cls(END_PUNCT)}`,
  `${cls(LOWER_ACCENTED, UPPER_ACCENTED)}${cls(END_PUNCT)}${cls(PY_WORD)}`,
  '[Œœ][^A-Za-z]', // the œ ligature not followed by an unaccented Latin letter
  `[ÂÃÎÐ]${cls('€Šš¢£Ÿž\\xa0\\xad®©°·»', START_PUNCT, END_PUNCT, '–—´')}`, // common Windows-1252 pairs
  '×[²³]',
  `${ARABIC_PAIR}${ARABIC_PAIR}`, // Arabic read as Windows-1252: needs four characters
  'à[²µ¹¼½¾]', // South Asian scripts read as Windows-1252
  '√[±∂†≠®™´≤≥¥µø]', // MacRoman mojibake
  '≈[°¢]',
  '‚Ä[ìîïòôúùû†°¢π]',
  '‚[âó][àä°ê]',
  'вЂ', // Windows-1251 mojibake of the U+2000 block
  `[ВГРС]${cls(C1, BAD, START_PUNCT, END_PUNCT, CURRENCY, '°µ')}[ВГРС]`, // Windows-1251 of Latin-1 / Cyrillic
  'ГўВЂВ[^\\n][A-Za-z ]', // Windows-1251 over Latin-1 over Windows-1252, next to a Latin letter
  'Ã[\\xa0¡]', // 'à', 'á' and NBSP through Windows-1252
  `[a-z]${cls(PY_SPACE)}?[ÃÂ] `,
  '^[ÃÂ] ',
  `[a-z.,?!${END_PUNCT}]Â[ ${START_PUNCT}${END_PUNCT}]`, // Â before the very character it encodes
  'β€[™\\xa0Ά\\xad®°]', // Windows-1253 mojibake of the U+2000 block
  `[ΒΓΞΟ]${cls(C1, BAD, START_PUNCT, END_PUNCT, CURRENCY, '°')}[ΒΓΞΟ]`, // Windows-1253 of Latin-1 / Greek
];

const BADNESS = new RegExp(RULES.join('|'), 'u');

/** Whether the text holds at least one sequence that looks like mojibake. */
export function isBad(text: string): boolean {
  return BADNESS.test(text);
}
