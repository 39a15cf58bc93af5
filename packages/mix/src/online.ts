/**
 * Online mixers: pure, deterministic update rules fed with per-domain losses (or rewards). Each
 * keeps its state in plain fields and exposes `weights()`; {@link onlineWeightsCallback} turns one
 * into the trainer's `weightsCallback(step, perDomainValLoss)`.
 *
 * - DoReMi (Xie et al., "DoReMi: Optimizing Data Mixtures Speeds Up Language Model Pretraining",
 *   NeurIPS 2023, Algorithm 1): excess loss `λ_i = max(L_i − L_ref,i, 0)`, exponentiated-gradient
 *   step `α' ∝ α ⊙ exp(η λ)`, smoothed `α ← (1 − ε) α' + ε u`; the output is the average of the α's.
 * - Online Data Mixing (Albalak et al., "Efficient Online Data Mixing For Language Model
 *   Pre-Training", 2023, Algorithm 1): EXP3 with the training loss as reward, exploration rate
 *   `ε_t = min(1/K, sqrt(ln K / (K t)))`, policy `π_i = (1 − K ε_t) softmax(ε_{t−1} R̂)_i + ε_t`,
 *   and the smoothed importance-weighted reward `R̂_i ← α R̂_i + (1 − α) L / π_i` (α = 0.9) for
 *   the sampled arm.
 * - Aioli (Chen et al., "Aioli: A Unified Optimization Framework for Language Model Data Mixing",
 *   ICLR 2025, Algorithm 2): the linear dynamic mixing law `L^{t+1} = L^t − A p`, with `A` estimated
 *   from short sweeps at perturbed mixtures, then the exponentiated-gradient step
 *   `p ∝ p ⊙ exp(η Σ_i A_ij)`.
 * - EXP3-FLAD / UCB1-FLAD (Albalak et al., "Improving Few-Shot Generalization by Exploring and
 *   Exploiting Auxiliary Data", NeurIPS 2023): bandits over auxiliary domains whose reward is the
 *   gradient alignment (cosine similarity) between an auxiliary batch's and the target's gradients.
 */
import { Rng, TersorError } from "@tersor/core";

import { normalize } from "./mixture.js";
import { choleskySolve } from "./stats.js";

function checkK(K: number): void {
  if (!(Number.isInteger(K) && K >= 1)) throw new TersorError("E_RANGE", `need a positive number of domains, got ${K}`);
}

function checkVector(v: readonly number[], K: number, what: string): void {
  if (v.length !== K) throw new TersorError("E_SHAPE", `${what}: ${v.length} values for ${K} domains`);
  v.forEach((x, i) => {
    if (!Number.isFinite(x)) throw new TersorError("E_RANGE", `${what}: value ${i} is not finite`);
  });
}

// ---- DoReMi ----------------------------------------------------------------------------------------

export interface DoReMiOptions {
  /** Step size η [1]. */
  eta?: number;
  /** Smoothing ε towards uniform [1e-3]. */
  smoothing?: number;
  /** Initial weights [uniform]. */
  initial?: readonly number[];
}

/** DoReMi's domain-weight update (the proxy's per-domain losses against a reference model's). */
export class DoReMi {
  readonly K: number;
  readonly eta: number;
  readonly smoothing: number;
  /** Current weights α_t. */
  alpha: number[];
  /** Running sum of the α_t (for the average, DoReMi's output). */
  private sum: number[];
  steps = 0;

  constructor(readonly referenceLoss: readonly number[], options: DoReMiOptions = {}) {
    this.K = referenceLoss.length;
    checkK(this.K);
    checkVector(referenceLoss, this.K, "reference loss");
    this.eta = options.eta ?? 1;
    this.smoothing = options.smoothing ?? 1e-3;
    if (!(this.eta > 0)) throw new TersorError("E_RANGE", `eta must be positive, got ${this.eta}`);
    if (!(this.smoothing >= 0 && this.smoothing <= 1)) throw new TersorError("E_RANGE", `smoothing must be in [0, 1], got ${this.smoothing}`);
    this.alpha = options.initial ? normalize(options.initial, "initial weights") : new Array<number>(this.K).fill(1 / this.K);
    this.sum = new Array<number>(this.K).fill(0);
  }

