/**
 * Selectors: random (seeded, shard-invariant), stratified, RS2 schedules, DSIR, ZIP-FIT, QUESTS-style
 * KDE entropy / farthest point, and the submodular ones (see setfunctions.ts). Each returns the
 * chosen positions (ascending, input order) and a score per document.
 */
import { Rng, TersorError } from "@tersor/core";
import { native } from "@tersor/native";

import { packTexts } from "./io.js";

const enc = new TextEncoder();

/** A uniform [0, 1) key per (id, seed) from xxHash64: the same in every shard and process. */
export function idUniform(id: string, seed: number): number {
  const h = native().selectXxhash64(enc.encode(id), seed >>> 0);
  return (h[1]! * 2 ** 21 + (h[0]! >>> 11)) / 2 ** 53;
}

/** Indices of the k largest scores (ties: lower index), returned ascending. */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Seeded uniform random subset of size k: the k smallest id keys. */
export function selectRandom(ids: readonly string[], k: number, seed = 0): { indices: number[]; scores: Float64Array } {
  const scores = Float64Array.from(ids, (id) => 1 - idUniform(id, seed));
  return { indices: topK(scores, k), scores };
}

/**
 * Stratified by domain: each domain gets round(k · n_d / n) (largest remainders make the total k),
 * random (seeded) within the domain.
 */
export function selectStratified(ids: readonly string[], domains: readonly string[], k: number, seed = 0): { indices: number[]; quota: Record<string, number> } {
  const by = new Map<string, number[]>();
  domains.forEach((d, i) => (by.get(d) ?? by.set(d, []).get(d)!).push(i));
  const n = ids.length;
  const names = [...by.keys()].sort();
  const exact = names.map((d) => (k * by.get(d)!.length) / n);
  const quota = exact.map(Math.floor);
  let left = k - quota.reduce((a, b) => a + b, 0);
  const order = names.map((_, i) => i).sort((a, b) => exact[b]! - quota[b]! - (exact[a]! - quota[a]!) || a - b);
  for (const i of order) {
    if (left <= 0) break;
    quota[i]!++;
    left--;
  }
  const chosen: number[] = [];
  const q: Record<string, number> = {};
  names.forEach((d, di) => {
    q[d] = quota[di]!;
    const members = by.get(d)!;
    const keys = members.map((i) => idUniform(ids[i]!, seed));
    const ord = members.map((_, j) => j).sort((a, b) => keys[a]! - keys[b]! || a - b);
    for (let j = 0; j < quota[di]!; j++) chosen.push(members[ord[j]!]!);
  });
  return { indices: chosen.sort((a, b) => a - b), quota: q };
}

/**
 * RS2 (Okanovic et al. 2023, "Repeated Random Sampling for Minimizing the Time-to-Accuracy of
 * Learning"): a fresh random subset per epoch, without replacement across epochs until the data is
 * exhausted (then a new permutation). Returns the index schedule, one array per epoch.
 */
export function rs2Schedule(n: number, k: number, epochs: number, seed = 0): number[][] {
  if (k > n) throw new TersorError("E_RANGE", `budget ${k} is larger than the corpus (${n} documents)`);
  const rng = new Rng(seed);
  let perm: number[] = [];
  let at = 0;
  const shuffle = () => {
    perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.nextF64() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    at = 0;
  };
  shuffle();
  const out: number[][] = [];
  for (let e = 0; e < epochs; e++) {
    if (at + k > n) shuffle();
    out.push(perm.slice(at, at + k));
    at += k;
  }
  return out;
}

// ---- DSIR ---------------------------------------------------------------------------------------

export interface DsirModel {
  numBuckets: number;
  ngrams: number;
  rawProbs: Float64Array;
  targetProbs: Float64Array;
  /** log(p_target + 1e-8) − log(p_raw + 1e-8), as the reference implementation. */
  logDiff: Float64Array;
}

async function counts(texts: readonly string[], numBuckets: number, ngrams: number): Promise<Float64Array> {
  const { bytes, offsets } = packTexts(texts);
  return native().selectDsirCounts(bytes, offsets, numBuckets, ngrams);
}

