/**
 * Plug-in (maximum-likelihood) entropy and mutual information of discrete data, with the Miller–Madow
 * bias correction, and mutual information of continuous layer activations through adaptive
 * (equal-mass) binning. Pure TypeScript; Promise-returning like every estimator here.
 *
 * With N observations, counts c_s of the m̂ symbols seen:
 * - plug-in:      Ĥ = −Σ_s (c_s/N) ln(c_s/N);
 * - Miller–Madow: Ĥ_MM = Ĥ + (m̂ − 1)/(2N) (Miller 1955): the plug-in is biased low by about
 *   (m − 1)/(2N); the correction removes that first-order term;
 * - MI:           Î(X;Y) = Ĥ(X) + Ĥ(Y) − Ĥ(X,Y), each term corrected or not (the Miller–Madow MI adds
 *   (m̂_x + m̂_y − m̂_xy − 1)/(2N) to the plug-in MI).
 * Nats by default (`base: 2` for bits). Intervals: percentile bootstrap by default (see ResampleOptions).
 * @module
 */
import { TersorError } from "@tersor/core";
import { z } from "zod";

import { type InformationEstimate, ResampleOptionsSchema, makeEstimate, resampleInterval } from "./bootstrap.js";
import {
  BaseSchema,
  type Codes,
  type DiscreteSamples,
  type Samples,
  assertFinite,
  parseOptions,
  takeCodes,
  toCodes,
  toMatrix,
} from "./input.js";

/** Options of {@link discreteEntropy} and {@link discreteMutualInformation}. */
export const DiscreteOptionsSchema = ResampleOptionsSchema.extend({
  /** "none" (plug-in, default) or "miller-madow". */
  correction: z.enum(["none", "miller-madow"]).optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
}).strict();
export type DiscreteOptions = z.input<typeof DiscreteOptionsSchema>;

/** Entropy in nats of dense codes (plug-in, optionally Miller–Madow). */
function entropyOfCodes(c: Codes, mm: boolean): number {
  const n = c.codes.length;
  const counts = new Float64Array(c.classes);
  for (const v of c.codes) counts[v]! += 1;
  let h = 0;
  let seen = 0;
  for (const cnt of counts) {
    if (cnt > 0) {
      seen++;
      h -= (cnt / n) * Math.log(cnt / n);
    }
  }
  return mm ? h + (seen - 1) / (2 * n) : h;
}

/** Codes of the pairs (a_i, b_i). */
function jointCodes(a: Codes, b: Codes): Codes {
  const map = new Map<number, number>();
  const codes = new Uint32Array(a.codes.length);
  for (let i = 0; i < codes.length; i++) {
    const key = a.codes[i]! * b.classes + b.codes[i]!;
    let c = map.get(key);
    if (c === undefined) {
      c = map.size;
      map.set(key, c);
    }
    codes[i] = c;
  }
  return { codes, classes: map.size };
}

function miOfCodes(a: Codes, b: Codes, mm: boolean): { mi: number; hx: number; hy: number; hxy: number } {
  const hx = entropyOfCodes(a, mm);
  const hy = entropyOfCodes(b, mm);
  const hxy = entropyOfCodes(jointCodes(a, b), mm);
  return { mi: hx + hy - hxy, hx, hy, hxy };
}

function codesOf(x: DiscreteSamples, what: string): Codes {
  const c = toCodes(x, what);
  if (c.codes.length === 0) throw new TersorError("E_RANGE", `${what} is empty: entropy needs at least one observation`);
  return c;
}

/**
 * Entropy of discrete observations: plug-in Ĥ = −Σ_s p̂_s ln p̂_s, or with `correction: "miller-madow"`
 * Ĥ + (m̂ − 1)/(2N). Nats by default.
 */
export async function discreteEntropy(x: DiscreteSamples, opts: DiscreteOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(DiscreteOptionsSchema, opts, "discreteEntropy");
  const mm = o.correction === "miller-madow";
  const c = codesOf(x, "x");
  const value = entropyOfCodes(c, mm);
  const ci = await resampleInterval([c.codes.length], value, async ([idx]) => entropyOfCodes(takeCodes(c, idx!), mm), o, {
    method: "bootstrap",
    minSize: 1,
  });
  return makeEstimate({ estimator: mm ? "miller-madow" : "plug-in", nats: value, n: c.codes.length, base: o.base ?? Math.E, ci });
}

/**
 * Mutual information of paired discrete observations: Î = Ĥ(X) + Ĥ(Y) − Ĥ(X, Y), each plug-in or
 * Miller–Madow corrected. `details` holds the three entropies. Nats by default.
 */
export async function discreteMutualInformation(
  x: DiscreteSamples,
  y: DiscreteSamples,
  opts: DiscreteOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(DiscreteOptionsSchema, opts, "discreteMutualInformation");
  const mm = o.correction === "miller-madow";
  const a = codesOf(x, "x");
  const b = codesOf(y, "y");
  if (a.codes.length !== b.codes.length) {
    throw new TersorError("E_SHAPE", `x has ${a.codes.length} observations but y has ${b.codes.length}: paired samples need the same count`);
  }
  const r = miOfCodes(a, b, mm);
  const ci = await resampleInterval(
    [a.codes.length],
    r.mi,
    async ([idx]) => miOfCodes(takeCodes(a, idx!), takeCodes(b, idx!), mm).mi,
    o,
    { method: "bootstrap", minSize: 1 },
  );
  return makeEstimate({ estimator: mm ? "miller-madow" : "plug-in", nats: r.mi, n: a.codes.length, base: o.base ?? Math.E, ci, details: {
    entropyX: r.hx,
    entropyY: r.hy,
    jointEntropy: r.hxy,
  } });
}

