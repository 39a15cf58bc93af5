/**
 * Calibration of probabilistic predictions: expected calibration error (uniform or equal-mass
 * bins), maximum calibration error, RMS calibration error, Brier score, negative log-likelihood,
 * reliability-diagram data and plot, and temperature scaling (Guo et al., "On Calibration of
 * Modern Neural Networks", ICML 2017).
 *
 * Predictions are either binary (one probability of class 1 per sample; labels 0/1) or multiclass
 * (`n × K` probabilities, rows summing to 1; labels in [0, K)). With `logits: true` they are logits
 * instead (sigmoid for binary, softmax for multiclass).
 *
 * What is binned:
 * - multiclass: the top-label confidence `max_k p_k` against whether the argmax is the label
 *   (Guo et al.'s reliability diagram);
 * - binary, `confidence: "positive"` (the default): the probability of class 1 against the fraction
 *   of samples of class 1 (scikit-learn's `calibration_curve`); `"top-label"`: `max(p, 1 − p)` against
 *   whether the thresholded prediction (class 1 when p ≥ 0.5) is right.
 *
 * Bins are half-open on the left, `(lo, hi]`, except the first, which also takes `lo` itself (so a
 * confidence of exactly 0 lands in bin 0 and exactly 1 in the last bin).
 * - uniform: `B` bins with edges `k / B`;
 * - equal-mass: edges at the order statistics of the confidences, so each bin holds about `n / B`
 *   samples: with the confidences sorted ascending, the upper edge of bin `b < B − 1` is the
 *   `⌈(b + 1) n / B⌉`-th smallest confidence, and the last bin ends at 1. Ties are never split
 *   across bins (a repeated edge leaves an empty bin).
 *
 * With `n_b` samples in bin b, `conf_b` their mean confidence and `acc_b` their mean accuracy:
 * ECE = Σ_b (n_b / n) |acc_b − conf_b|;  MCE = max over non-empty bins |acc_b − conf_b|;
 * RMSCE = √(Σ_b (n_b / n)(acc_b − conf_b)²)  (Hendrycks et al. 2019).
 * Brier score (Brier 1950): binary `mean (p − y)²`; multiclass `mean Σ_k (p_k − [y = k])²` (in [0, 2]).
 * NLL: mean −log p(label), probabilities clamped to [1e-15, 1 − 1e-15] as scikit-learn's `log_loss`.
 */
import { Rng, Tensor, TersorError } from "@tersor/core";

import type { VegaLiteSpec } from "./plot.js";

/** Probabilities or logits: 1-D (binary), rows (`number[][]`, multiclass) or a 1-D/2-D Tensor. */
export type PredictionInput = ArrayLike<number> | readonly ArrayLike<number>[] | Tensor;
/** Class labels: integers (binary 0/1), booleans, or an integer Tensor. */
export type LabelInput = ArrayLike<number> | readonly boolean[] | Tensor;

/** Predictions in one form: `k = 1` is binary (probability of class 1), `k ≥ 2` multiclass. */
export interface ProbabilityMatrix {
  n: number;
  k: number;
  /** Row-major n × k probabilities. */
  p: Float64Array;
}

export interface CalibrationOptions {
  /** Number of bins (default 15). */
  bins?: number;
  /** "uniform" (default) or "equal-mass". */
  binning?: "uniform" | "equal-mass";
  /** The predictions are logits (sigmoid / softmax is applied first). */
  logits?: boolean;
  /** Binary predictions: bin p(class 1) ("positive", default) or max(p, 1 − p) ("top-label"). */
  confidence?: "positive" | "top-label";
}

/** One bin of a reliability diagram. `confidence` and `accuracy` are NaN when `count` is 0. */
export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  /** Mean confidence of the samples in the bin. */
  confidence: number;
  /** Their mean accuracy (binary "positive": the fraction of class 1). */
  accuracy: number;
  /** |accuracy − confidence|. */
  gap: number;
}