  /** One update from the proxy's per-domain losses; returns the new α_t. */
  update(loss: readonly number[]): number[] {
    checkVector(loss, this.K, "DoReMi loss");
    const lam = loss.map((l, i) => Math.max(l - this.referenceLoss[i]!, 0));
    const logits = this.alpha.map((a, i) => Math.log(a) + this.eta * lam[i]!);
    const m = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    this.alpha = e.map((v) => (1 - this.smoothing) * (v / s) + this.smoothing / this.K);
    this.steps++;
    this.alpha.forEach((a, i) => (this.sum[i] = this.sum[i]! + a));
    return [...this.alpha];
  }

  /** The current weights. */
  weights(): number[] {
    return [...this.alpha];
  }

  /** The average of α_1..α_T (DoReMi's final domain weights); uniform before any update. */
  averageWeights(): number[] {
    return this.steps === 0 ? new Array<number>(this.K).fill(1 / this.K) : this.sum.map((v) => v / this.steps);
  }
}

// ---- EXP3 family -----------------------------------------------------------------------------------

/** The exploration rate of ODM and EXP3-FLAD: `min(1/K, sqrt(ln K / (K t)))`. */
export function exp3Exploration(K: number, t: number): number {
  return Math.min(1 / K, Math.sqrt(Math.log(K) / (K * t)));
}

export interface Exp3Options {
  /** Smoothing of the reward estimate: `R̂ ← α R̂ + (1 − α) r/π` (ODM: 0.9; 0 = plain importance-weighted sum, EXP3-FLAD) [0.9]. */
  smoothing?: number;
  /** Seed of the arm draws. */
  seed?: number;
}

/**
 * EXP3 with ODM's exploration schedule. `policy()` is π_t, `sample()` draws an arm from it,
 * `update(arm, reward)` folds the reward in and advances t. With `smoothing: 0` the reward estimate
 * is the running importance-weighted sum of EXP3 (EXP3-FLAD).
 */
export class Exp3 {
  readonly K: number;
  readonly smoothing: number;
  /** Reward estimates R̂. */
  rewards: number[];
  /** 1-based step of the next decision. */
  t = 1;
  private rng: Rng;
  private lastPolicy: number[] | undefined;
  pulls: number[];

  constructor(K: number, options: Exp3Options = {}) {
    checkK(K);
    this.K = K;
    this.smoothing = options.smoothing ?? 0.9;
    if (!(this.smoothing >= 0 && this.smoothing < 1)) throw new TersorError("E_RANGE", `smoothing must be in [0, 1), got ${this.smoothing}`);
    this.rewards = new Array<number>(K).fill(0);
    this.pulls = new Array<number>(K).fill(0);
    this.rng = new Rng(options.seed ?? 0);
  }

  /** π_t: `(1 − K ε_t) softmax(ε_{t−1} R̂) + ε_t` (with ε_0 = ε_1). */
  policy(): number[] {
    const K = this.K;
    if (K === 1) return [1];
    const eps = exp3Exploration(K, this.t);
    const prev = exp3Exploration(K, Math.max(1, this.t - 1));
    const logits = this.rewards.map((r) => prev * r);
    const m = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => (1 - K * eps) * (v / s) + eps);
  }

  /** Draws an arm from π_t (the policy is remembered for the importance weight of the next update). */
  sample(): number {
    const p = this.policy();
    this.lastPolicy = p;
    const u = this.rng.nextF64();
    let acc = 0;
    for (let i = 0; i < p.length; i++) {
      acc += p[i]!;
      if (u < acc) return i;
    }
    return p.length - 1;
  }

  /** Folds in the reward of `arm` (drawn at this step) and advances t. */
  update(arm: number, reward: number): void {
    if (!(Number.isInteger(arm) && arm >= 0 && arm < this.K)) throw new TersorError("E_RANGE", `arm ${arm} out of range [0, ${this.K})`);
    if (!Number.isFinite(reward)) throw new TersorError("E_RANGE", `reward must be finite, got ${reward}`);
    const p = (this.lastPolicy ?? this.policy())[arm]!;
    const est = reward / p;
    this.rewards[arm] = this.smoothing > 0 ? this.smoothing * this.rewards[arm]! + (1 - this.smoothing) * est : this.rewards[arm]! + est;
    this.pulls[arm] = this.pulls[arm]! + 1;
    this.lastPolicy = undefined;
    this.t++;
  }

  weights(): number[] {
    return this.policy();
  }
}

