/**
 * The options of {@link train}, validated with zod before any work starts, and the model
 * architecture they describe turned into the runtime's {@link TransformerConfig}.
 */
import { TersorError } from "@tersor/core";
import type { LossSum, NativeTrainable, TrainTargets, TransformerConfig } from "@tersor/native";
import { z } from "zod";

import { BYTE_VOCAB_SIZE } from "../tokenizer.js";
import { DataSourceSchema } from "./data.js";

/** Architectures {@link train} builds from scratch (the Hugging Face `model_type` it writes). */
export const TRAIN_ARCHITECTURES = ["llama", "qwen2", "gpt2"] as const;
export type TrainArchitecture = (typeof TRAIN_ARCHITECTURES)[number];

const posInt = z.number().int().positive();
const nonNeg = z.number().finite().nonnegative();

/** A model built from scratch. */
export const ModelShapeSchema = z.strictObject({
  /** `llama` (RMSNorm, RoPE, SwiGLU), `qwen2` (llama + q/k/v biases) or `gpt2` (LayerNorm, learned positions, GELU, tied). */
  arch: z.enum(TRAIN_ARCHITECTURES).default("llama"),
  dim: posInt,
  layers: posInt,
  heads: posInt,
  /** Key/value heads (grouped-query attention); default `heads`. gpt2: must equal `heads`. */
  kvHeads: posInt.optional(),
  /** MLP width; default: llama/qwen2 ⌈8·dim/3⌉ rounded up to a multiple of 16, gpt2 4·dim. */
  intermediate: posInt.optional(),
  /** Longest sequence the model handles (RoPE table / learned positions). */
  contextLength: posInt,
  /** Vocabulary size; default the byte-level tokenizer's 259. Must be ≥ 259. */
  vocab: posInt.optional(),
  /** Tie the LM head to the embedding (default true for gpt2, false otherwise). */
  tieEmbeddings: z.boolean().optional(),
  /** RoPE base (llama/qwen2), default 10000. */
  ropeTheta: z.number().positive().optional(),
  /** Norm epsilon, default 1e-5. */
  normEps: z.number().positive().optional(),
  /** Standard deviation of the normal initialisation, default 0.02. */
  initStd: z.number().positive().optional(),
});

/** A model continued from a checkpoint written by {@link train} (or any Hugging Face directory of a supported architecture). */
export const FromCheckpointSchema = z.strictObject({ fromCheckpoint: z.string().min(1) });

/** Per-domain sampling weights: by domain name, or an array in the order of the domains. */
export const WeightsSchema = z.union([z.record(z.string(), nonNeg), z.array(nonNeg)]);
export type DomainWeights = z.input<typeof WeightsSchema>;

/** One training step, as reported to `onStep` and kept in the log. */
export interface StepRecord {
  step: number;
  /** Mean loss (nats per predicted token) over the step's batch. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipped: boolean;
  tokens: number;
  /** Tokens seen since the start of training (all steps). */
  tokensSeen: number;
  tokensPerSecond: number;
  /** Sequences of each domain in this step's batch. */
  domainCounts: Record<string, number>;
}

/** Per-domain validation loss at one evaluation. */
export interface EvalRecord {
  step: number;
  /** Per domain: mean loss in nats per token, bits per byte, tokens and bytes scored. */
  domains: Record<string, { loss: number; bitsPerByte: number; tokens: number; bytes: number }>;
  /** Token-weighted mean loss over the domains. */
  loss: number;
}

/** What {@link train} returns, and what trainer_state.json keeps. */
export interface TrainLog {
  steps: StepRecord[];
  evals: EvalRecord[];
}

/** One micro-batch, as the `targets` / `lossGrad` hooks see it. */
export interface TrainBatch {
  step: number;
  micro: number;
  /** `[batch, seqLen]` input ids. */
  tokens: Int32Array;
  /** `[batch, seqLen]` next-token ids (the hard targets). */
  targets: Int32Array;
  batch: number;
  seqLen: number;
  /** Domain name of each sequence. */
  domains: string[];
}

