import { TersorError } from "@tersor/core";

/** A scoring window: `context` tokens are conditioned on, `continuation` tokens are scored. */
export interface TokenWindow {
  context: number[];
  continuation: number[];
}

function checkWindowArgs(maxSeqLen: number, contextLen: number): void {
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 1) throw new TersorError("E_RANGE", `maxSeqLen must be a positive integer, got ${maxSeqLen}`);
  if (!Number.isInteger(contextLen) || contextLen < 1 || contextLen > maxSeqLen) {
    throw new TersorError("E_RANGE", `contextLen must be an integer in [1, maxSeqLen = ${maxSeqLen}], got ${contextLen}`);
  }
}

/**
 * lm-evaluation-harness's `get_rolling_token_windows`: splits a token list into windows of at most
 * `maxSeqLen` model inputs so that every token is predicted exactly once. The first window is
 * `[prefixToken, ...tokens[0 .. n-1)]` predicting `tokens[0 .. n)`; each later window predicts up to
 * `maxSeqLen - contextLen + 1` new tokens, conditioned on the tokens before them.
 */
export function* rollingTokenWindows(tokens: readonly number[], prefixToken: number, maxSeqLen: number, contextLen: number): Generator<TokenWindow> {
  checkWindowArgs(maxSeqLen, contextLen);
  if (tokens.length === 0) return;
  const predLen = maxSeqLen - contextLen + 1;
  const firstLen = Math.min(maxSeqLen, tokens.length);
  yield { context: [prefixToken, ...tokens.slice(0, firstLen - 1)], continuation: tokens.slice(0, firstLen) };
  let predicted = firstLen;
  while (predicted < tokens.length) {
    const windowPredLen = Math.min(tokens.length - predicted, predLen);
    const windowEnd = predicted + windowPredLen;
    yield {
      context: tokens.slice(windowEnd - maxSeqLen - 1, windowEnd - 1),
      continuation: tokens.slice(windowEnd - windowPredLen, windowEnd),
    };
    predicted += windowPredLen;
  }
}

/**
 * lm-evaluation-harness's `make_disjoint_window`: drops from the context the tokens that the
 * continuation already supplies, so `context ++ continuation` is the exact model input and the
 * continuation is scored given everything before it.
 */
export function disjointWindow(w: TokenWindow): TokenWindow {
  return { context: w.context.slice(0, w.context.length - (w.continuation.length - 1)), continuation: w.continuation };
}

/** Rolling disjoint windows, as lm-evaluation-harness's `loglikelihood_rolling` scores a document. */
export function rollingDisjointWindows(tokens: readonly number[], prefixToken: number, maxSeqLen: number, contextLen = 1): TokenWindow[] {
  return [...rollingTokenWindows(tokens, prefixToken, maxSeqLen, contextLen)].map(disjointWindow);
}

/** One strided window: model input `tokens[begin, end)`, scoring the predictions of `tokens[scoreFrom, end)`. */
export interface StridedWindow {
  begin: number;
  end: number;
  scoreFrom: number;
}

/**
 * Strided sliding windows, the token-level perplexity that quantization papers report (and
 * Hugging Face's "Perplexity of fixed-length models" guide): windows of `maxLen` tokens advance by
 * `stride`; each scores only the tokens not scored by the previous window, so each token is scored
 * once with at least `maxLen - stride` tokens of context (except near the start). Token 0 is never
 * scored (it has no context); prepend a BOS token to score it.
 */
export function stridedWindows(n: number, maxLen: number, stride: number): StridedWindow[] {
  if (!Number.isInteger(maxLen) || maxLen < 2) throw new TersorError("E_RANGE", `window must be an integer ≥ 2, got ${maxLen}`);
  if (!Number.isInteger(stride) || stride < 1 || stride > maxLen) throw new TersorError("E_RANGE", `stride must be an integer in [1, window = ${maxLen}], got ${stride}`);
  const out: StridedWindow[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + maxLen, n);
    const scoreFrom = Math.max(prevEnd, begin + 1);
    if (scoreFrom < end) out.push({ begin, end, scoreFrom });
    prevEnd = end;
    if (end === n) break;
  }
  return out;
}
