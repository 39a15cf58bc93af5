/**
 * Training-free mixers: proportional to size, uniform (stratified), temperature sampling, and
 * BiMix's entropy-driven mixtures.
 */
import { gzipSync } from "node:zlib";

import { TersorError } from "@tersor/core";

import { type Mixture, checkDomains, normalize } from "./mixture.js";

function sizes(domains: readonly string[], counts: readonly number[]): void {
  checkDomains(domains);
  if (counts.length !== domains.length) throw new TersorError("E_SHAPE", `${counts.length} sizes for ${domains.length} domains`);
}

/** Weights proportional to domain sizes (tokens, bytes or documents): `w_i = n_i / Σ n`. */
export function proportionalMixture(domains: readonly string[], counts: readonly number[]): Mixture {
  sizes(domains, counts);
  return { domains: [...domains], weights: normalize(counts, "domain sizes") };
}

/** Uniform (stratified) sampling: every domain `1/K`, whatever its size. */
export function uniformMixture(domains: readonly string[]): Mixture {
  checkDomains(domains);
  return { domains: [...domains], weights: domains.map(() => 1 / domains.length) };
}

/** Stratified sampling, the baseline every mixer is reported against (= {@link uniformMixture}). */
export const stratifiedMixture = uniformMixture;

/**
 * Temperature sampling (as in multilingual pre-training, e.g. XLM-R / mT5): `w_i ∝ n_i^{1/T}`.
 * T = 1 is proportional, T → ∞ uniform.
 */
export function temperatureMixture(domains: readonly string[], counts: readonly number[], temperature: number): Mixture {
  sizes(domains, counts);
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new TersorError("E_RANGE", `temperature must be a positive number, got ${temperature}`);
  normalize(counts, "domain sizes");
  return { domains: [...domains], weights: normalize(counts.map((c) => Math.pow(c, 1 / temperature))) };
}

// ---- entropy measures -----------------------------------------------------------------------------

/** The per-domain measures BiMix's entropy-driven mixtures can use. */
export const ENTROPY_MEASURES = ["unigram", "bigram", "conditional", "gzip", "model"] as const;
export type EntropyMeasure = (typeof ENTROPY_MEASURES)[number];

/** Shannon entropy (bits) of a count table. */
export function entropyOfCounts(counts: Iterable<number>): number {
  let total = 0;
  const cs: number[] = [];
  for (const c of counts) {
    if (c > 0) {
      cs.push(c);
      total += c;
    }
  }
  if (total === 0) return 0;
  let h = 0;
  for (const c of cs) h -= (c / total) * Math.log2(c / total);
  return h;
}

/** Token sequences of a domain: the units the entropies count (bytes, words, or tokenizer ids). */
export type TokenSequences = readonly (readonly (number | string)[])[];

/** Unigram entropy `H(X)` (bits per token) of the tokens of all sequences. */
export function unigramEntropy(seqs: TokenSequences): number {
  const c = new Map<number | string, number>();
  for (const s of seqs) for (const t of s) c.set(t, (c.get(t) ?? 0) + 1);
  return entropyOfCounts(c.values());
}

/** Bigram (joint) entropy `H(X_t, X_{t+1})` (bits per pair) over adjacent pairs within each sequence. */
export function bigramEntropy(seqs: TokenSequences): number {
  return entropyOfCounts(pairCounts(seqs).pairs.values());
}

function pairCounts(seqs: TokenSequences): { pairs: Map<string, number>; firsts: Map<number | string, number> } {
  const pairs = new Map<string, number>();
  const firsts = new Map<number | string, number>();
  for (const s of seqs)
    for (let i = 0; i + 1 < s.length; i++) {
      const k = `${String(s[i])}\u0000${String(s[i + 1])}`;
      pairs.set(k, (pairs.get(k) ?? 0) + 1);
      firsts.set(s[i]!, (firsts.get(s[i]!) ?? 0) + 1);
    }
  return { pairs, firsts };
}

/** Conditional entropy `H(X_{t+1} | X_t) = H(X_t, X_{t+1}) − H(X_t)` over adjacent pairs (bits per token). */
export function conditionalEntropy(seqs: TokenSequences): number {
  const { pairs, firsts } = pairCounts(seqs);
  return Math.max(0, entropyOfCounts(pairs.values()) - entropyOfCounts(firsts.values()));
}

