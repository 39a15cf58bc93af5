/**
 * Monotone submodular set functions and their greedy maximisers (Nemhauser, Wolsey & Fisher 1978:
 * naive greedy; Minoux 1978: lazy greedy, which returns the same sequence; Mirzasoleiman et al.
 * 2015: stochastic greedy, "Lazier Than Lazy Greedy", a random sample of (n/k)·ln(1/ε) candidates
 * per step). Ties go to the lower index.
 */
import { Rng, TersorError } from "@tersor/core";

/** A set function evaluated incrementally: `gain(j)` = f(S ∪ {j}) − f(S); `add(j)` commits j to S. */
export interface SetFunction {
  readonly n: number;
  value(): number;
  gain(j: number): number;
  add(j: number): void;
  /** A fresh copy with S = ∅. */
  fresh(): SetFunction;
}

/** Facility location f(S) = Σ_i max_{j∈S} sim(i, j) (0 for S = ∅) over a similarity matrix n × n (sim ≥ 0). */
export class FacilityLocation implements SetFunction {
  private readonly best: Float64Array;
  constructor(private readonly sim: Float64Array, readonly n: number) {
    if (sim.length !== n * n) throw new TersorError("E_SHAPE", `similarity must be ${n} x ${n}`);
    for (const v of sim) if (!(v >= 0)) throw new TersorError("E_RANGE", "facility location needs non-negative similarities");
    this.best = new Float64Array(n);
  }
  value(): number {
    return this.best.reduce((a, b) => a + b, 0);
  }
  gain(j: number): number {
    let g = 0;
    for (let i = 0; i < this.n; i++) g += Math.max(0, this.sim[i * this.n + j]! - this.best[i]!);
    return g;
  }
  add(j: number): void {
    for (let i = 0; i < this.n; i++) this.best[i] = Math.max(this.best[i]!, this.sim[i * this.n + j]!);
  }
  fresh(): FacilityLocation {
    return new FacilityLocation(this.sim, this.n);
  }
}

/** Max coverage f(S) = |∪_{j∈S} sets[j]| (weighted by element weights when given). */
export class Coverage implements SetFunction {
  private readonly covered = new Set<number>();
  readonly n: number;
  constructor(private readonly sets: readonly (readonly number[])[], private readonly weights?: ReadonlyMap<number, number>) {
    this.n = sets.length;
  }
  private w(e: number): number {
    return this.weights?.get(e) ?? 1;
  }
  value(): number {
    let s = 0;
    for (const e of this.covered) s += this.w(e);
    return s;
  }
  gain(j: number): number {
    let g = 0;
    for (const e of new Set(this.sets[j])) if (!this.covered.has(e)) g += this.w(e);
    return g;
  }
  add(j: number): void {
    for (const e of this.sets[j]!) this.covered.add(e);
  }
  fresh(): Coverage {
    return new Coverage(this.sets, this.weights);
  }
}

export interface GreedyResult {
  /** Picked elements, in order. */
  order: number[];
  /** Marginal gain of each pick. */
  gains: number[];
  /** Gain evaluations made. */
  evaluations: number;
}

function check(f: SetFunction, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new TersorError("E_RANGE", `budget must be a positive integer, got ${k}`);
  if (k > f.n) throw new TersorError("E_RANGE", `budget ${k} is larger than the ground set (${f.n})`);
}

/** Naive greedy: every remaining element's gain at every step; stops early when no gain is positive. */
export function naiveGreedy(f0: SetFunction, k: number): GreedyResult {
  check(f0, k);
  const f = f0.fresh();
  const taken = new Uint8Array(f.n);
  const order: number[] = [];
  const gains: number[] = [];
  let evaluations = 0;
  while (order.length < k) {
    let best = -1;
    let bestGain = -Infinity;
    for (let j = 0; j < f.n; j++) {
      if (taken[j]) continue;
      const g = f.gain(j);
      evaluations++;
      if (g > bestGain) {
        best = j;
        bestGain = g;
      }
    }
    if (best < 0 || bestGain <= 0) break;
    taken[best] = 1;
    f.add(best);
    order.push(best);
    gains.push(bestGain);
  }
  return { order, gains, evaluations };
}

/** Lazy greedy (Minoux): stale gains are upper bounds; re-evaluate the top until it stays on top. Same picks as naive. */
export function lazyGreedy(f0: SetFunction, k: number): GreedyResult {
  check(f0, k);
  const f = f0.fresh();
  // Binary max-heap of [bound, index], ordered by bound then lower index.
  const heap: [number, number][] = [];
  const better = (a: [number, number], b: [number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] < b[1]);
  const push = (x: [number, number]) => {
    heap.push(x);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const pop = (): [number, number] => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && better(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && better(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  let evaluations = 0;
  for (let j = 0; j < f.n; j++) {
    push([f.gain(j), j]);
    evaluations++;
  }
  const order: number[] = [];
  const gains: number[] = [];
  while (order.length < k && heap.length) {
    const [, j] = pop();
    const g = f.gain(j);
    evaluations++;
    if (heap.length && better(heap[0]!, [g, j])) {
      push([g, j]);
      continue;
    }
    if (g <= 0) break;
    f.add(j);
    order.push(j);
    gains.push(g);
  }
  return { order, gains, evaluations };
}

/** Stochastic greedy: each step scans a seeded random sample of ⌈(n/k)·ln(1/ε)⌉ remaining elements. */
export function stochasticGreedy(f0: SetFunction, k: number, epsilon = 0.1, seed = 0): GreedyResult {
  check(f0, k);
  if (!(epsilon > 0 && epsilon < 1)) throw new TersorError("E_RANGE", `epsilon must be in (0, 1), got ${epsilon}`);
  const f = f0.fresh();
  const rng = new Rng(seed);
  const s = Math.min(f.n, Math.ceil((f.n / k) * Math.log(1 / epsilon)));
  const remaining = Array.from({ length: f.n }, (_, i) => i);
  const order: number[] = [];
  const gains: number[] = [];
  let evaluations = 0;
  while (order.length < k && remaining.length) {
    const m = Math.min(s, remaining.length);
    // Partial Fisher-Yates: the first m of `remaining` become the sample.
    for (let i = 0; i < m; i++) {
      const j = i + Math.floor(rng.nextF64() * (remaining.length - i));
      [remaining[i], remaining[j]] = [remaining[j]!, remaining[i]!];
    }
    let bi = -1;
    let bg = -Infinity;
    for (let i = 0; i < m; i++) {
      const g = f.gain(remaining[i]!);
      evaluations++;
      if (g > bg || (g === bg && remaining[i]! < remaining[bi]!)) {
        bi = i;
        bg = g;
      }
    }
    if (bg <= 0) break;
    const j = remaining[bi]!;
    remaining.splice(bi, 1);
    f.add(j);
    order.push(j);
    gains.push(bg);
  }
  return { order, gains, evaluations };
}

/** Cosine similarities clipped at 0 (a facility-location kernel) of row-major vectors. */
export function cosineSimilarity(data: Float64Array, n: number, d: number): Float64Array {
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += data[i * d + k]! ** 2;
    norms[i] = Math.sqrt(s) || 1;
  }
  const sim = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += data[i * d + k]! * data[j * d + k]!;
      const v = Math.max(0, s / (norms[i]! * norms[j]!));
      sim[i * n + j] = v;
      sim[j * n + i] = v;
    }
  return sim;
}
