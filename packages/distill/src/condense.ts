/**
 * Dataset condensation for text by selection in an embedding space (documents embedded by a model,
 * e.g. mean-pooled hidden states): a subset of `m` documents that stands for the corpus.
 *
 * - `kmeans`: representative selection as in DREAM (Liu et al. 2023, "DREAM: efficient dataset
 *   distillation by representative matching", ICCV): k-means (k-means++ seeding, Arthur &
 *   Vassilvitskii 2007; Lloyd iterations) with k = m clusters, and per cluster the document nearest
 *   its centre.
 * - `herding`: a coreset matching the corpus's embedding distribution — kernel herding (Chen,
 *   Welling & Smola 2010, "Super-samples from kernel herding"), which greedily picks the point that
 *   most reduces the maximum mean discrepancy between the subset and the corpus under an RBF
 *   kernel (the distribution-matching objective of Zhao & Bilen 2023, "Dataset condensation with
 *   distribution matching", in its selection form).
 * - `random`: a uniform subset of the same size, the baseline the literature finds hard to beat.
 *
 * Each is scored by MMD² to the whole corpus (biased V-statistic, the same RBF kernel, bandwidth by
 * the median heuristic).
 * @module
 */
import { Rng, TersorError } from "@tersor/core";

export type CondenseMethod = "kmeans" | "herding" | "random";

export interface Embeddings {
  /** `[n, d]` row-major. */
  data: Float32Array | Float64Array;
  n: number;
  d: number;
}

function check(e: Embeddings, m: number): void {
  if (!Number.isInteger(e.n) || !Number.isInteger(e.d) || e.n < 1 || e.d < 1 || e.data.length !== e.n * e.d) {
    throw new TersorError("E_SHAPE", `embeddings: ${e.data.length} values for n = ${e.n} × d = ${e.d}`);
  }
  for (let i = 0; i < e.data.length; i++) if (!Number.isFinite(e.data[i]!)) throw new TersorError("E_RANGE", `embeddings: value ${e.data[i]} at ${i} is not finite`);
  if (!Number.isInteger(m) || m < 1 || m > e.n) throw new TersorError("E_RANGE", `subset size must be an integer in [1, ${e.n}], got ${m}`);
}

function sqdist(e: Embeddings, i: number, j: number): number {
  let s = 0;
  const a = i * e.d;
  const b = j * e.d;
  for (let k = 0; k < e.d; k++) {
    const t = e.data[a + k]! - e.data[b + k]!;
    s += t * t;
  }
  return s;
}

/** RBF bandwidth by the median heuristic: γ = 1 / median squared distance (over at most 500 points). */
export function medianHeuristic(e: Embeddings): number {
  const step = Math.max(1, Math.floor(e.n / 500));
  const ds: number[] = [];
  for (let i = 0; i < e.n; i += step) for (let j = i + step; j < e.n; j += step) ds.push(sqdist(e, i, j));
  if (ds.length === 0) return 1;
  ds.sort((a, b) => a - b);
  const med = ds[Math.floor(ds.length / 2)]!;
  return med > 0 ? 1 / med : 1;
}

/** MMD² between the corpus and `subset` (biased V-statistic, RBF kernel exp(−γ‖x − y‖²)). */
export function mmd2(e: Embeddings, subset: readonly number[], gamma = medianHeuristic(e)): number {
  const k = (i: number, j: number) => Math.exp(-gamma * sqdist(e, i, j));
  let pp = 0;
  for (let i = 0; i < e.n; i++) for (let j = 0; j < e.n; j++) pp += k(i, j);
  let qq = 0;
  for (const i of subset) for (const j of subset) qq += k(i, j);
  let pq = 0;
  for (let i = 0; i < e.n; i++) for (const j of subset) pq += k(i, j);
  const n = e.n;
  const m = subset.length;
  return Math.max(0, pp / (n * n) + qq / (m * m) - (2 * pq) / (n * m));
}