/** Fits DSIR's bag-of-hashed-n-grams models of the raw and target data (Xie et al. 2023). */
export async function fitDsir(raw: readonly string[], target: readonly string[], numBuckets = 10000, ngrams = 2): Promise<DsirModel> {
  if (target.length === 0) throw new TersorError("E_RANGE", "the DSIR target is empty");
  return dsirModelFromCounts(await counts(raw, numBuckets, ngrams), await counts(target, numBuckets, ngrams), ngrams);
}

/** Summed hashed n-gram counts of texts (DSIR's featuriser), `numBuckets` values. */
export async function dsirCounts(texts: readonly string[], numBuckets = 10000, ngrams = 2): Promise<Float64Array> {
  return counts(texts, numBuckets, ngrams);
}

/** The DSIR model from summed raw and target feature counts (counts of shards add up exactly). */
export function dsirModelFromCounts(r: Float64Array, t: Float64Array, ngrams = 2): DsirModel {
  const numBuckets = r.length;
  if (t.length !== numBuckets) throw new TersorError("E_SHAPE", `raw and target counts have ${r.length} and ${t.length} buckets`);
  const norm = (c: Float64Array, what: string) => {
    const s = c.reduce((a, b) => a + b, 0);
    if (s === 0) throw new TersorError("E_RANGE", `the ${what} data has no tokens`);
    return c.map((v) => v / s);
  };
  const rawProbs = norm(r, "raw");
  const targetProbs = norm(t, "target");
  const logDiff = targetProbs.map((p, k) => Math.log(p + 1e-8) - Math.log(rawProbs[k]! + 1e-8));
  return { numBuckets, ngrams, rawProbs, targetProbs, logDiff };
}

export async function dsirLogWeights(model: DsirModel, texts: readonly string[]): Promise<Float64Array> {
  const { bytes, offsets } = packTexts(texts);
  return native().selectDsirLogWeights(bytes, offsets, model.numBuckets, model.ngrams, model.logDiff);
}

/**
 * Gumbel top-k: k samples without replacement with probabilities ∝ exp(logWeights) (Kool et al. 2019,
 * "Stochastic Beams and Where to Find Them": the top k of log w_i + G_i, G_i ~ Gumbel(0, 1)).
 * With `ids`, the uniform behind G_i is a hash of (seed, id), so every shard draws the same noise
 * for a document and merged shards select as one process; without, a seeded stream over positions.
 */
export function gumbelTopK(logWeights: ArrayLike<number>, k: number, seed = 0, ids?: readonly string[]): number[] {
  if (ids && ids.length !== logWeights.length) throw new TersorError("E_SHAPE", `${ids.length} ids for ${logWeights.length} weights`);
  const rng = new Rng(seed);
  const keys = Float64Array.from({ length: logWeights.length }, (_, i) => {
    let u = ids ? idUniform("gumbel:" + ids[i]!, seed) : rng.nextF64();
    if (ids && u === 0) u = Number.MIN_VALUE;
    while (u === 0) u = rng.nextF64();
    return logWeights[i]! - Math.log(-Math.log(u));
  });
  return topK(keys, k);
}

// ---- ZIP-FIT ------------------------------------------------------------------------------------

/** ZIP-FIT alignment = 1 − mean NCD to the target examples (gzip at `level`, default 9 as Python's gzip). */
export async function zipfitScores(texts: readonly string[], targets: readonly string[], level = 9): Promise<Float64Array> {
  if (targets.length === 0) throw new TersorError("E_RANGE", "the ZIP-FIT target is empty");
  const d = packTexts(texts);
  const t = packTexts(targets);
  const ncd = await native().selectNcdMeanToTargets(d.bytes, d.offsets, t.bytes, t.offsets, level);
  return ncd.map((v) => 1 - v);
}

// ---- vectors ------------------------------------------------------------------------------------

/** Row-major vectors. */
export interface Vectors {
  data: Float64Array;
  n: number;
  d: number;
}

