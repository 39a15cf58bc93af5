/**
 * Learning-rate schedules: linear warmup from 0, then cosine (Loshchilov & Hutter 2017, SGDR,
 * without restarts), linear, or constant decay to `minLr` at the last step.
 */
import { TersorError } from "@tersor/core";

export interface LrSchedule {
  schedule: "cosine" | "linear" | "constant";
  lr: number;
  minLr: number;
  warmup: number;
  steps: number;
}

/**
 * The learning rate of 0-based `step`:
 * - warmup (step < warmup): `lr · (step + 1) / warmup`;
 * - then, with `p = (step − warmup) / max(1, steps − 1 − warmup)` ∈ [0, 1]:
 *   cosine `minLr + (lr − minLr) · (1 + cos(π·p)) / 2`, linear `lr − (lr − minLr) · p`, constant `lr`.
 */
export function learningRate(s: LrSchedule, step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new TersorError("E_RANGE", `learningRate: step must be a non-negative integer, got ${step}`);
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  if (s.schedule === "constant") return s.lr;
  const span = Math.max(1, s.steps - 1 - s.warmup);
  const p = Math.min(1, (step - s.warmup) / span);
  if (s.schedule === "linear") return s.lr - (s.lr - s.minLr) * p;
  return s.minLr + ((s.lr - s.minLr) * (1 + Math.cos(Math.PI * p))) / 2;
}
