/**
 * Limited-memory BFGS (Nocedal, "Updating quasi-Newton matrices with limited storage", Math. Comp.
 * 1980; Liu & Nocedal 1989): the two-loop recursion over the last `m` curvature pairs, a backtracking
 * line search with the Armijo condition, and pairs with non-positive curvature skipped. Also a
 * minimiser over the probability simplex (softmax parametrisation, multi-start).
 */
import { Rng, TersorError } from "@tersor/core";

/** Objective and gradient at `x` (write the gradient into `g`, return the value). */
export type Objective = (x: Float64Array, g: Float64Array) => number;

export interface LbfgsOptions {
  /** Curvature pairs kept [10]. */
  memory?: number;
  /** Iterations at most [500]. */
  maxIterations?: number;
  /** Stop when the gradient's infinity norm is below this [1e-9]. */
  gradientTolerance?: number;
  /** Stop when the relative decrease of f over an iteration is below this [1e-14]. */
  functionTolerance?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  iterations: number;
  converged: boolean;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Minimises `f` from `x0` by L-BFGS. Non-finite objective values along a step shrink the step. */
export function lbfgs(f: Objective, x0: ArrayLike<number>, options: LbfgsOptions = {}): LbfgsResult {
  const m = options.memory ?? 10;
  const maxIt = options.maxIterations ?? 500;
  const gtol = options.gradientTolerance ?? 1e-9;
  const ftol = options.functionTolerance ?? 1e-14;
  const n = x0.length;
  if (n === 0) throw new TersorError("E_SHAPE", "lbfgs: empty parameter vector");
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  if (!Number.isFinite(fx)) throw new TersorError("E_RANGE", "lbfgs: the objective is not finite at the starting point");
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const xn = new Float64Array(n);
  const gn = new Float64Array(n);
  const alpha = new Array<number>(m).fill(0);
  let it = 0;
  let converged = false;
  for (; it < maxIt; it++) {
    let gmax = 0;
    for (let i = 0; i < n; i++) gmax = Math.max(gmax, Math.abs(g[i]!));
    if (gmax < gtol) {
      converged = true;
      break;
    }
    // Two-loop recursion: d = -H g.
    for (let i = 0; i < n; i++) d[i] = -g[i]!;
    const k = S.length;
    for (let j = k - 1; j >= 0; j--) {
      const a = rho[j]! * dot(S[j]!, d);
      alpha[j] = a;
      const y = Y[j]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! - a * y[i]!;
    }
    const gamma = k > 0 ? dot(S[k - 1]!, Y[k - 1]!) / dot(Y[k - 1]!, Y[k - 1]!) : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let i = 0; i < n; i++) d[i] = d[i]! * gamma;
    for (let j = 0; j < k; j++) {
      const b = rho[j]! * dot(Y[j]!, d);
      const s = S[j]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! + (alpha[j]! - b) * s[i]!;
    }
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // Not a descent direction: restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i]!;
      slope = dot(g, d);
    }
    let step = 1;
    let fn = Infinity;
    let accepted = false;
    for (let ls = 0; ls < 60; ls++) {
      for (let i = 0; i < n; i++) xn[i] = x[i]! + step * d[i]!;
      fn = f(xn, gn);
      if (Number.isFinite(fn) && fn <= fx + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) {
      converged = true; // no further decrease possible at machine precision
      break;
    }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xn[i]! - x[i]!;
      y[i] = gn[i]! - g[i]!;
    }
    const sy = dot(s, y);
    if (sy > 1e-300) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const fprev = fx;
    x = Float64Array.from(xn);
    g = Float64Array.from(gn);
    fx = fn;
    if (Math.abs(fprev - fx) <= ftol * Math.max(1, Math.abs(fx))) {
      converged = true;
      it++;
      break;
    }
  }
  return { x, f: fx, iterations: it, converged };
}

/** Huber's loss of a residual and its derivative: `r²/2` for |r| ≤ δ, `δ(|r| − δ/2)` beyond. */
export function huber(r: number, delta: number): { value: number; grad: number } {
  const a = Math.abs(r);
  return a <= delta ? { value: 0.5 * r * r, grad: r } : { value: delta * (a - 0.5 * delta), grad: delta * Math.sign(r) };
}

/** The softmax of `z` (numerically stable). */
export function softmax(z: ArrayLike<number>): number[] {
  let mx = -Infinity;
  for (let i = 0; i < z.length; i++) mx = Math.max(mx, z[i]!);
  const e = Array.from(z, (v) => Math.exp(v - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export interface SimplexOptions extends LbfgsOptions {
  /** Random restarts besides the uniform start [8]. */
  starts?: number;
  seed?: number;
  /** Lower bound per proportion, enforced as `lower + (1 − K·lower)·softmax(z)` [0]. */
  lower?: number;
}

/**
 * Minimises `F(r)` over the probability simplex: `r = lower + (1 − K·lower)·softmax(z)`, L-BFGS on
 * `z` with the chain rule, from the uniform mixture and `starts` random points; the best wins.
 * `F` returns the value and writes ∂F/∂r into `g`.
 */
export function minimizeOnSimplex(F: (r: number[], g: Float64Array) => number, K: number, options: SimplexOptions = {}): { weights: number[]; value: number } {
  const lower = options.lower ?? 0;
  if (!(K >= 1)) throw new TersorError("E_RANGE", "minimizeOnSimplex: need at least one domain");
  if (!(lower >= 0 && lower * K < 1)) throw new TersorError("E_RANGE", `lower bound ${lower} is infeasible for ${K} domains`);
  const scale = 1 - K * lower;
  const gr = new Float64Array(K);
  const obj: Objective = (z, g) => {
    const p = softmax(z);
    const r = p.map((v) => lower + scale * v);
    gr.fill(0);
    const val = F(r, gr);
    // dF/dz_j = scale * p_j (gr_j - Σ_i p_i gr_i)
    let avg = 0;
    for (let i = 0; i < K; i++) avg += p[i]! * gr[i]!;
    for (let j = 0; j < K; j++) g[j] = scale * p[j]! * (gr[j]! - avg);
    return val;
  };
  const rng = new Rng(options.seed ?? 0);
  let best: { weights: number[]; value: number } | undefined;
  const starts = options.starts ?? 8;
  for (let s = 0; s <= starts; s++) {
    const z0 = new Float64Array(K);
    if (s > 0) for (let j = 0; j < K; j++) z0[j] = 2 * rng.nextNormal();
    const r = lbfgs(obj, z0, { maxIterations: 300, ...options });
    const w = softmax(r.x).map((v) => lower + scale * v);
    if (!best || r.f < best.value) best = { weights: w, value: r.f };
  }
  return best!;
}
