/**
 * Layer quantization methods over the native kernels (native/include/tersor/quant_methods.hpp): RTN,
 * GPTQ (Frantar et al. 2022), AWQ's activation-aware scale search (Lin et al. 2024), HQQ (Badri &
 * Shaji 2023), and the low-rank factorisations LoRD (Kaushal et al. 2023), LoRC (Yao et al. 2023) and
 * EoRA (Liu et al. 2024). A weight is an f32 Tensor `[out, in]` (y = x Wᵀ); calibration enters as the
 * f64 Gram XᵀX `[in, in]` that `Model.captureLinearInputs` accumulates.
 * @module
 */
import { Tensor, TersorError } from "@tersor/core";
import { native } from "@tersor/native";
import { z } from "zod";

import { SchemeSchema } from "./formats.js";

function matrix(w: Tensor, what: string): { data: Float32Array; rows: number; cols: number } {
  if (!(w instanceof Tensor)) throw new TersorError("E_DTYPE", `${what} must be a Tensor`);
  if (w.dtype !== "f32") throw new TersorError("E_DTYPE", `${what} must be f32, got ${w.dtype}`);
  if (w.rank !== 2) throw new TersorError("E_SHAPE", `${what} must be a matrix [out, in], got shape [${w.shape.join(", ")}]`);
  return { data: w.data as Float32Array, rows: w.shape[0]!, cols: w.shape[1]! };
}

function gramOf(g: Tensor, cols: number): Float64Array {
  if (!(g instanceof Tensor) || g.dtype !== "f64") throw new TersorError("E_DTYPE", `the Gram matrix must be an f64 Tensor`);
  if (g.rank !== 2 || g.shape[0] !== cols || g.shape[1] !== cols) throw new TersorError("E_SHAPE", `the Gram matrix must be [${cols}, ${cols}], got [${g.shape.join(", ")}]`);
  return g.data as Float64Array;
}

/** A quantized weight: packed rows (`rows × rowBytes(scheme, cols)` bytes) and their values. */
export interface QuantizedWeight {
  scheme: string;
  q: Uint8Array;
  values: Tensor<"f32">;
}

/** Round-to-nearest. */
export async function rtn(w: Tensor, scheme: string): Promise<QuantizedWeight> {
  const s = SchemeSchema.parse(scheme);
  const m = matrix(w, "the weight");
  const r = await native().quantRtn(m.data, m.rows, m.cols, s);
  return { scheme: s, q: r.q, values: new Tensor("f32", [m.rows, m.cols], r.deq) };
}

export const GptqOptionsSchema = z
  .object({
    /** Dampening as a fraction of mean(diag H) (the paper's 0.01). */
    damp: z.number().min(0).max(10).default(0.01),
    /** Lazy-batch width (128). */
    blockSize: z.number().int().min(1).max(1 << 16).default(128),
    /** Columns by decreasing diag(H); implies static groups. */
    actOrder: z.boolean().default(false),
    staticGroups: z.boolean().default(false),
  })
  .strict();
export type GptqOptions = z.input<typeof GptqOptionsSchema>;

/** GPTQ over one linear: `gram` = XᵀX over `nSamples` calibration rows. */
export async function gptq(w: Tensor, gram: Tensor, nSamples: number, scheme: string, options: GptqOptions = {}): Promise<QuantizedWeight & { loss: number; dead: number }> {
  const o = GptqOptionsSchema.parse(options);
  const s = SchemeSchema.parse(scheme);
  const m = matrix(w, "the weight");
  if (!Number.isInteger(nSamples) || nSamples < 1) throw new TersorError("E_RANGE", `nSamples must be a positive integer, got ${nSamples}`);
  const r = await native().quantGptq(m.data, m.rows, m.cols, gramOf(gram, m.cols), nSamples, s, o.damp, o.blockSize, o.actOrder, o.staticGroups);
  return { scheme: s, q: r.q, values: new Tensor("f32", [m.rows, m.cols], r.deq), loss: r.loss, dead: r.dead };
}

/** ‖X (W − V)ᵀ‖²_F = tr((W − V) G (W − V)ᵀ): the calibration output error of V in place of W. */
export async function outputError(w: Tensor, v: Tensor, gram: Tensor): Promise<number> {
  const a = matrix(w, "w");
  const b = matrix(v, "v");
  if (a.rows !== b.rows || a.cols !== b.cols) throw new TersorError("E_SHAPE", `w [${a.rows}, ${a.cols}] and v [${b.rows}, ${b.cols}] differ in shape`);
  return await native().quantOutputError(a.data, b.data, a.rows, a.cols, gramOf(gram, a.cols));
}

/** AWQ scale search over the linears sharing one input (e.g. q, k, v): per-input-channel scales. */
export async function awqSearch(ws: Tensor[], gram: Tensor, meanAbsX: Float32Array, scheme: string, grid = 20): Promise<{ scales: Float32Array; alpha: number; error: number; errors: Float64Array }> {
  if (ws.length === 0) throw new TersorError("E_RANGE", "awqSearch needs at least one weight");
  const ms = ws.map((w, i) => matrix(w, `weight ${i}`));
  const cols = ms[0]!.cols;
  for (const [i, m] of ms.entries()) if (m.cols !== cols) throw new TersorError("E_SHAPE", `weight ${i} has ${m.cols} inputs, weight 0 has ${cols}`);
  if (meanAbsX.length !== cols) throw new TersorError("E_SHAPE", `meanAbsX has ${meanAbsX.length} entries, expected ${cols}`);
  if (!Number.isInteger(grid) || grid < 1 || grid > 1000) throw new TersorError("E_RANGE", `grid must be an integer in [1, 1000], got ${grid}`);
  const total = ms.reduce((a, m) => a + m.rows, 0);
  const all = new Float32Array(total * cols);
  let off = 0;
  for (const m of ms) {
    all.set(m.data, off);
    off += m.data.length;
  }
  return await native().quantAwqSearch(all, total, cols, gramOf(gram, cols), meanAbsX, SchemeSchema.parse(scheme), grid, Float64Array.from(ms, (m) => m.rows));
}

