/**
 * Knowledge-distillation losses over the native fused kernel (native/distill/losses.cpp): forward
 * and reverse KL with temperature, TRL's generalised JSD, total variation, TTM / WTTM, MixCE and
 * hard-label cross-entropy, optionally mixed with cross-entropy; teacher as dense logits or sparse
 * (top-k log-probs with a zero/uniform tail, or random-sampling importance weights).
 *
 * Definitions (per position; p the teacher at temperature T, q the student):
 * - `fkl`: T²·KL(p‖q) (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural network");
 * - `rkl`: T²·KL(q‖p);
 * - `gkd:β`: β·KL(p‖m) + (1−β)·KL(q‖m), m = βp + (1−β)q; KL(p‖q) at β = 0, KL(q‖p) at β = 1, no T²
 *   factor — exactly TRL's `GKDTrainer.generalized_jsd_loss` (Agarwal et al. 2024, "On-policy
 *   distillation of language models: learning from self-generated mistakes", ICLR);
 * - `tv`: T²·½Σ|p − q|;
 * - `ttm` / `wttm`: KL(p^γ/Σp^γ ‖ softmax(z)), γ = 1/T, the student not softened; WTTM multiplies by
 *   U_γ(p) = Σ p^γ (Zheng & Yang 2024, "Knowledge distillation based on transformed teacher
 *   matching", ICLR);
 * - `mixce:η`: −(η + (1−η)·q_y)·log q_y, q_y detached (Zhang et al. 2023, "MixCE: training
 *   autoregressive language models by mixing forward and reverse cross-entropies", ACL);
 * - `ce`: −log q_y.
 * The total per position is `kdWeight`·(the loss) + `ceWeight`·CE on the hard label.
 * @module
 */
import { TersorError } from "@tersor/core";
import { type DistillLossName, type DistillTeacher, native } from "@tersor/native";
import { z } from "zod";

/** A loss: its kernel name and parameter. */
export interface LossSpec {
  loss: DistillLossName;
  /** GKD β (gkd) or MixCE η (mixce). */
  param?: number;
}

const LOSSES: readonly DistillLossName[] = ["fkl", "rkl", "gkd", "tv", "ttm", "wttm", "mixce", "ce"];

/**
 * Parses `fkl`, `rkl`, `gkd:β` (default 0.5), `tv`, `ttm`, `wttm`, `mixce:η` (default 0.5), `ce`.
 * Bad names or parameters → `E_RANGE`.
 */
export function parseLossSpec(spec: string): LossSpec {
  const [name, arg, ...rest] = spec.trim().split(":");
  if (!LOSSES.includes(name as DistillLossName) || rest.length > 0) {
    throw new TersorError("E_RANGE", `unknown loss "${spec}" (use ${LOSSES.map((l) => (l === "gkd" ? "gkd:β" : l === "mixce" ? "mixce:η" : l)).join(", ")})`);
  }
  const loss = name as DistillLossName;
  if (arg === undefined || arg === "") return loss === "gkd" || loss === "mixce" ? { loss, param: 0.5 } : { loss };
  if (loss !== "gkd" && loss !== "mixce") throw new TersorError("E_RANGE", `loss "${loss}" takes no parameter (got "${spec}")`);
  const v = Number(arg);
  if (!Number.isFinite(v) || v < 0 || v > 1) throw new TersorError("E_RANGE", `${loss === "gkd" ? "GKD β" : "MixCE η"} must be in [0, 1], got "${arg}"`);
  return { loss, param: v };
}

/** Options of {@link kdLoss}. */
export const KdLossOptionsSchema = z.strictObject({
  /** A {@link LossSpec} or its string form (`gkd:0.5`). */
  loss: z.union([z.string(), z.strictObject({ loss: z.enum(LOSSES as [DistillLossName, ...DistillLossName[]]), param: z.number().min(0).max(1).optional() })]),
  temperature: z.number().finite().gt(0, "temperature must be > 0").default(1),
  kdWeight: z.number().finite().nonnegative().default(1),
  ceWeight: z.number().finite().nonnegative().default(0),
  /** dlogits = scale · ∂(sum of per-position losses)/∂logits. */
  scale: z.number().finite().default(1),
  grad: z.boolean().default(false),
});
export type KdLossOptions = z.input<typeof KdLossOptionsSchema>;

/** What {@link kdLoss} returns: sums over the counted positions (nats) and, when asked, the gradient. */
export interface KdLossResult {
  loss: number;
  kd: number;
  ce: number;
  count: number;
  dlogits?: Float32Array;
}

function parseOptions(options: KdLossOptions) {
  const r = KdLossOptionsSchema.safeParse(options);
  if (!r.success) throw new TersorError("E_RANGE", `invalid KD loss options: ${z.prettifyError(r.error)}`);
  const spec = typeof r.data.loss === "string" ? parseLossSpec(r.data.loss) : r.data.loss;
  return { ...r.data, spec };
}

/** Teacher vocabulary vs student vocabulary: they must be the same (names both sizes otherwise). */
export function checkVocab(teacherVocab: number, studentVocab: number, what = "teacher"): void {
  if (teacherVocab !== studentVocab) {
    throw new TersorError("E_SHAPE", `vocabulary mismatch: the ${what} has ${teacherVocab} tokens, the student ${studentVocab}; distillation needs the same vocabulary (trim or remap one of them)`);
  }
}

/**
 * The fused loss of `rows` positions: `student` is `[rows, vocab]` logits; `teacher` dense logits
 * (`[rows, teacherVocab]`; a different vocabulary → `E_SHAPE` naming both) or sparse targets;
 * `labels` (`-1` skips a position) for `ce`, `mixce` and `ceWeight > 0`.
 */
export async function kdLoss(
  student: Float32Array,
  rows: number,
  vocab: number,
  teacher: DistillTeacher | null,
  labels: Int32Array | null,
  options: KdLossOptions,
): Promise<KdLossResult> {
  const o = parseOptions(options);
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(vocab) || vocab < 1) throw new TersorError("E_RANGE", `rows and vocab must be integers (rows ≥ 0, vocab ≥ 1), got ${rows} and ${vocab}`);
  if (student.length !== rows * vocab) throw new TersorError("E_SHAPE", `student logits have ${student.length} values, expected rows × vocab = ${rows} × ${vocab}`);
  if (teacher?.kind === "dense" && rows > 0) {
    if (teacher.logits.length % rows !== 0) throw new TersorError("E_SHAPE", `teacher logits have ${teacher.logits.length} values, not a multiple of ${rows} rows`);
    checkVocab(teacher.logits.length / rows, vocab);
  }
  const r = await native().distillLoss(student, rows, vocab, teacher, labels, {
    loss: o.spec.loss,
    temperature: o.temperature,
    ...(o.spec.loss === "gkd" ? { beta: o.spec.param ?? 0.5 } : {}),
    ...(o.spec.loss === "mixce" ? { eta: o.spec.param ?? 0.5 } : {}),
    kdWeight: o.kdWeight,
    ceWeight: o.ceWeight,
    scale: o.scale,
    grad: o.grad,
  });
  return r;
}
