/**
 * Compression as a measure of intelligence:
 * - bits per character / byte of several models on the same documents and a least-squares line
 *   against benchmark scores the user supplies, as in Huang et al., "Compression Represents
 *   Intelligence Linearly" (COLM 2024), which found average benchmark scores linear in BPC;
 * - the log-perplexity minus mean entropy statistic of a model on text;
 * - Compression-Identified Exemplars: the documents on which a compressed model's loss departs
 *   most from the original's.
 * Models come from @tersor/model (`Model` satisfies the scorer interfaces structurally, so test
 * doubles work as well).
 */
import { TersorError } from "@tersor/core";
import type { Model } from "@tersor/model";

import { countBytes } from "./metrics.js";
import { type EvalDocument, type LanguageModelScorer, type PerplexityOptions, evaluatePerplexity } from "./perplexity.js";
import { rollingDisjointWindows } from "./windows.js";

// ---- linear fit -------------------------------------------------------------------------------

export interface LinearFit {
  /** y ≈ slope · x + intercept (ordinary least squares). */
  slope: number;
  intercept: number;
  /** Pearson correlation of x and y. */
  r: number;
  /** r². */
  r2: number;
  n: number;
  /** √(Σ residual² / (n − 2)) (NaN for n = 2). */
  residualStd: number;
}

/** Ordinary least-squares line through (x_i, y_i) and Pearson's r. Needs n ≥ 2 finite points and x not constant. */
export function linearFit(x: readonly number[], y: readonly number[]): LinearFit {
  if (x.length !== y.length) throw new TersorError("E_SHAPE", `linearFit: ${x.length} x values and ${y.length} y values`);
  const n = x.length;
  if (n < 2) throw new TersorError("E_RANGE", "linearFit needs at least two points");
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) throw new TersorError("E_RANGE", `linearFit: point ${i} (${x[i]}, ${y[i]}) is not finite`);
  }
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxx += dx * dx;
    syy += dy * dy;
    sxy += dx * dy;
  }
  if (!(sxx > 0)) throw new TersorError("E_RANGE", "linearFit: all x values are equal");
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const r = syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN;
  let rss = 0;
  for (let i = 0; i < n; i++) rss += (y[i]! - (slope * x[i]! + intercept)) ** 2;
  return { slope, intercept, r, r2: r * r, n, residualStd: n > 2 ? Math.sqrt(rss / (n - 2)) : Number.NaN };
}

// ---- compression vs benchmark scores --------------------------------------------------------

export interface CompressionEntry {
  name: string;
  bits_per_char: number;
  bits_per_byte: number;
  /** The benchmark score supplied for this model, if any. */
  score?: number;
}

export interface CompressionStudy {
  models: CompressionEntry[];
  /** score ≈ slope · metric + intercept over the models that have scores (≥ 2 of them). */
  fit?: LinearFit & { metric: "bits_per_char" | "bits_per_byte" };
}

/** Fits benchmark scores against a compression metric of models already measured. */
export function fitCompressionToScores(entries: readonly CompressionEntry[], metric: "bits_per_char" | "bits_per_byte" = "bits_per_char"): LinearFit & { metric: "bits_per_char" | "bits_per_byte" } {
  const scored = entries.filter((e) => e.score !== undefined);
  if (scored.length < 2) throw new TersorError("E_RANGE", `a fit needs benchmark scores for at least two models, got ${scored.length}`);
  return { ...linearFit(scored.map((e) => e[metric]), scored.map((e) => e.score!)), metric };
}

/**
 * Measures bits per character and per byte (lm-evaluation-harness definitions, through
 * {@link evaluatePerplexity}) of several models on the same documents and, when benchmark `scores`
 * are given by model name for at least two of them, fits score against the metric (default BPC) as
 * Huang et al. (2024) do. Documents are read once into memory so every model sees the same text.
 */
