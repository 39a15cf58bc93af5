/** Next-token choice: greedy argmax, or temperature / top-k / top-p sampling with tersor's seeded Rng. */
import { type Rng, TersorError } from "@tersor/core";

export interface SamplingOptions {
  /** 0 = greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 or absent = all. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 or absent = all. */
  topP?: number;
}

/** Index of the largest logit (the first on ties; NaN never wins). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** Checks sampling options (E_RANGE naming the field). */
export function checkSampling(o: SamplingOptions): void {
  if (!Number.isFinite(o.temperature) || o.temperature < 0) throw new TersorError("E_RANGE", `temperature must be a finite number ≥ 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new TersorError("E_RANGE", `topK must be an integer ≥ 0, got ${o.topK}`);
  if (o.topP !== undefined && (!Number.isFinite(o.topP) || o.topP <= 0 || o.topP > 1)) throw new TersorError("E_RANGE", `topP must be in (0, 1], got ${o.topP}`);
}

/**
 * Picks the next token from one row of logits: argmax when temperature is 0; otherwise softmax of
 * logits / temperature, restricted to the top k, then to the top-p nucleus (Hugging Face's order:
 * temperature, top-k, top-p), renormalised and sampled with one `rng.nextF64()` draw.
 */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === 0) return argmax(logits);
  const V = logits.length;
  const k = o.topK && o.topK < V ? o.topK : V;
  const p = o.topP ?? 1;
  // Candidates in descending logit order (stable by id on ties).
  let idx: number[];
  if (k < V || p < 1) {
    idx = Array.from({ length: V }, (_, i) => i);
    idx.sort((a, b) => logits[b]! - logits[a]! || a - b);
    idx.length = Math.min(k, V);
  } else idx = Array.from({ length: V }, (_, i) => i);
  let max = -Infinity;
  for (const i of idx) if (logits[i]! > max) max = logits[i]!;
  const w = new Float64Array(idx.length);
  let z = 0;
  for (let j = 0; j < idx.length; j++) z += w[j] = Math.exp((logits[idx[j]!]! - max) / o.temperature);
  let n = idx.length;
  if (p < 1) {
    let cum = 0;
    for (let j = 0; j < idx.length; j++) {
      cum += w[j]! / z;
      if (cum >= p) {
        n = j + 1;
        break;
      }
    }
    z = 0;
    for (let j = 0; j < n; j++) z += w[j]!;
  }
  let u = rng.nextF64() * z;
  for (let j = 0; j < n; j++) {
    u -= w[j]!;
    if (u < 0) return idx[j]!;
  }
  return idx[n - 1]!;
}

/** Natural-log softmax of one row, in f64. */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i]! - max);
  const lz = max + Math.log(z);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lz;
  return out;
}