/** gzip compression ratio `compressed bytes / raw bytes` of the texts (level 9); higher = less redundant. */
export function gzipRatio(texts: readonly string[]): number {
  const raw = Buffer.from(texts.join("\n"), "utf8");
  if (raw.length === 0) throw new TersorError("E_RANGE", "cannot compute a compression ratio of empty text");
  return gzipSync(raw, { level: 9 }).length / raw.length;
}

/** Options of {@link entropyMixture}. */
export interface EntropyMixtureOptions {
  /** Which measure [conditional]. */
  measure?: EntropyMeasure;
  /** How texts become tokens for the count-based measures [bytes of UTF-8]. */
  tokenize?: (text: string) => readonly (number | string)[];
  /**
   * For `measure: "model"`: the domain's cross-entropy under a small model (e.g. bits per byte from
   * @tersor/eval), computed by the caller for each domain's texts.
   */
  modelEntropy?: (domain: string, texts: readonly string[]) => Promise<number> | number;
}

const bytesOf = (t: string): number[] => Array.from(Buffer.from(t, "utf8"));

/** The per-domain entropy measure BiMix weights by (see {@link entropyMixture}). */
export async function domainEntropy(domain: string, texts: readonly string[], options: EntropyMixtureOptions = {}): Promise<number> {
  if (texts.length === 0) throw new TersorError("E_RANGE", `domain "${domain}" has no texts`);
  const measure = options.measure ?? "conditional";
  if (!(ENTROPY_MEASURES as readonly string[]).includes(measure))
    throw new TersorError("E_RANGE", `unknown entropy measure "${measure}"; expected ${ENTROPY_MEASURES.join(", ")}`);
  const tok = options.tokenize ?? bytesOf;
  switch (measure) {
    case "unigram":
      return unigramEntropy(texts.map(tok));
    case "bigram":
      return bigramEntropy(texts.map(tok));
    case "conditional":
      return conditionalEntropy(texts.map(tok));
    case "gzip":
      return gzipRatio(texts);
    case "model": {
      if (!options.modelEntropy) throw new TersorError("E_RANGE", 'measure "model" needs a modelEntropy function');
      const h = await options.modelEntropy(domain, texts);
      if (!(Number.isFinite(h) && h >= 0)) throw new TersorError("E_RANGE", `model entropy of "${domain}" must be a finite number ≥ 0, got ${h}`);
      return h;
    }
  }
}

/**
 * BiMix's entropy-driven training-free mixture (Ge et al., "BiMix: A Bivariate Data Mixing Law for
 * Language Model Pretraining", 2024, §5): each domain's weight is proportional to an entropy measure
 * of its data (unigram, bigram or conditional token entropy, gzip compression ratio, or cross-entropy
 * under a small model), normalised to the simplex: `w_i = H_i / Σ_j H_j`.
 */
export async function entropyMixture(
  domains: Record<string, readonly string[]>,
  options: EntropyMixtureOptions = {},
): Promise<Mixture & { entropies: number[] }> {
  const names = Object.keys(domains);
  checkDomains(names);
  const entropies: number[] = [];
  for (const d of names) entropies.push(await domainEntropy(d, domains[d]!, options));
  return { domains: names, weights: normalize(entropies, "domain entropies"), entropies };
}

/** The scoring surface of a language model (structurally @tersor/model's `ModelScorer`). */
export interface EntropyScorer {
  encode(text: string): number[];
  readonly prefixToken: number;
  readonly maxLength: number;
  scoreWindows(windows: { context: number[]; continuation: number[] }[]): Promise<number[]>;
}

/**
 * Cross-entropy of texts under a small model, in bits per UTF-8 byte (BiMix's model-based entropy
 * measure; pass it as `modelEntropy`): each text's tokens are scored in consecutive windows of at most
 * `maxLength` tokens, the first conditioned on the prefix token and each later one on the token
 * before it; `−Σ log p / ln 2 / bytes`.
 */
export async function modelBitsPerByte(scorer: EntropyScorer, texts: readonly string[]): Promise<number> {
  let nats = 0;
  let bytes = 0;
  const span = Math.max(1, scorer.maxLength - 1);
  for (const t of texts) {
    const ids = scorer.encode(t);
    bytes += Buffer.byteLength(t, "utf8");
    const windows: { context: number[]; continuation: number[] }[] = [];
    for (let i = 0; i < ids.length; i += span) windows.push({ context: [i === 0 ? scorer.prefixToken : ids[i - 1]!], continuation: ids.slice(i, i + span) });
    for (const s of await scorer.scoreWindows(windows)) nats -= s;
  }
  if (bytes === 0) throw new TersorError("E_RANGE", "cannot score empty texts");
  return nats / Math.LN2 / bytes;
}