/** Hashed n-gram features (DSIR tokens, `dim` buckets), L2-normalised per document. */
export function hashedFeatures(texts: readonly string[], dim = 256, ngrams = 2): Vectors {
  const data = new Float64Array(texts.length * dim);
  texts.forEach((t, i) => {
    const f = native().selectDsirFeatures(t, dim, ngrams);
    for (const b of f) data[i * dim + b]! += 1;
    let s = 0;
    for (let k = 0; k < dim; k++) s += data[i * dim + k]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < dim; k++) data[i * dim + k]! *= inv;
  });
  return { data, n: texts.length, d: dim };
}

export function sqDist(v: Vectors, i: number, j: number, w: Vectors = v): number {
  let s = 0;
  for (let k = 0; k < v.d; k++) {
    const t = v.data[i * v.d + k]! - w.data[j * w.d + k]!;
    s += t * t;
  }
  return s;
}

/**
 * QUESTS kernel-density entropy (Schwalbe-Koda et al. 2024): H = −(1/N) Σ_i log((1/N) Σ_j K(x_i, x_j)),
 * Gaussian kernel of bandwidth h. 0 for N identical points; log N for far-apart points.
 */
export async function kdeEntropy(v: Vectors, h: number): Promise<number> {
  if (!(h > 0)) throw new TersorError("E_RANGE", `bandwidth must be > 0, got ${h}`);
  if (v.n === 0) throw new TersorError("E_RANGE", "KDE entropy of an empty set");
  return native().kdeEntropy(v.data, v.n, v.d, h);
}

/** Mean distance of each point to its nearest other point (a simple diversity measure). */
export function meanNearestNeighbourDistance(v: Vectors): number {
  if (v.n < 2) return 0;
  let s = 0;
  for (let i = 0; i < v.n; i++) {
    let best = Infinity;
    for (let j = 0; j < v.n; j++) if (j !== i) best = Math.min(best, sqDist(v, i, j));
    s += Math.sqrt(best);
  }
  return s / v.n;
}

/** Farthest-point (greedy k-center, Gonzalez 1985) selection starting from the lowest index. */
export function farthestPoint(v: Vectors, k: number): number[] {
  const chosen = [0];
  const dmin = Float64Array.from({ length: v.n }, (_, i) => sqDist(v, i, 0));
  while (chosen.length < k) {
    let best = -1;
    for (let i = 0; i < v.n; i++) if (best < 0 || dmin[i]! > dmin[best]!) best = i;
    chosen.push(best);
    for (let i = 0; i < v.n; i++) dmin[i] = Math.min(dmin[i]!, sqDist(v, i, best));
  }
  return chosen;
}

/**
 * QUESTS minimum-set-cover style selection: an item's environment is covered by the already kept
 * items; repeatedly keep the item whose kernel density under the kept set is least (most novel),
 * i.e. argmin_i Σ_{j∈S} K(x_i, x_j), ties to the lower index.
 */
export function questsMsc(v: Vectors, k: number, h: number): number[] {
  const dens = new Float64Array(v.n);
  const taken = new Uint8Array(v.n);
  const out: number[] = [];
  for (let t = 0; t < k; t++) {
    let best = -1;
    for (let i = 0; i < v.n; i++) if (!taken[i] && (best < 0 || dens[i]! < dens[best]!)) best = i;
    taken[best] = 1;
    out.push(best);
    for (let i = 0; i < v.n; i++) dens[i]! += Math.exp(-sqDist(v, i, best) / (2 * h * h));
  }
  return out;
}

// ---- GIO ----------------------------------------------------------------------------------------

/**
 * GIO (Everaert & Potts 2023, "GIO: Gradient Information Optimization for Training Dataset
 * Selection"): greedily add the candidate that most lowers KL(target ‖ selected), estimated with the
 * k-NN divergence estimator of Wang, Kulkarni & Verdú (2009) at k = 1:
 *   D̂ = (d/n) Σ_i log(ν(t_i) / ρ(t_i)) + log(m / (n − 1)),
 * ν the distance from target point t_i to its nearest selected point, ρ to its nearest other target
 * point (n targets, m selected). Distances are floored at 1e-12 so duplicates stay finite.
 * Returns the picked candidates in order and the KL estimate after each pick.
 */
