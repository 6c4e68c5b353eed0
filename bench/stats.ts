// Summaries of repeated measurements: the median as the value, and the spread as min, max and
// the range relative to the median, so a reader sees how much to trust a difference.

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median */
  rel: number;
  n: number;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function spread(xs: number[]): Spread {
  const s = xs.filter((x) => Number.isFinite(x));
  const m = median(s);
  const min = Math.min(...s);
  const max = Math.max(...s);
  return { median: m, min, max, rel: m ? (max - min) / m : NaN, n: s.length };
}

export function round(x: number, digits = 1): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
