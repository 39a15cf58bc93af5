import { TersorError } from "@tersor/core";

/**
 * Python's `re.split(r"\s+", doc)` on a `str`: `\s` matches every character for which
 * `str.isspace()` is true (which differs from JavaScript's `\s`: it includes U+001C–U+001F and
 * U+0085 and excludes U+FEFF).
 */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** Word count exactly as lm-evaluation-harness: `len(re.split(r"\s+", doc))` (so `""` counts 1). */
export function countWords(doc: string): number {
  return doc.split(PY_WHITESPACE).length;
}

/** UTF-8 byte count. */
export function countBytes(doc: string): number {
  return Buffer.byteLength(doc, "utf8");
}

/** Unicode code points (what "Compression Represents Intelligence Linearly" calls characters). */
export function countChars(doc: string): number {
  let n = 0;
  for (const _ of doc) n++;
  return n;
}

/** Totals over a set of documents: summed natural-log likelihood and the units it is normalised by. */
export interface LikelihoodTotals {
  /** Σ ll: natural-log likelihood of each whole document, summed. */
  loglikelihood: number;
  words: number;
  bytes: number;
  chars: number;
  /** Scored tokens. */
  tokens: number;
  documents: number;
}

/** Perplexity-family metrics with lm-evaluation-harness's definitions. */
export interface PerplexityMetrics {
  /** exp(−Σ ll / Σ words). */
  word_perplexity: number;
  /** exp(−Σ ll / Σ UTF-8 bytes). */
  byte_perplexity: number;
  /** −Σ ll / (Σ bytes · ln 2) = log2(byte_perplexity). */
  bits_per_byte: number;
  /** −Σ ll / (Σ code points · ln 2). */
  bits_per_char: number;
  /** exp(−Σ ll / Σ scored tokens). Depends on the tokenizer; not comparable across tokenizers. */
  token_perplexity: number;
}

/** Adds one document's likelihood to running totals. */
export function addDocument(totals: LikelihoodTotals, doc: string, loglikelihood: number, tokens: number): LikelihoodTotals {
  if (!Number.isFinite(loglikelihood) || loglikelihood > 1e-9) {
    throw new TersorError("E_RANGE", `a document's log-likelihood must be finite and ≤ 0, got ${loglikelihood}`);
  }
  totals.loglikelihood += loglikelihood;
  totals.words += countWords(doc);
  totals.bytes += countBytes(doc);
  totals.chars += countChars(doc);
  totals.tokens += tokens;
  totals.documents += 1;
  return totals;
}

export function emptyTotals(): LikelihoodTotals {
  return { loglikelihood: 0, words: 0, bytes: 0, chars: 0, tokens: 0, documents: 0 };
}

/** The metrics of a set of totals. */
export function perplexityMetrics(t: LikelihoodTotals): PerplexityMetrics {
  if (t.bytes === 0 || t.documents === 0) throw new TersorError("E_RANGE", "no text was scored: the metrics need at least one non-empty document");
  const nll = -t.loglikelihood;
  return {
    word_perplexity: Math.exp(nll / t.words),
    byte_perplexity: Math.exp(nll / t.bytes),
    bits_per_byte: nll / (t.bytes * Math.LN2),
    bits_per_char: nll / (t.chars * Math.LN2),
    token_perplexity: t.tokens > 0 ? Math.exp(nll / t.tokens) : Number.NaN,
  };
}