/**
 * Online Data Mixing (ODM): EXP3 over domains with the training loss as reward and the smoothed
 * mean (α = 0.9). `step(losses)` draws this step's domain, rewards it with its loss, and returns the
 * policy for the next step.
 */
export class OnlineDataMixing extends Exp3 {
  constructor(K: number, options: Exp3Options = {}) {
    super(K, { smoothing: 0.9, ...options });
  }

  /** One ODM step from per-domain losses (only the sampled arm's loss is used, as in the paper). */
  step(losses: readonly number[]): { arm: number; weights: number[] } {
    checkVector(losses, this.K, "ODM losses");
    const arm = this.sample();
    this.update(arm, losses[arm]!);
    return { arm, weights: this.policy() };
  }
}

/** Cosine similarity of two gradients, EXP3-FLAD's reward (0 when either is zero). */
export function gradientAlignment(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new TersorError("E_SHAPE", `gradient alignment: ${a.length} vs ${b.length} entries`);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/** EXP3-FLAD: EXP3 (importance-weighted reward sums) with gradient-alignment rewards. */
export class Exp3Flad extends Exp3 {
  constructor(K: number, options: { seed?: number } = {}) {
    super(K, { smoothing: 0, ...options });
  }
  /** Rewards `arm` with the alignment of its gradient to the target gradient. */
  updateGradients(arm: number, auxGradient: ArrayLike<number>, targetGradient: ArrayLike<number>): number {
    const r = gradientAlignment(auxGradient, targetGradient);
    this.update(arm, r);
    return r;
  }
}

/**
 * UCB1-FLAD: UCB1 (Auer et al. 2002) over auxiliary domains with gradient-alignment rewards; the
 * reward estimate is the smoothed mean `R̂ ← (1 − β) R̂ + β r` after the first pull (β = 0.1 by
 * default; β = 0 turns it into the plain mean), the arm `argmax R̂_i + sqrt(2 ln t / n_i)`, every arm
 * once first.
 */
export class Ucb1 {
  readonly K: number;
  rewards: number[];
  pulls: number[];
  t = 0;
  constructor(K: number, readonly smoothing = 0.1) {
    checkK(K);
    this.K = K;
    this.rewards = new Array<number>(K).fill(0);
    this.pulls = new Array<number>(K).fill(0);
  }
  select(): number {
    const unplayed = this.pulls.indexOf(0);
    if (unplayed >= 0) return unplayed;
    let best = 0, bestV = -Infinity;
    for (let i = 0; i < this.K; i++) {
      const v = this.rewards[i]! + Math.sqrt((2 * Math.log(this.t)) / this.pulls[i]!);
      if (v > bestV) {
        bestV = v;
        best = i;
      }
    }
    return best;
  }
  update(arm: number, reward: number): void {
    if (!(Number.isInteger(arm) && arm >= 0 && arm < this.K)) throw new TersorError("E_RANGE", `arm ${arm} out of range [0, ${this.K})`);
    if (!Number.isFinite(reward)) throw new TersorError("E_RANGE", `reward must be finite, got ${reward}`);
    const n = this.pulls[arm]!;
    this.rewards[arm] = n === 0 ? reward : this.smoothing > 0 ? (1 - this.smoothing) * this.rewards[arm]! + this.smoothing * reward : (this.rewards[arm]! * n + reward) / (n + 1);
    this.pulls[arm] = n + 1;
    this.t++;
  }
  /** Mixture weights for a trainer: the next arm one-hot. */
  weights(): number[] {
    const w = new Array<number>(this.K).fill(0);
    w[this.select()] = 1;
    return w;
  }
}

// ---- Aioli -----------------------------------------------------------------------------------------

/** One short sweep at a mixture: per-domain losses before and after it. */
export interface AioliSweep {
  mixture: readonly number[];
  lossBefore: readonly number[];
  lossAfter: readonly number[];
}

/**
 * Estimates Aioli's mixing-law matrix `A` (K × K, row-major by validation domain i, column j) from
 * sweeps: `L_i,before − L_i,after = Σ_j A_ij p_j` for each sweep's mixture p, solved by least squares
 * per row (needs ≥ K sweeps at linearly independent mixtures).
 */
export function estimateMixingMatrix(sweeps: readonly AioliSweep[]): number[][] {
  if (sweeps.length === 0) throw new TersorError("E_SHAPE", "Aioli needs at least one sweep");
  const K = sweeps[0]!.mixture.length;
  if (sweeps.length < K) throw new TersorError("E_SHAPE", `Aioli needs at least ${K} sweeps for ${K} domains, got ${sweeps.length}`);
  for (const s of sweeps) {
    checkVector([...s.mixture], K, "sweep mixture");
    checkVector([...s.lossBefore], K, "sweep loss before");
    checkVector([...s.lossAfter], K, "sweep loss after");
  }
  const G = new Array<number>(K * K).fill(0);
  for (const s of sweeps) for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) G[a * K + b] = G[a * K + b]! + s.mixture[a]! * s.mixture[b]!;
  return Array.from({ length: K }, (_, i) => {
    const rhs = new Array<number>(K).fill(0);
    for (const s of sweeps) {
      const d = s.lossBefore[i]! - s.lossAfter[i]!;
      for (let a = 0; a < K; a++) rhs[a] = rhs[a]! + s.mixture[a]! * d;
    }
    return choleskySolve(G, rhs, K);
  });
}