/**
 * A custom loss through the logits: given the micro-batch and its `[batch·seqLen, vocab]` logits,
 * returns the loss sum it stands for and ∂loss/∂logits (already scaled as it should enter the
 * gradient); the trainer backpropagates it with `backwardLogits`.
 */
export type LossGradHook = (batch: TrainBatch, logits: Float32Array) => Promise<{ loss: number; count: number; dlogits: Float32Array }> | { loss: number; count: number; dlogits: Float32Array };

const fn = <T>() => z.custom<T>((v) => typeof v === "function", { message: "must be a function" });

export const TrainOptionsSchema = z.strictObject({
  model: z.union([ModelShapeSchema, FromCheckpointSchema]),
  data: z.array(DataSourceSchema).min(1, "data: at least one source is needed"),
  /** Only these domains (default: every domain of `data`). */
  domains: z.array(z.string().min(1)).min(1).optional(),
  /** Sampling weights per domain (default uniform); must sum to a positive value. */
  weights: WeightsSchema.optional(),
  /** Weights that change during training: called before every step with the latest per-domain validation loss (undefined before the first evaluation). */
  weightsCallback: fn<(step: number, perDomainValLoss: Record<string, number> | undefined) => DomainWeights>().optional(),
  steps: posInt,
  /** Tokens per optimizer step (predicted positions): batch · seqLen · gradAccum. */
  batchTokens: posInt,
  /** Sequence length (default: the model's context length). */
  seqLen: posInt.optional(),
  gradAccum: posInt.default(1),
  lr: z.number().positive().finite().default(1e-3),
  /** Floor of the decayed learning rate (default lr/10). */
  minLr: nonNeg.optional(),
  warmup: z.number().int().nonnegative().default(0),
  schedule: z.enum(["cosine", "linear", "constant"]).default("cosine"),
  weightDecay: nonNeg.default(0.1),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.95),
  eps: z.number().positive().default(1e-8),
  /** Global-norm clipping threshold; 0 = off. */
  maxGradNorm: nonNeg.default(1),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0),
  /** Evaluate before the first step, every n steps and after the last; 0 = only after the last step. */
  evalEvery: z.number().int().nonnegative().default(0),
  /** Validation tokens per domain at each evaluation (default 4 sequences' worth). */
  evalTokens: posInt.optional(),
  onEval: fn<(e: EvalRecord) => void | Promise<void>>().optional(),
  onStep: fn<(s: StepRecord) => void | Promise<void>>().optional(),
  /** Write a checkpoint every n steps (and after the last); 0 = only after the last. Needs `out`. */
  checkpointEvery: z.number().int().nonnegative().default(0),
  /** Checkpoint directory (a Hugging Face model directory). */
  out: z.string().min(1).optional(),
  /** Continue from the checkpoint in `out` when it holds one (exact resume). */
  resume: z.boolean().default(false),
  /** Native threads (0 = physical cores); default: as set. */
  threads: z.number().int().nonnegative().optional(),
  /** Soft (or custom hard) targets per micro-batch, e.g. a teacher's distribution for distillation. */
  targets: fn<(batch: TrainBatch) => TrainTargets | Promise<TrainTargets>>().optional(),
  /** A custom loss through forwardLogits/backwardLogits (excludes `targets`). */
  lossGrad: fn<LossGradHook>().optional(),
  /** Stop early when this returns true (checked after every step; a checkpoint is written when `out` is set). */
  shouldStop: fn<(step: number) => boolean>().optional(),
  /** Progress: a bar on a TTY by default. */
  progress: z.enum(["bar", "json", "silent"]).optional(),
});

export type TrainOptions = z.input<typeof TrainOptionsSchema>;
export type ParsedTrainOptions = z.output<typeof TrainOptionsSchema>;
export type ModelShape = z.input<typeof ModelShapeSchema>;

