/** Small numerical helpers: ranks, Spearman's ρ, Pearson's r, ridge-stabilised least squares. */
import { TersorError } from "@tersor/core";

/** Ranks 1..n with ties given their average rank. */
export function ranks(x: readonly number[]): number[] {
  const idx = x.map((_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]!] === x[idx[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]!] = avg;
    i = j + 1;
  }
  return r;
}

/** Pearson's correlation coefficient (NaN when either side is constant). */
export function pearson(x: readonly number[], y: readonly number[]): number {
  if (x.length !== y.length) throw new TersorError("E_SHAPE", `pearson: ${x.length} vs ${y.length} values`);
  const n = x.length;
  if (n < 2) throw new TersorError("E_SHAPE", "pearson needs at least 2 pairs");
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) { mx += x[i]!; my += y[i]!; }
  mx /= n; my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i]! - mx, b = y[i]! - my;
    sxy += a * b; sxx += a * a; syy += b * b;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rank correlation: Pearson's r of the (tie-averaged) ranks. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  if (x.length !== y.length) throw new TersorError("E_SHAPE", `spearman: ${x.length} vs ${y.length} values`);
  return pearson(ranks(x), ranks(y));
}

/** Solves the SPD system `A x = b` (A row-major p × p) by Cholesky; E_RANGE when A is not positive definite. */
export function choleskySolve(A: readonly number[], b: readonly number[], p: number): number[] {
  const L = new Float64Array(p * p);
  for (let i = 0; i < p; i++)
    for (let j = 0; j <= i; j++) {
      let s = A[i * p + j]!;
      for (let k = 0; k < j; k++) s -= L[i * p + k]! * L[j * p + k]!;
      if (i === j) {
        if (!(s > 0)) throw new TersorError("E_RANGE", "least squares: the normal matrix is not positive definite");
        L[i * p + i] = Math.sqrt(s);
      } else L[i * p + j] = s / L[j * p + j]!;
    }
  const y = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * p + k]! * y[k]!;
    y[i] = s / L[i * p + i]!;
  }
  const x = new Array<number>(p).fill(0);
  for (let i = p - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < p; k++) s -= L[k * p + i]! * x[k]!;
    x[i] = s / L[i * p + i]!;
  }
  return x;
}

/**
 * Least squares with an intercept: minimises `Σ (y − b0 − Σ_j b_j x_j)^2 + ridge · Σ_j b_j^2`
 * (the intercept is not penalised). A tiny ridge keeps the problem well posed when the features are
 * collinear, as mixture proportions are (they sum to 1). Returns `[b0, b1..bd]`.
 */
export function leastSquares(X: readonly (readonly number[])[], y: readonly number[], ridge = 1e-8): number[] {
  const n = X.length;
  if (n === 0 || n !== y.length) throw new TersorError("E_SHAPE", `least squares: ${n} rows and ${y.length} targets`);
  const d = X[0]!.length;
  const p = d + 1;
  const A = new Array<number>(p * p).fill(0);
  const b = new Array<number>(p).fill(0);
  const row = new Array<number>(p);
  for (let i = 0; i < n; i++) {
    const xi = X[i]!;
    if (xi.length !== d) throw new TersorError("E_SHAPE", `least squares: row ${i} has ${xi.length} features, expected ${d}`);
    row[0] = 1;
    for (let j = 0; j < d; j++) row[j + 1] = xi[j]!;
    for (let a = 0; a < p; a++) {
      b[a] = b[a]! + row[a]! * y[i]!;
      for (let c = 0; c <= a; c++) A[a * p + c] = A[a * p + c]! + row[a]! * row[c]!;
    }
  }
  let trace = 0;
  for (let a = 1; a < p; a++) trace += A[a * p + a]!;
  const lam = ridge * Math.max(trace / Math.max(d, 1), 1e-12);
  for (let a = 0; a < p; a++) for (let c = 0; c < a; c++) A[c * p + a] = A[a * p + c]!;
  for (let a = 1; a < p; a++) A[a * p + a] = A[a * p + a]! + lam;
  return choleskySolve(A, b, p);
}