/** Aioli's update: `p_j ∝ p_j exp(η Σ_i A_ij)` (the columns' total loss reduction). */
export function aioliStep(p: readonly number[], A: readonly (readonly number[])[], eta: number): number[] {
  const K = p.length;
  if (A.length !== K || A.some((r) => r.length !== K)) throw new TersorError("E_SHAPE", `A must be ${K} × ${K}`);
  const logits = p.map((v, j) => Math.log(Math.max(v, 1e-300)) + eta * A.reduce((s, row) => s + row[j]!, 0));
  const m = Math.max(...logits);
  return normalize(logits.map((v) => Math.exp(v - m)));
}

/** The perturbed mixtures of one Aioli round: `(1 − δ) p + δ e_j` for each domain j. */
export function aioliPerturbations(p: readonly number[], delta: number): number[][] {
  if (!(delta > 0 && delta <= 1)) throw new TersorError("E_RANGE", `perturbation must be in (0, 1], got ${delta}`);
  return p.map((_, j) => p.map((v, i) => (1 - delta) * v + (i === j ? delta : 0)));
}

export interface AioliOptions {
  /** EG step size η [1]. */
  eta?: number;
  /** Perturbation δ of the sweep mixtures [0.5]. */
  delta?: number;
  /** Trainer steps per sweep [1]. */
  sweepSteps?: number;
  /** Steps at the updated mixture after each round [4]. */
  exploitSteps?: number;
  /** Smoothing towards uniform after each step, keeps every domain sampled [0.01]. */
  smoothing?: number;
}

/**
 * Aioli as a controller for a trainer's `weightsCallback`: rounds of K sweeps at the perturbed
 * mixtures (each `sweepSteps` long, losses read at its start and end), then {@link estimateMixingMatrix},
 * {@link aioliStep}, and `exploitSteps` steps at the new mixture. Deterministic: it depends only on
 * the losses it is fed.
 */