/** Options of {@link binnedMutualInformation}. */
export const BinnedOptionsSchema = DiscreteOptionsSchema.extend({
  /** Bins per unit (default 30). */
  bins: z.number().int().min(2).max(1_000_000).optional(),
  /**
   * "pooled" (default): one set of bin edges from all of the layer's activation values (Chelombiev,
   * Houghton & O'Donnell 2019, "Adaptive estimators show information compression in deep neural
   * networks", ICLR); "per-unit": edges from each unit's own values.
   */
  binning: z.enum(["pooled", "per-unit"]).optional(),
}).strict();
export type BinnedOptions = z.input<typeof BinnedOptionsSchema>;

/** Equal-mass bin edges: the values at ranks ⌊i·L/B⌋, i = 1..B−1, of the sorted values. */
function equalMassEdges(sorted: Float64Array, bins: number): Float64Array {
  const edges = new Float64Array(bins - 1);
  for (let i = 1; i < bins; i++) edges[i - 1] = sorted[Math.min(sorted.length - 1, Math.floor((i * sorted.length) / bins))]!;
  return edges;
}

/** The bin of v: the number of edges ≤ v (so a value equal to an edge goes to the upper bin). */
function binOf(edges: Float64Array, v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Mutual information between a layer's activations T (n × d, continuous) and discrete labels Y through
 * adaptive equal-mass binning: each unit's value is replaced by its bin (B bins whose edges are quantiles,
 * so every bin holds about the same number of values; "pooled" edges come from all n·d values of the
 * layer, "per-unit" edges from each unit's n values), the layer's pattern of bins is one discrete symbol,
 * and Î(T; Y) = Ĥ(T) + Ĥ(Y) − Ĥ(T, Y) by the plug-in or Miller–Madow estimator. `details.entropy` is
 * Ĥ(T), which equals I(X; T) for a deterministic network whose n inputs are distinct (the information-
 * plane coordinate of Shwartz-Ziv & Tishby 2017). Bin edges are recomputed on every resample. Nats by
 * default.
 */
export async function binnedMutualInformation(
  activations: Samples,
  labels: DiscreteSamples,
  opts: BinnedOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(BinnedOptionsSchema, opts, "binnedMutualInformation");
  const mm = o.correction === "miller-madow";
  const bins = o.bins ?? 30;
  const pooled = (o.binning ?? "pooled") === "pooled";
  const t = toMatrix(activations, "activations");
  assertFinite(t, "activations");
  const y = codesOf(labels, "labels");
  if (t.n !== y.codes.length) {
    throw new TersorError("E_SHAPE", `activations have ${t.n} rows but labels has ${y.codes.length} entries: one label per row is needed`);
  }
  if (t.n === 0) throw new TersorError("E_RANGE", "no activations");
  const layerCodes = (rows: Uint32Array | null): Codes => {
    const n = rows ? rows.length : t.n;
    const row = (r: number) => (rows ? rows[r]! : r);
    const edgesFor = (col: number | null): Float64Array => {
      const vals = new Float64Array(col === null ? n * t.d : n);
      for (let r = 0; r < n; r++) {
        const base = row(r) * t.d;
        if (col === null) vals.set(t.data.subarray(base, base + t.d), r * t.d);
        else vals[r] = t.data[base + col]!;
      }
      return equalMassEdges(vals.sort(), bins);
    };
    const shared = pooled ? edgesFor(null) : null;
    const perUnit = pooled ? [] : Array.from({ length: t.d }, (_, c) => edgesFor(c));
    const map = new Map<string, number>();
    const codes = new Uint32Array(n);
    const pattern = new Array<number>(t.d);
    for (let r = 0; r < n; r++) {
      const base = row(r) * t.d;
      for (let c = 0; c < t.d; c++) pattern[c] = binOf(shared ?? perUnit[c]!, t.data[base + c]!);
      const key = pattern.join(",");
      let code = map.get(key);
      if (code === undefined) {
        code = map.size;
        map.set(key, code);
      }
      codes[r] = code;
    }
    return { codes, classes: map.size };
  };
  const tc = layerCodes(null);
  const r = miOfCodes(tc, y, mm);
  const ci = await resampleInterval(
    [t.n],
    r.mi,
    async ([idx]) => miOfCodes(layerCodes(idx!), takeCodes(y, idx!), mm).mi,
    o,
    { method: "bootstrap", minSize: 1 },
  );
  return makeEstimate({ estimator: `binned-${mm ? "miller-madow" : "plug-in"}`, nats: r.mi, n: t.n, base: o.base ?? Math.E, ci, parameters: { bins }, details: {
    entropy: r.hx,
    labelEntropy: r.hy,
    jointEntropy: r.hxy,
    conditionalEntropy: r.hxy - r.hy,
  } });
}