/** k-means (k-means++ seeding, Lloyd) and the document nearest each centre (DREAM's representatives). */
export function kmeansRepresentatives(e: Embeddings, m: number, options: { seed?: number; iterations?: number } = {}): number[] {
  check(e, m);
  const rng = new Rng(options.seed ?? 0);
  const { n, d } = e;
  const centres = new Float64Array(m * d);
  const nearest = new Float64Array(n).fill(Infinity);
  let first = rng.nextBelow(n);
  const setCentre = (c: number, i: number) => {
    for (let k = 0; k < d; k++) centres[c * d + k] = e.data[i * d + k]!;
  };
  const cdist = (c: number, i: number) => {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const t = centres[c * d + k]! - e.data[i * d + k]!;
      s += t * t;
    }
    return s;
  };
  setCentre(0, first);
  for (let c = 1; c < m; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      nearest[i] = Math.min(nearest[i]!, cdist(c - 1, i));
      total += nearest[i]!;
    }
    let u = rng.nextF64() * total;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      u -= nearest[i]!;
      if (u < 0) {
        pick = i;
        break;
      }
    }
    if (total === 0) pick = (first = (first + 1) % n);
    setCentre(c, pick);
  }
  const assign = new Int32Array(n).fill(-1);
  for (let it = 0; it < (options.iterations ?? 50); it++) {
    let changed = false;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bd = Infinity;
      for (let c = 0; c < m; c++) {
        const dd = cdist(c, i);
        if (dd < bd) {
          bd = dd;
          best = c;
        }
      }
      if (assign[i] !== best) {
        assign[i] = best;
        changed = true;
      }
    }
    if (!changed) break;
    const counts = new Float64Array(m);
    const sums = new Float64Array(m * d);
    for (let i = 0; i < n; i++) {
      counts[assign[i]!]!++;
      for (let k = 0; k < d; k++) sums[assign[i]! * d + k]! += e.data[i * d + k]!;
    }
    for (let c = 0; c < m; c++) if (counts[c]! > 0) for (let k = 0; k < d; k++) centres[c * d + k] = sums[c * d + k]! / counts[c]!;
  }
  // Per cluster the nearest document; an empty cluster takes the nearest document not yet chosen.
  const chosen = new Set<number>();
  const out: number[] = [];
  for (let c = 0; c < m; c++) {
    let best = -1;
    let bd = Infinity;
    for (let pass = 0; pass < 2 && best < 0; pass++) {
      for (let i = 0; i < n; i++) {
        if (chosen.has(i) || (pass === 0 && assign[i] !== c)) continue;
        const dd = cdist(c, i);
        if (dd < bd) {
          bd = dd;
          best = i;
        }
      }
    }
    chosen.add(best);
    out.push(best);
  }
  return out;
}

/** Kernel herding: m documents greedily matching the corpus's kernel mean embedding (without replacement). */
export function herdingCoreset(e: Embeddings, m: number, options: { gamma?: number } = {}): number[] {
  check(e, m);
  const gamma = options.gamma ?? medianHeuristic(e);
  const n = e.n;
  const mu = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(-gamma * sqdist(e, i, j));
    mu[i] = s / n;
  }
  const acc = new Float64Array(n);
  const taken = new Uint8Array(n);
  const out: number[] = [];
  for (let t = 0; t < m; t++) {
    let best = -1;
    let bv = -Infinity;
    for (let i = 0; i < n; i++) {
      if (taken[i]) continue;
      const v = mu[i]! - acc[i]! / (t + 1);
      if (v > bv) {
        bv = v;
        best = i;
      }
    }
    taken[best] = 1;
    out.push(best);
    for (let i = 0; i < n; i++) acc[i]! += Math.exp(-gamma * sqdist(e, i, best));
  }
  return out;
}

/** A uniform random subset (seeded partial Fisher-Yates). */
export function randomSubset(n: number, m: number, seed = 0): number[] {
  if (!Number.isInteger(m) || m < 1 || m > n) throw new TersorError("E_RANGE", `subset size must be an integer in [1, ${n}], got ${m}`);
  const rng = new Rng(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + rng.nextBelow(n - i);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, m);
}

/** Selects with every method and scores each by MMD² to the corpus. */
export function condense(e: Embeddings, m: number, options: { seed?: number } = {}): Record<CondenseMethod, { indices: number[]; mmd2: number }> {
  check(e, m);
  const gamma = medianHeuristic(e);
  const km = kmeansRepresentatives(e, m, options.seed === undefined ? {} : { seed: options.seed });
  const hd = herdingCoreset(e, m, { gamma });
  const rd = randomSubset(e.n, m, options.seed ?? 0);
  return {
    kmeans: { indices: km, mmd2: mmd2(e, km, gamma) },
    herding: { indices: hd, mmd2: mmd2(e, hd, gamma) },
    random: { indices: rd, mmd2: mmd2(e, rd, gamma) },
  };
}
