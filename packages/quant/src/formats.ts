/**
 * Weight quantization formats over the native kernels (native/include/tersor/quant_formats.hpp):
 * ggml's block formats byte for byte (`q8_0`, `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q2_k` … `q6_k`, `mxfp4`,
 * `nvfp4`), NF4 (QLoRA, Dettmers et al. 2023; `nf4`, `nf4-g128`, `nf4-dq` with double quantization of
 * the block scales), FP8 (OCP E4M3 / E5M2, saturating: `fp8`, `fp8_e5m2`, `fp8-g128`), integers
 * (`int<2..8>` per channel, `-g32|64|128` per group, `-pt` per tensor, `-asym` with zero points, MSE-optimal
 * clipping search) and learned per-row k-means codebooks (`kmeans<2..8>`, SqueezeLLM-style).
 *
 * A quantized matrix `[rows, cols]` is `rows × rowBytes(scheme, cols)` bytes, row-major: every row is
 * quantized on its own (block layouts in the header).
 *
 * ## Quantized checkpoints (the contract between `tersor quantize` and `loadModel`)
 *
 * Hugging Face directory: every quantized linear `<name>.weight` (`[out, in]`) is replaced by
 *  - `<name>.qweight`: dtype `U8`, shape `[out, rowBytes(scheme, in)]`, the bytes of {@link quantizeTensor};
 *  - optionally a low-rank adapter (LoRC / EoRA), applied as `y += (x Aᵀ) Bᵀ`:
 *    `<name>.lora_a` (`F32`, `[rank, in]`) and `<name>.lora_b` (`F32`, `[out, rank]`);
 * and `config.json` carries
 * ```json
 * "quantization_config": { "quant_method": "tersor", "format_version": 1, "scheme": "q4_k",
 *                          "modules": { "<name>": { "scheme": "q6_k" } } }
 * ```
 * where `scheme` is the default and `modules` (optional) overrides it per linear. Tensors left in
 * float (embeddings, norms, or any linear without `.qweight`) keep their usual names and dtypes.
 * {@link QuantizationConfigSchema} validates that object.
 *
 * GGUF: tensors keep llama.cpp's names and ggml type ids (`q8_0` = 8, `q4_k` = 12, …); the bytes of a
 * row are exactly {@link quantizeTensor}'s for the ggml formats.
 * @module
 */
import { Tensor, TersorError } from "@tersor/core";
import { native, type QuantBinding } from "@tersor/native";
import { z } from "zod";

/** A parsed quantization scheme (the native QuantSchemeInfo). */
export type QuantSchemeInfo = ReturnType<QuantBinding["quantSchemeInfo"]>;

/** A scheme name (validated by the native parser, which lists the valid names on error). */
export const SchemeSchema = z.string().min(1).max(64);

const DimSchema = z.number().int().positive().max(2 ** 31);

/** `quantization_config` of a quantized Hugging Face directory (see the module comment). */
export const QuantizationConfigSchema = z
  .object({
    quant_method: z.literal("tersor"),
    format_version: z.literal(1),
    scheme: SchemeSchema,
    modules: z.record(z.string(), z.object({ scheme: SchemeSchema }).strict()).optional(),
  })
  .passthrough();
export type QuantizationConfig = z.infer<typeof QuantizationConfigSchema>;

function parseOr(schema: z.ZodTypeAny, v: unknown, what: string): void {
  const r = schema.safeParse(v);
  if (!r.success) throw new TersorError("E_RANGE", `${what}: ${r.error.issues.map((i) => i.message).join("; ")}`);
}

/** Parses a scheme name (`"q4_k"`, `"int4-g128"`, `"nf4"`, `"fp8"`, …); E_RANGE listing the valid names otherwise. */
export function parseScheme(scheme: string): QuantSchemeInfo {
  parseOr(SchemeSchema, scheme, "scheme");
  return native().quantSchemeInfo(scheme);
}

/** Bytes of one quantized row of `cols` elements (E_SHAPE when `cols` is not a multiple of the block). */
export function rowBytes(scheme: string, cols: number): number {
  parseOr(SchemeSchema, scheme, "scheme");
  parseOr(DimSchema, cols, "cols");
  return native().quantRowBytes(scheme, cols);
}