export function gioSelect(candidates: Vectors, target: Vectors, k: number): { order: number[]; kl: number[] } {
  if (target.n < 2) throw new TersorError("E_RANGE", "GIO needs at least two target examples");
  if (candidates.d !== target.d) throw new TersorError("E_SHAPE", "candidate and target vectors must have the same dimension");
  if (k > candidates.n) throw new TersorError("E_RANGE", `budget ${k} is larger than the corpus (${candidates.n} documents)`);
  const n = target.n;
  const d = target.d;
  const FLOOR = 1e-12;
  const logRho = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    for (let j = 0; j < n; j++) if (j !== i) best = Math.min(best, sqDist(target, i, j));
    logRho[i] = Math.log(Math.max(Math.sqrt(best), FLOOR));
  }
  // dist[c][i]: candidate c to target i (log distance), computed once.
  const logDist = new Float64Array(candidates.n * n);
  for (let c = 0; c < candidates.n; c++)
    for (let i = 0; i < n; i++) logDist[c * n + i] = Math.log(Math.max(Math.sqrt(sqDist(candidates, c, i, target)), FLOOR));
  const logNu = new Float64Array(n).fill(Infinity);
  const taken = new Uint8Array(candidates.n);
  const order: number[] = [];
  const kl: number[] = [];
  for (let step = 0; step < k; step++) {
    let best = -1;
    let bestSum = Infinity;
    for (let c = 0; c < candidates.n; c++) {
      if (taken[c]) continue;
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.min(logNu[i]!, logDist[c * n + i]!);
      if (s < bestSum) {
        bestSum = s;
        best = c;
      }
    }
    taken[best] = 1;
    order.push(best);
    for (let i = 0; i < n; i++) logNu[i] = Math.min(logNu[i]!, logDist[best * n + i]!);
    let s = 0;
    for (let i = 0; i < n; i++) s += logNu[i]! - logRho[i]!;
    kl.push((d / n) * s + Math.log(order.length / (n - 1)));
  }
  return { order, kl };
}

// ---- RDS+ ---------------------------------------------------------------------------------------

/**
 * RDS+ (Ivison et al. 2025, "Large-Scale Data Selection for Instruction Tuning"): score each
 * candidate by its cosine similarity to each target task's examples (max over the task's examples),
 * then pick round-robin across tasks, each task taking its best not-yet-picked candidate. Vectors
 * are mean-pooled embeddings, hashed n-gram features or user vectors.
 */
export function rdsPlus(candidates: Vectors, target: Vectors, targetTasks: readonly string[], k: number): number[] {
  if (target.n === 0) throw new TersorError("E_RANGE", "the RDS+ target is empty");
  if (candidates.d !== target.d) throw new TersorError("E_SHAPE", "candidate and target vectors must have the same dimension");
  if (k > candidates.n) throw new TersorError("E_RANGE", `budget ${k} is larger than the corpus (${candidates.n} documents)`);
  const norm = (v: Vectors, i: number) => {
    let s = 0;
    for (let q = 0; q < v.d; q++) s += v.data[i * v.d + q]! ** 2;
    return Math.sqrt(s) || 1;
  };
  const tasks = [...new Set(targetTasks)].sort();
  const rankings = tasks.map((task) => {
    const members = targetTasks.flatMap((t, i) => (t === task ? [i] : []));
    const score = new Float64Array(candidates.n);
    for (let c = 0; c < candidates.n; c++) {
      const nc = norm(candidates, c);
      let best = -Infinity;
      for (const t of members) {
        let dot = 0;
        for (let q = 0; q < candidates.d; q++) dot += candidates.data[c * candidates.d + q]! * target.data[t * target.d + q]!;
        best = Math.max(best, dot / (nc * norm(target, t)));
      }
      score[c] = best;
    }
    return Array.from({ length: candidates.n }, (_, c) => c).sort((a, b) => score[b]! - score[a]! || a - b);
  });
  const taken = new Uint8Array(candidates.n);
  const pos = new Array<number>(tasks.length).fill(0);
  const out: number[] = [];
  while (out.length < k) {
    for (let t = 0; t < tasks.length && out.length < k; t++) {
      const r = rankings[t]!;
      while (pos[t]! < r.length && taken[r[pos[t]!]!]) pos[t]!++;
      if (pos[t]! < r.length) {
        taken[r[pos[t]!]!] = 1;
        out.push(r[pos[t]!]!);
      }
    }
  }
  return out;
}