export class AioliController {
  p: number[];
  readonly K: number;
  private readonly o: Required<AioliOptions>;
  private phase = 0; // 0..K-1 sweeping domain `phase`, K exploiting
  private phaseStep = 0;
  private before: number[] | undefined;
  private sweeps: AioliSweep[] = [];
  rounds = 0;

  constructor(K: number, options: AioliOptions = {}) {
    checkK(K);
    this.K = K;
    this.o = { eta: 1, delta: 0.5, sweepSteps: 1, exploitSteps: 4, smoothing: 0.01, ...options };
    this.p = new Array<number>(K).fill(1 / K);
  }

  /** The mixture for the next step, given the latest per-domain losses (undefined before any evaluation). */
  next(losses: readonly number[] | undefined): number[] {
    if (losses === undefined) return [...this.p];
    checkVector(losses, this.K, "Aioli losses");
    const K = this.K;
    if (this.phase < K) {
      if (this.phaseStep === 0) this.before = [...losses];
      if (this.phaseStep === this.o.sweepSteps) {
        this.sweeps.push({ mixture: aioliPerturbations(this.p, this.o.delta)[this.phase]!, lossBefore: this.before!, lossAfter: [...losses] });
        this.phase++;
        this.phaseStep = 0;
        if (this.phase === K) {
          const A = estimateMixingMatrix(this.sweeps);
          const q = aioliStep(this.p, A, this.o.eta);
          this.p = q.map((v) => (1 - this.o.smoothing) * v + this.o.smoothing / K);
          this.sweeps = [];
          this.rounds++;
        } else {
          this.before = [...losses];
        }
      }
      if (this.phase < K) {
        this.phaseStep++;
        return aioliPerturbations(this.p, this.o.delta)[this.phase]!;
      }
    }
    // Exploit.
    this.phaseStep++;
    if (this.phaseStep >= this.o.exploitSteps) {
      this.phase = 0;
      this.phaseStep = 0;
    }
    return [...this.p];
  }
}

// ---- trainer glue ----------------------------------------------------------------------------------

/** Anything that maps the latest per-domain losses to the next mixture. */
export interface OnlineMixer {
  next(losses: readonly number[] | undefined, step: number): number[];
}

/** DoReMi, ODM and Aioli as {@link OnlineMixer}s. */
export function doremiMixer(d: DoReMi): OnlineMixer {
  return { next: (l) => (l === undefined ? d.weights() : d.update(l)) };
}
export function odmMixer(o: OnlineDataMixing): OnlineMixer {
  return { next: (l) => (l === undefined ? o.weights() : o.step(l).weights) };
}
export function aioliMixer(a: AioliController): OnlineMixer {
  return { next: (l) => a.next(l) };
}

/**
 * The trainer's `weightsCallback(step, perDomainValLoss)` for a mixer: losses are read in `domains`
 * order (E_RANGE when one is missing); a loss record is fed to the mixer once (repeats of the same
 * evaluation keep the last weights). `history` records every mixture returned.
 */
export function onlineWeightsCallback(domains: readonly string[], mixer: OnlineMixer): {
  callback: (step: number, perDomainValLoss: Record<string, number> | undefined) => Record<string, number>;
  history: { step: number; weights: number[] }[];
} {
  const history: { step: number; weights: number[] }[] = [];
  let last: Record<string, number> | undefined;
  let current: number[] | undefined;
  const callback = (step: number, rec: Record<string, number> | undefined): Record<string, number> => {
    if (current === undefined || (rec !== undefined && rec !== last)) {
      let losses: number[] | undefined;
      if (rec !== undefined) {
        losses = domains.map((d) => {
          const v = rec[d];
          if (v === undefined) throw new TersorError("E_RANGE", `no validation loss for domain "${d}"`);
          return v;
        });
      }
      current = mixer.next(losses, step);
      last = rec;
    }
    history.push({ step, weights: [...current] });
    return Object.fromEntries(domains.map((d, i) => [d, current![i]!]));
  };
  return { callback, history };
}
