// JSON as Python's json module writes it: it may contain NaN, Infinity and -Infinity
// (e.g. diffusers' lambda_min_clipped = -inf), which JSON.parse rejects.
export function parsePythonJson(text: string): unknown {
  // Replace the bare tokens outside strings; 1e999 parses to Infinity.
  const fixed = text.replace(/("(?:[^"\\]|\\.)*")|-Infinity|Infinity|NaN/g, (m, str: string | undefined) => {
    if (str) return str;
    return m === 'NaN' ? 'null' : m === '-Infinity' ? '-1e999' : '1e999';
  });
  return JSON.parse(fixed);
}
