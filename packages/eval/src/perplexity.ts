import { TersorError, progress as startProgress } from "@tersor/core";
import { z } from "zod";

import { type LikelihoodTotals, type PerplexityMetrics, addDocument, emptyTotals, perplexityMetrics } from "./metrics.js";
import { rollingDisjointWindows, stridedWindows } from "./windows.js";

/**
 * What perplexity evaluation needs from a language model; `@tersor/model` provides it. Kept as an
 * interface so any scorer (a remote model, a test double with known probabilities) can be evaluated.
 */
export interface LanguageModelScorer {
  /** Token ids of a text, without special tokens. */
  encode(text: string): number[] | Promise<number[]>;
  /** The token that starts a sequence (lm-eval's prefix token: BOS, or EOT for GPT-2). */
  readonly prefixToken: number;
  /** The longest input the model takes. */
  readonly maxLength: number;
  /**
   * For each window, the natural-log probabilities of `continuation[i]` given
   * `context ++ continuation[0..i)`, summed over i. Windows are independent.
   */
  scoreWindows(windows: { context: number[]; continuation: number[] }[]): Promise<number[]>;
}

/** A document to evaluate; `domain` groups the per-domain breakdown. */
export interface EvalDocument {
  text: string;
  domain?: string;
}

export const PerplexityOptionsSchema = z
  .object({
    /** Model inputs per window (lm-eval's max_length); default: the scorer's maxLength. */
    window: z.number().int().min(2).optional(),
    /**
     * Strided token-level evaluation: windows advance by `stride` tokens. When absent, documents
     * are scored with lm-eval's rolling disjoint windows (context_len = 1).
     */
    stride: z.number().int().min(1).optional(),
    /** Windows scored per call of `scoreWindows`. */
    batchSize: z.number().int().min(1).default(8),
    /** Show progress (see @tersor/core's progress). */
    progress: z.enum(["bar", "json", "silent"]).optional(),
  })
  .strict();

export type PerplexityOptions = z.input<typeof PerplexityOptionsSchema>;

export interface PerplexityResult extends PerplexityMetrics {
  totals: LikelihoodTotals;
  /** The same metrics per document domain. */
  domains: Record<string, PerplexityMetrics & { totals: LikelihoodTotals }>;
  window: number;
  stride: number | null;
}

/**
 * Perplexity, bits per byte and bits per character of a model on documents, with
 * lm-evaluation-harness's definitions (`loglikelihood_rolling` per document, then
 * `word_perplexity`, `byte_perplexity`, `bits_per_byte`), optionally with strided windows instead.
 */
export async function evaluatePerplexity(
  scorer: LanguageModelScorer,
  docs: Iterable<EvalDocument> | AsyncIterable<EvalDocument>,
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const parsed = PerplexityOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `evaluatePerplexity options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  const window = o.window ?? scorer.maxLength;
  if (window > scorer.maxLength) throw new TersorError("E_RANGE", `window ${window} exceeds the model's maximum length ${scorer.maxLength}`);
  if (o.stride !== undefined && o.stride > window) throw new TersorError("E_RANGE", `stride ${o.stride} exceeds the window ${window}`);
  const total = emptyTotals();
  const byDomain = new Map<string, LikelihoodTotals>();
  const bar = startProgress({ label: "perplexity", unit: "docs", ...(o.progress ? { mode: o.progress } : {}) });
  try {
    for await (const doc of docs) {
      const ids = await scorer.encode(doc.text);
      let windows: { context: number[]; continuation: number[] }[];
      if (o.stride === undefined) {
        windows = rollingDisjointWindows(ids, scorer.prefixToken, window, 1);
      } else {
        const full = [scorer.prefixToken, ...ids];
        windows = stridedWindows(full.length, window, o.stride).map((w) => ({
          context: full.slice(w.begin, w.scoreFrom),
          continuation: full.slice(w.scoreFrom, w.end),
        }));
      }
      let ll = 0;
      for (let i = 0; i < windows.length; i += o.batchSize) {
        const scores = await scorer.scoreWindows(windows.slice(i, i + o.batchSize));
        for (const s of scores) ll += s;
      }
      addDocument(total, doc.text, ll, ids.length);
      const domain = doc.domain ?? "all";
      addDocument(byDomain.get(domain) ?? byDomain.set(domain, emptyTotals()).get(domain)!, doc.text, ll, ids.length);
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  const domains: PerplexityResult["domains"] = {};
  for (const [d, t] of [...byDomain].sort(([a], [b]) => a.localeCompare(b))) domains[d] = { ...perplexityMetrics(t), totals: t };
  return { ...perplexityMetrics(total), totals: total, domains, window, stride: o.stride ?? null };
}