export interface CalibrationReport {
  kind: "binary" | "multiclass";
  samples: number;
  classes: number;
  binning: "uniform" | "equal-mass";
  confidence: "positive" | "top-label";
  ece: number;
  mce: number;
  rmsce: number;
  brier: number;
  nll: number;
  /** Fraction of samples whose most probable class is the label (binary: p ≥ 0.5 ↔ class 1). */
  accuracy: number;
  bins: ReliabilityBin[];
}

const EPS = 1e-15;

function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

function numbersOf(t: Tensor): ArrayLike<number> {
  if (t.dtype === "i64") return Array.from(t.data as BigInt64Array, (v) => Number(v));
  if (t.dtype === "f16" || t.dtype === "bf16") return t.toFloat32Array();
  return t.data as ArrayLike<number>;
}

/** Raw values and their row layout, before checks. */
function rawMatrix(pred: PredictionInput, what: string): { n: number; k: number; v: Float64Array } {
  if (isTensor(pred)) {
    if (pred.rank === 1) return { n: pred.shape[0]!, k: 1, v: Float64Array.from(numbersOf(pred)) };
    if (pred.rank === 2) {
      const [n, k] = pred.shape as [number, number];
      return { n, k, v: Float64Array.from(numbersOf(pred)) };
    }
    throw new TersorError("E_SHAPE", `${what} must be 1-D (binary) or 2-D (n × classes), got shape [${pred.shape.join(", ")}]`);
  }
  const arr = pred as ArrayLike<unknown>;
  if (arr.length > 0 && typeof arr[0] === "object" && arr[0] !== null) {
    const rows = pred as readonly ArrayLike<number>[];
    const k = rows[0]!.length;
    const v = new Float64Array(rows.length * k);
    rows.forEach((r, i) => {
      if (r.length !== k) throw new TersorError("E_SHAPE", `${what}: row ${i} has ${r.length} values, row 0 has ${k}`);
      for (let j = 0; j < k; j++) v[i * k + j] = Number(r[j]);
    });
    return { n: rows.length, k, v };
  }
  const flat = pred as ArrayLike<number>;
  return { n: flat.length, k: 1, v: Float64Array.from({ length: flat.length }, (_, i) => Number(flat[i])) };
}

/**
 * Predictions as probabilities, checked: finite, in [0, 1], rows summing to 1 (within 1e-3,
 * then renormalised), a 2-D input with one column is binary. Logits are turned into probabilities.
 */
export function toProbabilities(pred: PredictionInput, options: { logits?: boolean } = {}, what = "predictions"): ProbabilityMatrix {
  let { n, k, v } = rawMatrix(pred, what);
  if (k === 0) throw new TersorError("E_SHAPE", `${what} have no columns`);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw new TersorError("E_RANGE", `${what}: value ${v[i]} at sample ${Math.floor(i / k)}${k > 1 ? `, class ${i % k}` : ""} is not a finite number`);
  }
  if (options.logits) {
    if (k === 1) for (let i = 0; i < n; i++) v[i] = sigmoid(v[i]!);
    else v = softmaxRows(v, n, k, 1);
    return { n, k, p: v };
  }
  for (let i = 0; i < v.length; i++) {
    if (v[i]! < 0 || v[i]! > 1) throw new TersorError("E_RANGE", `${what}: probability ${v[i]} at sample ${Math.floor(i / k)} is outside [0, 1] (pass logits: true / --logits for logits)`);
  }
  if (k > 1) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += v[i * k + j]!;
      if (Math.abs(s - 1) > 1e-3) throw new TersorError("E_RANGE", `${what}: the probabilities of sample ${i} sum to ${s}, not 1`);
      for (let j = 0; j < k; j++) v[i * k + j]! /= s;
    }
  }
  return { n, k, p: v };
}

