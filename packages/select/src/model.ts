/**
 * Model-based features: mean-pooled last hidden states (embeddings for RDS+, NovelSelect, GIO, the
 * information selectors) and per-document perplexity (the perplexity filter), from any model
 * `@tersor/model` loads (a Hugging Face directory, a .gguf file, or a bundled name such as `ref-small`).
 */
import { TersorError } from "@tersor/core";
import { type Model, loadModel } from "@tersor/model";

import type { Vectors } from "./selectors.js";

/** The default embedding / scoring model: the bundled reference model. */
export const DEFAULT_SELECT_MODEL = "ref-small";

export async function openSelectModel(path: string = DEFAULT_SELECT_MODEL): Promise<Model> {
  return loadModel(path);
}

function tokens(model: Model, text: string, maxTokens: number): number[] {
  let ids = model.encode(text);
  if (ids.length === 0) ids = [model.prefixToken];
  return ids.slice(0, Math.min(maxTokens, model.maxLength));
}

/** Mean-pooled last hidden state (after the final norm) of each text, truncated to `maxTokens`. */
export async function embedTexts(model: Model, texts: readonly string[], maxTokens = 256, onDoc?: () => void): Promise<Vectors> {
  if (!(maxTokens >= 1)) throw new TersorError("E_RANGE", `maxTokens must be >= 1, got ${maxTokens}`);
  const d = model.config.hidden;
  const data = new Float64Array(texts.length * d);
  for (let i = 0; i < texts.length; i++) {
    const [e] = await model.hiddenStates(tokens(model, texts[i]!, maxTokens), { pool: "mean" });
    data.set(e!.data, i * d);
    onDoc?.();
  }
  return { data, n: texts.length, d };
}

/** Perplexity exp(−mean log p(token | prefix)) of each text's first `maxTokens` tokens (NaN when a text has one token). */
export async function perplexities(model: Model, texts: readonly string[], maxTokens = 256, onDoc?: () => void): Promise<Float64Array> {
  const out = new Float64Array(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const ids = [model.prefixToken, ...tokens(model, texts[i]!, maxTokens - 1)];
    const lp = await model.logprobs(ids);
    out[i] = lp.length ? Math.exp(-lp.reduce((a, b) => a + b, 0) / lp.length) : NaN;
    onDoc?.();
  }
  return out;
}
