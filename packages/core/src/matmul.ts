import { TersorError, native } from "@tersor/native";
import { z } from "zod";

import type { DType } from "./dtype.js";
import { Tensor } from "./tensor.js";

/** Options of {@link matmul}. */
export const MatmulOptionsSchema = z
  .object({
    /** Multiply by the transpose of `a` (a stored `k × m` matrix used as `m × k`). */
    transA: z.boolean().optional(),
    /** Multiply by the transpose of `b` (a stored `n × k` matrix used as `k × n`). */
    transB: z.boolean().optional(),
  })
  .strict();

export type MatmulOptions = z.infer<typeof MatmulOptionsSchema>;

/** The dtypes {@link matmul} multiplies. */
export type MatmulDType = "f32" | "f16" | "bf16";

const MATMUL_DTYPES: readonly string[] = ["f32", "f16", "bf16"];

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function checkOperand(name: "a" | "b", t: unknown): Tensor {
  if (!(t instanceof Tensor)) {
    throw new TersorError("E_DTYPE", `matmul: ${name} must be a Tensor, got ${t === null ? "null" : typeof t}`);
  }
  if (t.rank !== 2) {
    throw new TersorError("E_SHAPE", `matmul: ${name} must be a 2-D tensor (a matrix), got shape ${shapeText(t.shape)} (rank ${t.rank})`);
  }
  if (!MATMUL_DTYPES.includes(t.dtype)) {
    throw new TersorError("E_DTYPE", `matmul: ${name} is ${t.dtype}; matmul multiplies f32, f16 and bf16 tensors (convert with .to("f32"))`);
  }
  return t;
}

/** A row-major copy of the transpose of a `rows × cols` matrix of 16-bit patterns (cache-blocked). */
function transpose16(src: Uint16Array, rows: number, cols: number): Uint16Array {
  const out = new Uint16Array(rows * cols);
  const B = 64;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = src[i * cols + j]!;
    }
  }
  return out;
}

/**
 * Matrix product `op(a) · op(b)` of two 2-D tensors, computed by tersor's native GEMM off the main
 * thread, where `op(x)` is `x` or, with `transA`/`transB`, its transpose (no copy is made for f32).
 *
 * - `f32 × f32`: f32 arithmetic (FMA, f32 accumulation).
 * - `f16 × f16` and `bf16 × bf16`: the 16-bit values are widened exactly while the kernel packs them
 *   and accumulated in f32; the result is f32. With a transpose, the 16-bit operand is transposed
 *   into a temporary copy first (half the size of a widened copy).
 * - Any other pairing (`f16 × bf16`, `f32 × f16`, ...) is an `E_DTYPE` error: convert explicitly with
 *   {@link Tensor.to}.
 *
 * The result is bitwise the same for every thread count.
 *
 * @throws TersorError (as a rejected promise) `E_DTYPE` for a non-tensor, a dtype other than f32/f16/bf16
 *   or mixed dtypes; `E_SHAPE` for an operand that is not 2-D or inner dimensions that differ;
 *   `E_RANGE` for invalid options or non-finite input values (the message names the operand and index).
 */
export async function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Promise<Tensor<"f32">> {
  const parsed = MatmulOptionsSchema.safeParse(opts ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` (${issue.path.join(".")})` : "";
    throw new TersorError("E_RANGE", `matmul: invalid options${where}: ${issue?.message ?? "unknown problem"}; expected { transA?: boolean, transB?: boolean }`);
  }
  const transA = parsed.data.transA ?? false;
  const transB = parsed.data.transB ?? false;
  checkOperand("a", a);
  checkOperand("b", b);
  const [ar, ac] = a.shape as [number, number];
  const [br, bc] = b.shape as [number, number];
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    const desc = (name: string, t: Tensor, tr: boolean) =>
      `${name} is ${shapeText(t.shape)}${tr ? ` (transposed: ${shapeText([t.shape[1]!, t.shape[0]!])})` : ""}`;
    throw new TersorError("E_SHAPE", `matmul: ${desc("a", a, transA)} but ${desc("b", b, transB)}: inner dimensions ${k} and ${kb} differ`);
  }
  const da: DType = a.dtype;
  const db: DType = b.dtype;
  if (da !== db) {
    throw new TersorError(
      "E_DTYPE",
      `matmul: a is ${da} but b is ${db}; both operands must have the same dtype (convert one with .to("${da === "f32" || db === "f32" ? "f32" : da}"))`,
    );
  }
  const bind = native();
  let out: Float32Array;
  if (da === "f32") {
    out = await bind.matmul(a.data as Float32Array, b.data as Float32Array, m, k, n, transA, transB);
  } else {
    const ah = transA ? transpose16(a.data as Uint16Array, ar, ac) : (a.data as Uint16Array);
    const bh = transB ? transpose16(b.data as Uint16Array, br, bc) : (b.data as Uint16Array);
    out = await (da === "f16" ? bind.matmulF16(ah, bh, m, k, n) : bind.matmulBf16(ah, bh, m, k, n));
  }
  return new Tensor("f32", [m, n], out);
}