/** Labels as integers in [0, classes) (binary: 0 or 1). */
export function toLabels(labels: LabelInput, n: number, classes: number, what = "labels"): Int32Array {
  const raw: ArrayLike<unknown> = isTensor(labels) ? numbersOf(labels) : (labels as ArrayLike<unknown>);
  if (isTensor(labels) && labels.rank > 1 && !(labels.rank === 2 && labels.shape[1] === 1)) {
    throw new TersorError("E_SHAPE", `${what} must be 1-D, got shape [${labels.shape.join(", ")}]`);
  }
  if (raw.length !== n) throw new TersorError("E_SHAPE", `${raw.length} ${what} for ${n} predictions: the lengths must match`);
  const k = Math.max(2, classes);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = raw[i];
    const x = typeof v === "boolean" ? (v ? 1 : 0) : Number(v);
    if (!Number.isInteger(x) || x < 0 || x >= k) throw new TersorError("E_RANGE", `${what}[${i}] = ${String(v)} is not a class in [0, ${k})`);
    out[i] = x;
  }
  return out;
}

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

function softmaxRows(z: Float64Array, n: number, k: number, invT: number): Float64Array {
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = Math.max(mx, z[i * k + j]! * invT);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[i * k + j] = Math.exp(z[i * k + j]! * invT - mx);
    for (let j = 0; j < k; j++) out[i * k + j]! /= s;
  }
  return out;
}

function checkBins(bins: number): void {
  if (!Number.isInteger(bins) || bins < 1 || bins > 1e6) throw new TersorError("E_RANGE", `bins must be an integer in [1, 1e6], got ${bins}`);
}

/** Upper edges of the bins (the last is 1). */
function binEdges(conf: Float64Array, bins: number, binning: "uniform" | "equal-mass"): number[] {
  checkBins(bins);
  if (binning === "uniform") return Array.from({ length: bins }, (_, b) => (b + 1) / bins);
  const sorted = Float64Array.from(conf).sort();
  const n = sorted.length;
  const hi: number[] = [];
  for (let b = 0; b < bins - 1; b++) hi.push(n === 0 ? (b + 1) / bins : sorted[Math.max(0, Math.ceil(((b + 1) * n) / bins) - 1)]!);
  hi.push(1);
  return hi;
}

/** Bin index of c: the first bin whose upper edge is ≥ c ((lo, hi], bin 0 also takes lo). */
function binOf(c: number, hi: number[]): number {
  let lo = 0;
  let up = hi.length - 1;
  while (lo < up) {
    const mid = (lo + up) >> 1;
    if (c <= hi[mid]!) up = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Reliability-diagram bins and the calibration errors of confidences `conf` with outcomes
 * `correct` (1 right / 0 wrong, or the 0/1 label in binary "positive" mode).
 */
export function calibrationBins(
  conf: ArrayLike<number>,
  correct: ArrayLike<number>,
  options: { bins?: number; binning?: "uniform" | "equal-mass" } = {},
): { bins: ReliabilityBin[]; ece: number; mce: number; rmsce: number } {
  const n = conf.length;
  if (correct.length !== n) throw new TersorError("E_SHAPE", `${correct.length} outcomes for ${n} confidences: the lengths must match`);
  if (n === 0) throw new TersorError("E_RANGE", "calibration needs at least one sample");
  const c = Float64Array.from({ length: n }, (_, i) => Number(conf[i]));
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(c[i]!) || c[i]! < 0 || c[i]! > 1) throw new TersorError("E_RANGE", `confidence ${conf[i]} at sample ${i} is not a probability in [0, 1]`);
    const a = Number(correct[i]);
    if (!(a >= 0 && a <= 1)) throw new TersorError("E_RANGE", `outcome ${correct[i]} at sample ${i} is not in [0, 1]`);
  }
  const B = options.bins ?? 15;
  const hi = binEdges(c, B, options.binning ?? "uniform");
  const cnt = new Float64Array(B);
  const sc = new Float64Array(B);
  const sa = new Float64Array(B);
  for (let i = 0; i < n; i++) {
    const b = binOf(c[i]!, hi);
    cnt[b]! += 1;
    sc[b]! += c[i]!;
    sa[b]! += Number(correct[i]);
  }
  const bins: ReliabilityBin[] = [];
  let ece = 0;
  let mce = 0;
  let ms = 0;
  for (let b = 0; b < B; b++) {
    const lo = b === 0 ? 0 : hi[b - 1]!;
    if (cnt[b] === 0) {
      bins.push({ lo, hi: hi[b]!, count: 0, confidence: Number.NaN, accuracy: Number.NaN, gap: Number.NaN });
      continue;
    }
    const conf_b = sc[b]! / cnt[b]!;
    const acc_b = sa[b]! / cnt[b]!;
    const gap = Math.abs(acc_b - conf_b);
    bins.push({ lo, hi: hi[b]!, count: cnt[b]!, confidence: conf_b, accuracy: acc_b, gap });
    ece += (cnt[b]! / n) * gap;
    ms += (cnt[b]! / n) * gap * gap;
    mce = Math.max(mce, gap);
  }
  return { bins, ece, mce, rmsce: Math.sqrt(ms) };
}