export const HqqOptionsSchema = z
  .object({
    bits: z.number().int().min(1).max(8).default(4),
    /** Group along each row (0 = the whole row). */
    group: z.number().int().min(0).default(64),
    lpNorm: z.number().gt(0).max(1).default(0.7),
    beta: z.number().positive().default(10),
    kappa: z.number().min(1).default(1.01),
    iters: z.number().int().min(1).max(1000).default(20),
  })
  .strict();
export type HqqOptions = z.input<typeof HqqOptionsSchema>;

/** HQQ: codes in [0, 2^bits), value = scale·(code − zero) per group. No calibration data. */
export async function hqq(w: Tensor, options: HqqOptions = {}): Promise<{ scale: Float32Array; zero: Float32Array; codes: Uint8Array; values: Tensor<"f32">; iterations: number; error: number }> {
  const o = HqqOptionsSchema.parse(options);
  const m = matrix(w, "the weight");
  const r = await native().quantHqq(m.data, m.rows, m.cols, o.bits, o.group, o.lpNorm, o.beta, o.kappa, o.iters);
  return { scale: r.scale, zero: r.zero, codes: r.codes, values: new Tensor("f32", [m.rows, m.cols], r.deq), iterations: r.iterations, error: r.error };
}

/** A factorisation M ≈ B A: `b` [rows, rank], `a` [rank, cols]. */
export interface LowRankFactors {
  b: Tensor<"f32">;
  a: Tensor<"f32">;
  rank: number;
  singularValues: Float32Array;
}

function factors(r: { b: Float32Array; a: Float32Array; rank: number; singularValues: Float32Array }, rows: number, cols: number): LowRankFactors {
  return { b: new Tensor("f32", [rows, r.rank], r.b), a: new Tensor("f32", [r.rank, cols], r.a), rank: r.rank, singularValues: r.singularValues };
}

function checkRank(rank: number, rows: number, cols: number): void {
  if (!Number.isInteger(rank) || rank < 1 || rank > Math.min(rows, cols)) throw new TersorError("E_RANGE", `rank must be an integer in [1, ${Math.min(rows, cols)}], got ${rank}`);
}

/** LoRD: W ≈ B A by truncated SVD, at `rank` or (rank omitted) the smallest rank holding `energy` of Σ sᵢ². */
export async function lord(w: Tensor, options: { rank?: number; energy?: number } = {}): Promise<LowRankFactors> {
  const m = matrix(w, "the weight");
  if (options.rank !== undefined) checkRank(options.rank, m.rows, m.cols);
  const energy = options.energy ?? 0.99;
  if (!(energy > 0 && energy <= 1)) throw new TersorError("E_RANGE", `energy must be in (0, 1], got ${energy}`);
  return factors(await native().quantLowRank("lord", m.data, m.rows, m.cols, options.rank ?? 0, null, energy), m.rows, m.cols);
}

/** LoRC: truncated SVD of the quantization error E = W − Q(W). */
export async function lorc(error: Tensor, rank: number): Promise<LowRankFactors> {
  const m = matrix(error, "the error");
  checkRank(rank, m.rows, m.cols);
  return factors(await native().quantLowRank("lorc", m.data, m.rows, m.cols, rank, null), m.rows, m.cols);
}

/** EoRA: the rank-`rank` B A minimising ‖X (E − B A)ᵀ‖ (eigenspace of XᵀX). */
export async function eora(error: Tensor, gram: Tensor, rank: number): Promise<LowRankFactors> {
  const m = matrix(error, "the error");
  checkRank(rank, m.rows, m.cols);
  return factors(await native().quantLowRank("eora", m.data, m.rows, m.cols, rank, gramOf(gram, m.cols)), m.rows, m.cols);
}

/** W − V as a new f32 Tensor. */
export function difference(w: Tensor, v: Tensor): Tensor<"f32"> {
  const a = matrix(w, "w");
  const b = matrix(v, "v");
  if (a.rows !== b.rows || a.cols !== b.cols) throw new TersorError("E_SHAPE", "w and v differ in shape");
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! - b.data[i]!;
  return new Tensor("f32", [a.rows, a.cols], out);
}

/** B A as an f32 Tensor. */
export function lowRankProduct(f: LowRankFactors): Tensor<"f32"> {
  const [rows, k] = f.b.shape as [number, number];
  const cols = f.a.shape[1]!;
  const out = new Float32Array(rows * cols);
  const b = f.b.data as Float32Array;
  const a = f.a.data as Float32Array;
  for (let i = 0; i < rows; i++)
    for (let t = 0; t < k; t++) {
      const v = b[i * k + t]!;
      if (v === 0) continue;
      for (let j = 0; j < cols; j++) out[i * cols + j]! += v * a[t * cols + j]!;
    }
  return new Tensor("f32", [rows, cols], out);
}