export async function compressionStudy(
  models: readonly { name: string; model: LanguageModelScorer }[],
  docs: Iterable<EvalDocument> | AsyncIterable<EvalDocument>,
  options: PerplexityOptions & { scores?: Record<string, number>; metric?: "bits_per_char" | "bits_per_byte" } = {},
): Promise<CompressionStudy> {
  const { scores, metric, ...ppl } = options;
  if (models.length === 0) throw new TersorError("E_RANGE", "compressionStudy needs at least one model");
  const names = new Set<string>();
  for (const m of models) {
    if (names.has(m.name)) throw new TersorError("E_RANGE", `model name "${m.name}" appears twice`);
    names.add(m.name);
  }
  for (const k of Object.keys(scores ?? {})) {
    if (!names.has(k)) throw new TersorError("E_RANGE", `a score is given for "${k}", which is not one of the models (${[...names].join(", ")})`);
    if (!Number.isFinite(scores![k]!)) throw new TersorError("E_RANGE", `the score of "${k}" is not a finite number`);
  }
  const all: EvalDocument[] = [];
  for await (const d of docs) all.push(d);
  const out: CompressionEntry[] = [];
  for (const m of models) {
    const r = await evaluatePerplexity(m.model, all, { progress: "silent", ...ppl, window: ppl.window ?? Math.min(m.model.maxLength, 512) });
    const e: CompressionEntry = { name: m.name, bits_per_char: r.bits_per_char, bits_per_byte: r.bits_per_byte };
    if (scores && scores[m.name] !== undefined) e.score = scores[m.name]!;
    out.push(e);
  }
  const study: CompressionStudy = { models: out };
  if (out.filter((e) => e.score !== undefined).length >= 2) study.fit = fitCompressionToScores(out, metric);
  return study;
}

// ---- log-perplexity minus entropy -------------------------------------------------------------

/** What the entropy statistic needs from a model: `@tersor/model`'s `Model` has it. */
export type LogitsModel = Pick<Model, "encode" | "prefixToken" | "maxLength" | "vocabSize" | "forward">;

export interface EntropyGapResult {
  /** Mean over scored tokens of −log p(token | context), nats (the log-perplexity). */
  meanNll: number;
  /** Mean over scored tokens of the entropy H(p(· | context)) of the predicted distribution, nats. */
  meanEntropy: number;
  /** meanNll − meanEntropy (nats): the average per-token gap. */
  gap: number;
  /** The gap in bits. */
  gapBits: number;
  tokens: number;
  documents: number;
}

/**
 * The log-perplexity minus mean-entropy statistic: for every scored token t of every document,
 * `−log p(t | context) − H(p(· | context))` with `H(p) = −Σ_v p_v log p_v` over the vocabulary,
 * averaged over all tokens (natural logs). It is 0 in expectation when the text is distributed as
 * the model predicts (the surprisal of a sample from p averages to H(p)); positive when the text
 * surprises the model more than the model expects (over-confidence or a domain shift), negative
 * when the model is less certain than it could be. Documents are scored as {@link evaluatePerplexity}
 * does (prefix token, rolling disjoint windows of `window` inputs, default min(maxLength, 512)).
 */
export async function entropyGap(model: LogitsModel, docs: Iterable<EvalDocument> | AsyncIterable<EvalDocument>, options: { window?: number } = {}): Promise<EntropyGapResult> {
  const window = options.window ?? Math.min(model.maxLength, 512);
  if (!Number.isInteger(window) || window < 2 || window > model.maxLength) throw new TersorError("E_RANGE", `window must be an integer in [2, ${model.maxLength}], got ${window}`);
  const V = model.vocabSize;
  let nll = 0;
  let ent = 0;
  let tokens = 0;
  let documents = 0;
  for await (const doc of docs) {
    documents++;
    const ids = model.encode(doc.text);
    for (const w of rollingDisjointWindows(ids, model.prefixToken, window, 1)) {
      const input = [...w.context, ...w.continuation].slice(0, -1);
      const logits = await model.forward(input);
      const c = w.context.length;
      for (let m = 0; m < w.continuation.length; m++) {
        const row = logits.data.subarray((c - 1 + m) * V, (c + m) * V);
        let mx = -Infinity;
        for (let v = 0; v < V; v++) if (row[v]! > mx) mx = row[v]!;
        let z = 0;
        let zs = 0;
        for (let v = 0; v < V; v++) {
          const e = Math.exp(row[v]! - mx);
          z += e;
          zs += e * (row[v]! - mx);
        }
        const logZ = Math.log(z);
        // H = log Z − E_p[l − mx];  −log p(t) = log Z − (l_t − mx)
        ent += logZ - zs / z;
        nll += logZ - (row[w.continuation[m]!]! - mx);
        tokens++;
      }
    }
  }
  if (tokens === 0) throw new TersorError("E_RANGE", "no tokens were scored: the entropy gap needs at least one non-empty document");
  const gap = (nll - ent) / tokens;
  return { meanNll: nll / tokens, meanEntropy: ent / tokens, gap, gapBits: gap / Math.LN2, tokens, documents };
}

