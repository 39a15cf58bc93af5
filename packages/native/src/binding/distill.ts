/** Bindings of native/napi/distill.cpp: fused knowledge-distillation losses and teacher sparsifiers. */

/** Loss names of the native kernel (see native/include/tersor/distill.hpp for the definitions). */
export type DistillLossName = "fkl" | "rkl" | "gkd" | "tv" | "ttm" | "wttm" | "mixce" | "ce";

/**
 * The teacher of a `distillLoss` call, for `rows` positions:
 * - `dense`: `[rows, vocab]` logits (softened by the loss's temperature);
 * - `logprobs`: `k` (id, log-probability) pairs per row (id `-1` pads), the rest of the
 *   distribution given by `tail`: `zero` (renormalised over the listed ids) or `uniform` (the remaining
 *   mass, `tailLogMass` per row when given, else 1 − Σ p, spread over the unlisted ids);
 * - `weights`: `k` (id, importance weight) pairs per row from random-sampling KD, an unbiased
 *   estimate of the teacher distribution (forward KL only).
 */
export type DistillTeacher =
  | { kind: "dense"; logits: Float32Array }
  | { kind: "logprobs"; k: number; ids: Int32Array; logprobs: Float32Array; tail?: "zero" | "uniform"; tailLogMass?: Float32Array }
  | { kind: "weights"; k: number; ids: Int32Array; weights: Float32Array };

export interface DistillLossOptions {
  loss: DistillLossName;
  /** Temperature T > 0 (default 1). */
  temperature?: number;
  /** GKD β in [0, 1] (default 0.5). */
  beta?: number;
  /** MixCE η in [0, 1] (default 0.5). */
  eta?: number;
  /** Weight of the distillation term (default 1). */
  kdWeight?: number;
  /** Weight of the hard-label cross-entropy (default 0; needs labels). */
  ceWeight?: number;
  /** dlogits = scale · ∂(sum of row losses)/∂logits (default 1). */
  scale?: number;
  /** Return the gradient (default false). */
  grad?: boolean;
}

export interface DistillLossResult {
  /** Σ over counted rows of kdWeight·kd + ceWeight·ce (nats). */
  loss: number;
  kd: number;
  ce: number;
  count: number;
  /** `[rows, vocab]`, present when `grad` was asked for. */
  dlogits?: Float32Array;
}

export interface DistillBinding {
  /**
   * Fused loss (and gradient w.r.t. the student logits) over `rows` positions of `vocab` logits.
   * `labels` (`-1` ignores a row) are needed by `ce`, `mixce` and `ceWeight > 0`.
   */
  distillLoss(
    student: Float32Array,
    rows: number,
    vocab: number,
    teacher: DistillTeacher | null,
    labels: Int32Array | null,
    options: DistillLossOptions,
  ): Promise<DistillLossResult>;
  /** Per row: the k most probable ids at temperature T, their log-probabilities and log of the mass left out. */
  distillTopK(logits: Float32Array, rows: number, vocab: number, k: number, temperature: number): Promise<{ ids: Int32Array; logprobs: Float32Array; tailLogMass: Float32Array }>;
  /**
   * Random-sampling KD: per row, `samples` draws from the proposal ∝ p^(1/proposalTemperature), merged
   * into unique ids with importance weights (count/K)·p/r (unbiased for p); `-1` / 0 pads. Row r uses
   * seed `seed + rowOffset + r`.
   */
  distillSample(
    logits: Float32Array,
    rows: number,
    vocab: number,
    samples: number,
    temperature: number,
    proposalTemperature: number,
    seed: number,
    rowOffset: number,
  ): Promise<{ ids: Int32Array; weights: Float32Array }>;
}