// ---- NovelSum / NovelSelect -----------------------------------------------------------------------

function cosineDistance(v: Vectors, i: number, j: number): number {
  let dot = 0;
  let a = 0;
  let b = 0;
  for (let q = 0; q < v.d; q++) {
    const x = v.data[i * v.d + q]!;
    const y = v.data[j * v.d + q]!;
    dot += x * y;
    a += x * x;
    b += y * y;
  }
  return 1 - dot / (Math.sqrt(a * b) || 1);
}

/**
 * NovelSum's density factor σ(x) = 1 / (mean cosine distance from x to its `k` nearest neighbours in
 * the pool) (Yang et al. 2025, "Measuring Data Diversity for Instruction Tuning").
 */
function densityFactors(v: Vectors, k: number): Float64Array {
  const s = new Float64Array(v.n);
  for (let i = 0; i < v.n; i++) {
    const d: number[] = [];
    for (let j = 0; j < v.n; j++) if (j !== i) d.push(cosineDistance(v, i, j));
    d.sort((a, b) => a - b);
    const m = d.slice(0, Math.max(1, Math.min(k, d.length))).reduce((a, b) => a + b, 0) / Math.max(1, Math.min(k, d.length));
    s[i] = 1 / Math.max(m, 1e-9);
  }
  return s;
}

/** Novelty of x against S: Σ_{s∈S} (1/rank_x(s))^α · σ(s)^β · d(x, s), rank by distance from x (nearest = 1). */
function novelty(v: Vectors, x: number, S: readonly number[], sigma: Float64Array, alpha: number, beta: number): number {
  const ds = S.map((s) => ({ s, d: cosineDistance(v, x, s) })).sort((a, b) => a.d - b.d || a.s - b.s);
  let t = 0;
  ds.forEach(({ s, d }, r) => (t += Math.pow(1 / (r + 1), alpha) * Math.pow(sigma[s]!, beta) * d));
  return t;
}

/** NovelSum of a set: Σ_{x∈S} novelty(x, S \ {x}) (α = 1, β = 0.5, k = 10 by default). */
export function novelSum(v: Vectors, subset: readonly number[], alpha = 1, beta = 0.5, k = 10): number {
  const sigma = densityFactors(v, k);
  return subset.reduce((acc, x) => acc + novelty(v, x, subset.filter((y) => y !== x), sigma, alpha, beta), 0);
}

/** NovelSelect: start from the densest point, then greedily add the most novel point against the selection. */
export function novelSelect(v: Vectors, k: number, alpha = 1, beta = 0.5, knn = 10): number[] {
  if (k > v.n) throw new TersorError("E_RANGE", `budget ${k} is larger than the corpus (${v.n} documents)`);
  const sigma = densityFactors(v, knn);
  let first = 0;
  for (let i = 1; i < v.n; i++) if (sigma[i]! > sigma[first]!) first = i;
  const S = [first];
  const taken = new Uint8Array(v.n);
  taken[first] = 1;
  while (S.length < k) {
    let best = -1;
    let bv = -Infinity;
    for (let i = 0; i < v.n; i++) {
      if (taken[i]) continue;
      const nv = novelty(v, i, S, sigma, alpha, beta);
      if (nv > bv) {
        bv = nv;
        best = i;
      }
    }
    taken[best] = 1;
    S.push(best);
  }
  return S;
}