// ---- Compression-Identified Exemplars ---------------------------------------------------------

/** Σ log p of a document's tokens (nats), scored with rolling disjoint windows as lm-eval does. */
export async function documentLogLikelihood(scorer: LanguageModelScorer, text: string, window: number, batchSize = 8): Promise<{ loglikelihood: number; tokens: number }> {
  const ids = await scorer.encode(text);
  const windows = rollingDisjointWindows(ids, scorer.prefixToken, window, 1);
  let ll = 0;
  for (let i = 0; i < windows.length; i += batchSize) for (const s of await scorer.scoreWindows(windows.slice(i, i + batchSize))) ll += s;
  return { loglikelihood: ll, tokens: ids.length };
}

export interface ExemplarScore {
  /** Index of the document in the input order. */
  index: number;
  domain?: string;
  bytes: number;
  /** Bits per byte of the original and of the compressed model on this document. */
  bpbOriginal: number;
  bpbCompressed: number;
  /** bpbCompressed − bpbOriginal = (ll_original − ll_compressed) / (bytes · ln 2). */
  score: number;
  /** The first 160 characters of the text. */
  preview: string;
}

export interface ExemplarResult {
  /** The top-k documents, most divergent first. */
  top: ExemplarScore[];
  /** Documents scored (empty ones are skipped). */
  documents: number;
  /** Mean of the score over all scored documents. */
  meanScore: number;
  /** The ranking used. */
  rank: "increase" | "absolute";
}

/**
 * Compression-Identified Exemplars: the documents on which a compressed model's per-byte
 * log-likelihood departs most from the original's. Each document is scored by both models (same
 * windows); the score is the difference of per-byte log-likelihoods in bits,
 * `(ll_original − ll_compressed) / (bytes · ln 2)` = the compressed model's bits-per-byte increase.
 * `rank: "increase"` (default) returns the k largest increases; `"absolute"` the k largest |score|
 * (documents the compressed model got better on, too). Ties keep the input order.
 */
export async function compressionIdentifiedExemplars(
  original: LanguageModelScorer,
  compressed: LanguageModelScorer,
  docs: Iterable<EvalDocument> | AsyncIterable<EvalDocument>,
  options: { k?: number; window?: number; rank?: "increase" | "absolute"; batchSize?: number } = {},
): Promise<ExemplarResult> {
  const k = options.k ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new TersorError("E_RANGE", `k must be an integer ≥ 1, got ${k}`);
  const rank = options.rank ?? "increase";
  if (rank !== "increase" && rank !== "absolute") throw new TersorError("E_RANGE", `rank must be "increase" or "absolute", got "${String(rank)}"`);
  const window = options.window ?? Math.min(original.maxLength, compressed.maxLength, 512);
  if (!Number.isInteger(window) || window < 2 || window > Math.min(original.maxLength, compressed.maxLength)) {
    throw new TersorError("E_RANGE", `window must be an integer in [2, ${Math.min(original.maxLength, compressed.maxLength)}], got ${window}`);
  }
  const scores: ExemplarScore[] = [];
  let index = -1;
  for await (const d of docs) {
    index++;
    const bytes = countBytes(d.text);
    if (bytes === 0) continue;
    const a = await documentLogLikelihood(original, d.text, window, options.batchSize);
    const b = await documentLogLikelihood(compressed, d.text, window, options.batchSize);
    if (a.tokens === 0 || b.tokens === 0) continue;
    const denom = bytes * Math.LN2;
    const e: ExemplarScore = {
      index,
      bytes,
      bpbOriginal: -a.loglikelihood / denom,
      bpbCompressed: -b.loglikelihood / denom,
      score: (a.loglikelihood - b.loglikelihood) / denom,
      preview: [...d.text].slice(0, 160).join(""),
    };
    if (d.domain !== undefined) e.domain = d.domain;
    scores.push(e);
  }
  if (scores.length === 0) throw new TersorError("E_RANGE", "no document could be scored (all were empty)");
  const key = (e: ExemplarScore) => (rank === "increase" ? e.score : Math.abs(e.score));
  const sorted = [...scores].sort((p, q) => key(q) - key(p) || p.index - q.index);
  return { top: sorted.slice(0, k), documents: scores.length, meanScore: scores.reduce((s, e) => s + e.score, 0) / scores.length, rank };
}