/** Brier score: binary `mean (p − y)²`, multiclass `mean Σ_k (p_k − [y = k])²`. */
export function brierScore(pred: PredictionInput, labels: LabelInput, options: { logits?: boolean } = {}): number {
  const P = toProbabilities(pred, options);
  const y = toLabels(labels, P.n, P.k);
  if (P.n === 0) throw new TersorError("E_RANGE", "the Brier score needs at least one sample");
  let s = 0;
  for (let i = 0; i < P.n; i++) {
    if (P.k === 1) s += (P.p[i]! - y[i]!) ** 2;
    else for (let j = 0; j < P.k; j++) s += (P.p[i * P.k + j]! - (y[i] === j ? 1 : 0)) ** 2;
  }
  return s / P.n;
}

function nllOf(P: ProbabilityMatrix, y: Int32Array): number {
  let s = 0;
  for (let i = 0; i < P.n; i++) {
    const p = P.k === 1 ? (y[i] === 1 ? P.p[i]! : 1 - P.p[i]!) : P.p[i * P.k + y[i]!]!;
    s -= Math.log(Math.min(1 - EPS, Math.max(EPS, p)));
  }
  return s / P.n;
}

/** Everything about the calibration of `pred` against `labels` (see the module notes for definitions). */
export function calibrationReport(pred: PredictionInput, labels: LabelInput, options: CalibrationOptions = {}): CalibrationReport {
  const P = toProbabilities(pred, options);
  if (P.n === 0) throw new TersorError("E_RANGE", "calibration needs at least one sample");
  checkBins(options.bins ?? 15);
  const y = toLabels(labels, P.n, P.k);
  const mode = P.k === 1 ? (options.confidence ?? "positive") : "top-label";
  const conf = new Float64Array(P.n);
  const correct = new Float64Array(P.n);
  let right = 0;
  let brier = 0;
  for (let i = 0; i < P.n; i++) {
    if (P.k === 1) {
      const p = P.p[i]!;
      const predicted = p >= 0.5 ? 1 : 0;
      if (predicted === y[i]) right++;
      brier += (p - y[i]!) ** 2;
      if (mode === "positive") {
        conf[i] = p;
        correct[i] = y[i]!;
      } else {
        conf[i] = Math.max(p, 1 - p);
        correct[i] = predicted === y[i] ? 1 : 0;
      }
    } else {
      let best = 0;
      for (let j = 1; j < P.k; j++) if (P.p[i * P.k + j]! > P.p[i * P.k + best]!) best = j;
      conf[i] = P.p[i * P.k + best]!;
      correct[i] = best === y[i] ? 1 : 0;
      right += correct[i]!;
      for (let j = 0; j < P.k; j++) brier += (P.p[i * P.k + j]! - (y[i] === j ? 1 : 0)) ** 2;
    }
  }
  const binning = options.binning ?? "uniform";
  const b = calibrationBins(conf, correct, { bins: options.bins ?? 15, binning });
  return {
    kind: P.k === 1 ? "binary" : "multiclass",
    samples: P.n,
    classes: Math.max(2, P.k),
    binning,
    confidence: mode,
    ece: b.ece,
    mce: b.mce,
    rmsce: b.rmsce,
    brier: brier / P.n,
    nll: nllOf(P, y),
    accuracy: right / P.n,
    bins: b.bins,
  };
}