/** Storage bits per weight of a scheme for rows of `cols` elements (default 4096). */
export function bitsPerWeight(scheme: string, cols = 4096): number {
  parseOr(SchemeSchema, scheme, "scheme");
  parseOr(DimSchema, cols, "cols");
  return native().quantBitsPerWeight(scheme, cols);
}

/** Options of {@link quantizeTensor}. */
export const QuantizeOptionsSchema = z
  .object({
    /** Per-column importance (`cols` values ≥ 0, e.g. mean squared activations: llama.cpp's imatrix). */
    importance: z.instanceof(Float32Array).optional(),
  })
  .strict();
export type QuantizeOptions = z.infer<typeof QuantizeOptionsSchema>;

function values(input: Tensor | Float32Array, rows: number, cols: number): Float32Array {
  parseOr(DimSchema, rows, "rows");
  parseOr(DimSchema, cols, "cols");
  let x: Float32Array;
  if (input instanceof Tensor) {
    if (input.numel !== rows * cols) {
      throw new TersorError("E_SHAPE", `quantizeTensor: tensor [${input.shape.join(", ")}] has ${input.numel} elements, expected ${rows} × ${cols}`);
    }
    x = input.toFloat32Array();
  } else if (input instanceof Float32Array) {
    x = input;
  } else {
    throw new TersorError("E_DTYPE", "quantizeTensor: input must be a Tensor or a Float32Array");
  }
  if (x.length !== rows * cols) throw new TersorError("E_SHAPE", `quantizeTensor: ${x.length} values, expected ${rows} × ${cols}`);
  return x;
}

/**
 * Quantizes a row-major `rows × cols` matrix under `scheme` (rows in parallel, native). Returns
 * `rows × rowBytes(scheme, cols)` bytes. Non-finite values are rejected (E_RANGE).
 */
export async function quantizeTensor(
  input: Tensor | Float32Array,
  rows: number,
  cols: number,
  scheme: string,
  options: QuantizeOptions = {},
): Promise<Uint8Array> {
  parseOr(QuantizeOptionsSchema, options, "quantizeTensor options");
  const x = values(input, rows, cols);
  parseScheme(scheme);
  return native().quantizeTensor(x, rows, cols, scheme, options.importance ?? null);
}

/** Dequantizes `rows × rowBytes(scheme, cols)` bytes back to f32 `rows × cols`. */
export async function dequantizeTensor(q: Uint8Array, rows: number, cols: number, scheme: string): Promise<Float32Array> {
  if (!(q instanceof Uint8Array)) throw new TersorError("E_DTYPE", "dequantizeTensor: q must be a Uint8Array");
  parseOr(DimSchema, rows, "rows");
  parseOr(DimSchema, cols, "cols");
  parseScheme(scheme);
  return native().dequantizeTensor(q, rows, cols, scheme);
}

/** As {@link dequantizeTensor}, returned as a `[rows, cols]` f32 tensor. */
export async function dequantizeToTensor(q: Uint8Array, rows: number, cols: number, scheme: string): Promise<Tensor<"f32">> {
  return new Tensor("f32", [rows, cols], await dequantizeTensor(q, rows, cols, scheme));
}

/**
 * `Y = X Wᵀ` with `W` quantized (`rows × cols` under `scheme`) and f32 `X` (`batch × cols`); `Y` is
 * `batch × rows`. Dequantizes on the fly (AVX2), rows in parallel; `q8_0`, `q4_0`, `q4_k`, `q5_k`, `q6_k`,
 * `mxfp4`, `nf4` (blocks a multiple of 32, no double quantization) and 4- or 8-bit `int` (groups a
 * multiple of 32) quantize
 * `X` to Q8_0 blocks as llama.cpp does and use integer dot products (nf4's table then in 13-bit fixed
 * point: at most 2⁻¹³·absmax off per weight).
 */
export async function quantMatmul(
  q: Uint8Array,
  rows: number,
  cols: number,
  scheme: string,
  x: Float32Array,
  batch: number,
): Promise<Float32Array> {
  if (!(q instanceof Uint8Array)) throw new TersorError("E_DTYPE", "quantMatmul: q must be a Uint8Array");
  if (!(x instanceof Float32Array)) throw new TersorError("E_DTYPE", "quantMatmul: x must be a Float32Array");
  parseOr(DimSchema, rows, "rows");
  parseOr(DimSchema, cols, "cols");
  parseOr(DimSchema, batch, "batch");
  parseScheme(scheme);
  return native().quantMatmul(q, rows, cols, scheme, x, batch);
}
