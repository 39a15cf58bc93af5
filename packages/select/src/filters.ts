/**
 * Heuristic quality rules in the style of Gopher (Rae et al. 2021, "Scaling Language Models", appendix
 * A.1.1): word count 50..100,000, mean word length 3..10, symbol-to-word ratio < 0.1 (# and …),
 * at most 90% of lines starting with a bullet, at most 30% ending with an ellipsis, at least 80% of
 * words with an alphabetic character, duplicate-line fraction ≤ 0.30, top 2-gram character share ≤ 0.20.
 */
export interface GopherThresholds {
  minWords: number;
  maxWords: number;
  minMeanWordLength: number;
  maxMeanWordLength: number;
  maxSymbolRatio: number;
  maxBulletLines: number;
  maxEllipsisLines: number;
  minAlphaWords: number;
  maxDuplicateLines: number;
  maxTopBigramShare: number;
}

export const GOPHER_DEFAULTS: GopherThresholds = {
  minWords: 50,
  maxWords: 100_000,
  minMeanWordLength: 3,
  maxMeanWordLength: 10,
  maxSymbolRatio: 0.1,
  maxBulletLines: 0.9,
  maxEllipsisLines: 0.3,
  minAlphaWords: 0.8,
  maxDuplicateLines: 0.3,
  maxTopBigramShare: 0.2,
};

export type GopherRule = "word-count" | "mean-word-length" | "symbol-ratio" | "bullet-lines" | "ellipsis-lines" | "alpha-words" | "duplicate-lines" | "top-bigram";

/** The rules a text fails (empty: it passes). */
export function gopherFailures(text: string, t: GopherThresholds = GOPHER_DEFAULTS): GopherRule[] {
  const fails: GopherRule[] = [];
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const n = words.length;
  if (n < t.minWords || n > t.maxWords) fails.push("word-count");
  const mean = n ? words.reduce((a, w) => a + [...w].length, 0) / n : 0;
  if (mean < t.minMeanWordLength || mean > t.maxMeanWordLength) fails.push("mean-word-length");
  const symbols = (text.match(/#/g)?.length ?? 0) + (text.match(/\.\.\.|…/g)?.length ?? 0);
  if (n && symbols / n > t.maxSymbolRatio) fails.push("symbol-ratio");
  const lines = text.split("\n").filter((l) => l.trim().length > 0);
  if (lines.length) {
    if (lines.filter((l) => /^\s*[•\-*●▪]/.test(l)).length / lines.length > t.maxBulletLines) fails.push("bullet-lines");
    if (lines.filter((l) => /(\.\.\.|…)\s*$/.test(l)).length / lines.length > t.maxEllipsisLines) fails.push("ellipsis-lines");
    const seen = new Set<string>();
    let dup = 0;
    for (const l of lines) {
      if (seen.has(l)) dup++;
      else seen.add(l);
    }
    if (dup / lines.length > t.maxDuplicateLines) fails.push("duplicate-lines");
  }
  if (n && words.filter((w) => /\p{L}/u.test(w)).length / n < t.minAlphaWords) fails.push("alpha-words");
  if (n >= 2) {
    const counts = new Map<string, number>();
    const lw = words.map((w) => w.toLowerCase());
    for (let i = 0; i + 1 < n; i++) {
      const g = lw[i] + " " + lw[i + 1];
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    let top = "";
    let c = 0;
    for (const [g, v] of counts) if (v > c) [top, c] = [g, v];
    const chars = lw.reduce((a, w) => a + w.length, 0);
    if (c > 1 && chars && (c * top.replace(" ", "").length) / chars > t.maxTopBigramShare) fails.push("top-bigram");
  }
  return fails;
}

/** Applies the rules to many texts: keep flags and per-rule failure counts. */
export function gopherFilter(texts: readonly string[], t: GopherThresholds = GOPHER_DEFAULTS): { keep: boolean[]; reasons: GopherRule[][]; counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  const reasons = texts.map((x) => gopherFailures(x, t));
  for (const r of reasons) for (const rule of r) counts[rule] = (counts[rule] ?? 0) + 1;
  return { keep: reasons.map((r) => r.length === 0), reasons, counts };
}
