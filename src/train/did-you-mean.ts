// "Did you mean" suggestions for misspelt option, dataset-config and network/optimizer argument
// names: the closest candidate by edit distance, when it is close enough to be a likely typo.

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
    d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

export function closest(key: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const dist = levenshtein(key.toLowerCase(), c.toLowerCase());
    if (dist < bestD) { bestD = dist; best = c; }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** ` (did you mean "x"?)` or the empty string. */
export function suggestion(key: string, candidates: Iterable<string>): string {
  const hit = closest(key, candidates);
  return hit ? ` (did you mean "${hit}"?)` : '';
}
