/** Bindings of native/napi/train.cpp: a trainable decoder-only transformer (forward, backward, AdamW). */
import type { TransformerConfig } from "./transformer.js";

/** One parameter tensor of a {@link NativeTrainable}, laid out in its flat f32 buffers. */
export interface TrainableParameter {
  /** Canonical weight name, the same names the inference runtime's weight specs use. */
  name: string;
  shape: number[];
  /** Offset (in elements) into `params()`, `grads()` and the AdamW moments. */
  offset: number;
  size: number;
  /** Whether AdamW applies weight decay to it by default (false for norms, biases and embeddings). */
  decay: boolean;
}

/**
 * Training targets for `B·T` positions (row-major `[B, T]`):
 * - `hard`: the next-token ids; `-1` ignores a position (cross-entropy);
 * - `dense`: a probability row of `vocab` entries per position (cross-entropy against a soft target:
 *   `−Σ_j p_j log q_j`); a row of all zeros ignores the position;
 * - `sparse`: `k` (id, weight) pairs per position, loss `−Σ_i w_i log q_{id_i}`; id `-1` pads.
 */
export type TrainTargets =
  | { kind: "hard"; ids: Int32Array }
  | { kind: "dense"; probs: Float32Array }
  | { kind: "sparse"; k: number; ids: Int32Array; weights: Float32Array };

/** Sum of the per-position losses (nats) over the counted positions, and their count. */
export interface LossSum {
  loss: number;
  count: number;
}

/** AdamW hyper-parameters of one update (decoupled weight decay, Loshchilov & Hutter 2019). */
export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based update count, for the bias corrections. */
  step: number;
  /** Global-norm gradient clipping threshold; 0 turns clipping off. */
  maxGradNorm: number;
}

/**
 * A trainable model: f32 master weights, gradients and AdamW moments held natively.
 * One call at a time: `step`, `evaluate`, `forwardLogits` and `backwardLogits` hold the model until their
 * promise settles; another of them meanwhile rejects with E_RANGE, and `zeroGrad` / `adamw` throw E_RANGE.
 * Results are deterministic for a given thread count (bitwise on one thread).
 */
export interface NativeTrainable {
  readonly parameterCount: number;
  parameters(): TrainableParameter[];
  /** Zero-copy, writable view of the master weights (write into it to load a checkpoint). */
  params(): Float32Array;
  /** Zero-copy view of the gradient accumulator. */
  grads(): Float32Array;
  /** Zero-copy, writable views of AdamW's first and second moments. */
  adamState(): { m: Float32Array; v: Float32Array };
  zeroGrad(): void;
  /**
   * Forward and backward over `batch` sequences of `seqLen` tokens (`tokens` is `[batch, seqLen]`);
   * adds `lossScale ·` ∂(sum of per-position losses)/∂θ into the gradients. Resolves to the loss sum.
   */
  step(tokens: Int32Array, batch: number, seqLen: number, targets: TrainTargets, options?: { lossScale?: number }): Promise<LossSum>;
  /** The loss sum without gradients. */
  evaluate(tokens: Int32Array, batch: number, seqLen: number, targets: TrainTargets): Promise<LossSum>;
  /**
   * Forward only; keeps the activations for {@link NativeTrainable.backwardLogits}. Resolves to `[batch·seqLen, vocab]` logits.
   * A later `step` or `evaluate` discards them (backwardLogits then rejects with E_RANGE).
   */
  forwardLogits(tokens: Int32Array, batch: number, seqLen: number): Promise<Float32Array>;
  /** Backward from a gradient of any loss w.r.t. the logits of the last `forwardLogits` call; adds into the gradients. */
  backwardLogits(dlogits: Float32Array): Promise<void>;
  /** One AdamW update from the accumulated gradients (after optional clipping); returns the pre-clip global norm. */
  adamw(options: AdamWOptions): { gradNorm: number; clipped: boolean };
}

export interface TrainBinding {
  /**
   * A trainable transformer for a runtime {@link TransformerConfig} (every architecture switch the
   * inference runtime supports), initialised from `seed`: normal(0, `initStd`) linears and embeddings
   * (output projections scaled by 1/√(2·layers), GPT-2's rule), norms at 1, biases at 0.
   */
  TrainableTransformer: new (config: TransformerConfig, options?: { seed?: number; initStd?: number }) => NativeTrainable;
}