/** Expected calibration error (see {@link calibrationReport}). */
export function expectedCalibrationError(pred: PredictionInput, labels: LabelInput, options: CalibrationOptions = {}): number {
  return calibrationReport(pred, labels, options).ece;
}

// ---- temperature scaling -------------------------------------------------------------------

/** Logits from predictions: multiclass logits as given (or log-probabilities), binary log-odds. */
function logitsOf(pred: PredictionInput, logits: boolean): { n: number; k: number; z: Float64Array } {
  if (logits) {
    const { n, k, v } = rawMatrix(pred, "logits");
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) throw new TersorError("E_RANGE", `logits: value ${v[i]} at sample ${Math.floor(i / k)} is not a finite number`);
    return { n, k, z: v };
  }
  const P = toProbabilities(pred, {});
  const z = new Float64Array(P.p.length);
  const clamp = (p: number) => Math.min(1 - 1e-12, Math.max(1e-12, p));
  for (let i = 0; i < z.length; i++) {
    const p = clamp(P.p[i]!);
    z[i] = P.k === 1 ? Math.log(p) - Math.log1p(-p) : Math.log(p);
  }
  return { n: P.n, k: P.k, z };
}

function temperatureNll(z: Float64Array, n: number, k: number, y: Int32Array, T: number): number {
  const inv = 1 / T;
  let s = 0;
  for (let i = 0; i < n; i++) {
    if (k === 1) {
      // −log σ(±z/T) = softplus(∓z/T)
      const t = (y[i] === 1 ? -1 : 1) * z[i]! * inv;
      s += t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
    } else {
      let mx = -Infinity;
      for (let j = 0; j < k; j++) mx = Math.max(mx, z[i * k + j]! * inv);
      let e = 0;
      for (let j = 0; j < k; j++) e += Math.exp(z[i * k + j]! * inv - mx);
      s += mx + Math.log(e) - z[i * k + y[i]!]! * inv;
    }
  }
  return s / n;
}

export interface TemperatureFit {
  /** The fitted temperature T > 0: predictions become softmax(z / T) (binary: σ(logit(p) / T)). */
  temperature: number;
  /** Mean NLL (nats) on the fitting set at T = 1 and at the fitted T. */
  nllBefore: number;
  nllAfter: number;
  /** True when the optimum sits at the search boundary (T = 1e-3 or 1e3). */
  atBoundary: boolean;
  iterations: number;
}

/**
 * Temperature scaling (Guo et al. 2017): the T > 0 minimising the mean NLL of `softmax(z / T)` on a
 * validation split (binary probabilities: `σ(logit(p) / T)`, probabilities clamped to
 * [1e-12, 1 − 1e-12] first). The NLL is convex in 1/T, hence unimodal in log T; it is minimised by
 * golden-section search on log T over [1e-3, 1e3] to a relative tolerance of 1e-9.
 */
export function fitTemperature(pred: PredictionInput, labels: LabelInput, options: { logits?: boolean } = {}): TemperatureFit {
  const { n, k, z } = logitsOf(pred, options.logits ?? false);
  if (n === 0) throw new TersorError("E_RANGE", "temperature scaling needs at least one sample");
  const y = toLabels(labels, n, k);
  const f = (u: number) => temperatureNll(z, n, k, y, Math.exp(u));
  const lo0 = Math.log(1e-3);
  const hi0 = Math.log(1e3);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = lo0;
  let b = hi0;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  let it = 0;
  while (b - a > 1e-9 && it < 200) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
    it++;
  }
  const u = (a + b) / 2;
  const T = Math.exp(u);
  return { temperature: T, nllBefore: f(0), nllAfter: f(u), atBoundary: u - lo0 < 1e-6 || hi0 - u < 1e-6, iterations: it };
}