/** Parses the options: schema errors → `E_RANGE` naming the field. */
export function parseTrainOptions(options: unknown): ParsedTrainOptions {
  const r = TrainOptionsSchema.safeParse(options);
  if (!r.success) throw new TersorError("E_RANGE", `invalid training options: ${z.prettifyError(r.error)}`);
  const o = r.data;
  if (o.targets && o.lossGrad) throw new TersorError("E_RANGE", "invalid training options: give either `targets` or `lossGrad`, not both");
  if (o.resume && o.out === undefined) throw new TersorError("E_RANGE", "invalid training options: `resume` needs `out` (the checkpoint directory)");
  if (o.minLr !== undefined && o.minLr > o.lr) throw new TersorError("E_RANGE", `invalid training options: minLr ${o.minLr} exceeds lr ${o.lr}`);
  if (o.warmup > o.steps) throw new TersorError("E_RANGE", `invalid training options: warmup ${o.warmup} exceeds steps ${o.steps}`);
  return o;
}

/** The default llama MLP width: ⌈8·dim/3⌉ rounded up to a multiple of 16. */
export function defaultIntermediate(dim: number): number {
  return Math.ceil((8 * dim) / 3 / 16) * 16;
}

/** The runtime config of a model shape; bad shapes → `E_RANGE` with the reason. */
export function transformerConfigOf(shape: z.output<typeof ModelShapeSchema>): TransformerConfig {
  const { arch, dim, layers, heads, contextLength } = shape;
  const kvHeads = shape.kvHeads ?? heads;
  const bad = (m: string) => new TersorError("E_RANGE", `invalid model: ${m}`);
  if (dim % heads !== 0) throw bad(`heads ${heads} does not divide dim ${dim}`);
  if (heads % kvHeads !== 0) throw bad(`kvHeads ${kvHeads} does not divide heads ${heads}`);
  const headDim = dim / heads;
  const vocab = shape.vocab ?? BYTE_VOCAB_SIZE;
  if (vocab < BYTE_VOCAB_SIZE) throw bad(`vocab ${vocab} is smaller than the byte-level tokenizer's ${BYTE_VOCAB_SIZE}`);
  const eps = shape.normEps ?? 1e-5;
  if (arch === "gpt2") {
    if (kvHeads !== heads) throw bad(`gpt2 has no grouped-query attention: kvHeads ${kvHeads} must equal heads ${heads}`);
    if (shape.tieEmbeddings === false) throw bad("gpt2 always ties its LM head to the embedding (tieEmbeddings: false is not a GPT-2)");
    return {
      norm: "layernorm",
      normEps: eps,
      vocabSize: vocab,
      hidden: dim,
      intermediate: shape.intermediate ?? 4 * dim,
      layers,
      heads,
      kvHeads: heads,
      headDim,
      activation: "gelu_tanh",
      gatedMlp: false,
      qkvBias: true,
      outBias: true,
      tieEmbeddings: true,
      learnedPositions: true,
      maxPositions: contextLength,
      slidingWindow: 0,
    };
  }
  if (headDim % 2 !== 0) throw bad(`head dimension ${headDim} (dim / heads) must be even for rotary embeddings`);
  return {
    norm: "rmsnorm",
    normEps: eps,
    vocabSize: vocab,
    hidden: dim,
    intermediate: shape.intermediate ?? defaultIntermediate(dim),
    layers,
    heads,
    kvHeads,
    headDim,
    activation: "silu",
    gatedMlp: true,
    qkvBias: arch === "qwen2",
    outBias: false,
    tieEmbeddings: shape.tieEmbeddings ?? false,
    learnedPositions: false,
    maxPositions: contextLength,
    rope: {
      theta: shape.ropeTheta ?? 10000,
      style: "neox",
      rotaryDim: headDim,
      scaling: "none",
      factor: 1,
      lowFreqFactor: 1,
      highFreqFactor: 1,
      originalMaxPosition: contextLength,
    },
    slidingWindow: 0,
  };
}

export type { LossSum, NativeTrainable, TrainTargets };