/**
 * Predictions at temperature T: multiclass `softmax(z / T)` as an n × K row-major Float64Array,
 * binary `σ(logit(p) / T)` as n values. `logits` says whether `pred` holds logits or probabilities.
 */
export function applyTemperature(pred: PredictionInput, temperature: number, options: { logits?: boolean } = {}): ProbabilityMatrix {
  if (!(Number.isFinite(temperature) && temperature > 0)) throw new TersorError("E_RANGE", `the temperature must be finite and > 0, got ${temperature}`);
  const { n, k, z } = logitsOf(pred, options.logits ?? false);
  if (k === 1) return { n, k, p: Float64Array.from(z, (v) => sigmoid(v / temperature)) };
  return { n, k, p: softmaxRows(z, n, k, 1 / temperature) };
}

/** Rows of a probability matrix as arrays (for passing back into the functions above). */
export function probabilityRows(P: ProbabilityMatrix): number[] | number[][] {
  if (P.k === 1) return Array.from(P.p);
  return Array.from({ length: P.n }, (_, i) => Array.from(P.p.subarray(i * P.k, (i + 1) * P.k)));
}

/**
 * A seeded split of sample indices into a validation part (`fraction` of them, at least one) and
 * the rest, for fitting a temperature on one part and measuring on the other.
 */
export function splitIndices(n: number, fraction: number, seed = 0): { validation: number[]; test: number[] } {
  if (!(fraction > 0 && fraction < 1)) throw new TersorError("E_RANGE", `the validation fraction must be in (0, 1), got ${fraction}`);
  if (n < 2) throw new TersorError("E_RANGE", "a split needs at least two samples");
  const idx = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const m = Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
  return { validation: idx.slice(0, m).sort((a, b) => a - b), test: idx.slice(m).sort((a, b) => a - b) };
}

/** A reliability diagram: per-bin accuracy bars against the diagonal, bar width = bin extent, counts in the tooltip. */
export function reliabilityDiagramSpec(report: CalibrationReport, options: { title?: string } = {}): VegaLiteSpec {
  const rows = report.bins
    .filter((b) => b.count > 0)
    .map((b) => ({ lo: b.lo, hi: b.hi, confidence: b.confidence, accuracy: b.accuracy, count: b.count, gap: b.gap }));
  const yTitle = report.kind === "binary" && report.confidence === "positive" ? "fraction of class 1" : "accuracy";
  const xTitle = report.kind === "binary" && report.confidence === "positive" ? "predicted probability of class 1" : "confidence";
  const title =
    options.title ??
    `Reliability (${report.binning}, ${report.bins.length} bins): ECE ${report.ece.toFixed(4)}, MCE ${report.mce.toFixed(4)}, Brier ${report.brier.toFixed(4)}`;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 360,
    height: 360,
    layer: [
      {
        data: { values: rows },
        mark: { type: "rect", color: "#4c78a8", opacity: 0.8, stroke: "white" },
        encoding: {
          x: { field: "lo", type: "quantitative", scale: { domain: [0, 1] }, title: xTitle },
          x2: { field: "hi" },
          y: { field: "accuracy", type: "quantitative", scale: { domain: [0, 1] } },
          y2: { datum: 0 },
          tooltip: [
            { field: "lo", type: "quantitative" },
            { field: "hi", type: "quantitative" },
            { field: "count", type: "quantitative" },
            { field: "confidence", type: "quantitative", format: ".4f" },
            { field: "accuracy", type: "quantitative", format: ".4f" },
          ],
        },
      },
      {
        data: { values: rows },
        mark: { type: "point", color: "#e45756", filled: true, size: 40 },
        encoding: {
          x: { field: "confidence", type: "quantitative" },
          y: { field: "accuracy", type: "quantitative", scale: { domain: [0, 1] }, title: yTitle },
        },
      },
      {
        data: { values: [{ a: 0 }, { a: 1 }] },
        mark: { type: "line", color: "gray", strokeDash: [4, 4] },
        encoding: { x: { field: "a", type: "quantitative" }, y: { field: "a", type: "quantitative" } },
      },
    ],
  } as VegaLiteSpec;
}
