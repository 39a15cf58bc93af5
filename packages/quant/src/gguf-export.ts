/**
 * GGUF export for llama.cpp: a Hugging Face Llama directory — float, or quantized by `tersor
 * quantize` (`<linear>.qweight` rows under `quantization_config`, see ./formats.ts) — written as one
 * GGUF v3 file of the `llama` architecture with llama.cpp's tensor names and metadata keys, streamed
 * tensor by tensor through @tersor/core's GGUF writer (temp file + rename: an error leaves nothing).
 *
 * Facts followed (llama.cpp's gguf-py constants and convert_hf_to_gguf.py, the GGUF spec):
 *  - tensor names: `token_embd`, `blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
 *    ffn_gate, ffn_up, ffn_down}`, `output_norm`, `output` (`.weight`; q/k/v `.bias` when present);
 *    `output.weight` only for untied embeddings (llama.cpp falls back to `token_embd`);
 *  - keys `general.{architecture, name, file_type, quantization_version = 2}`, `llama.{context_length,
 *    embedding_length, block_count, feed_forward_length, attention.head_count, attention.head_count_kv,
 *    rope.freq_base, attention.layer_norm_rms_epsilon, rope.dimension_count, vocab_size}` and
 *    `tokenizer.ggml.*`; `general.file_type` is llama.cpp's `llama_ftype` of the linears' type;
 *  - the Q/K row permutation: Hugging Face Llama applies RoPE "rotate-half" (dimension j of a head
 *    pairs with j + d/2), llama.cpp's `llama` graph the "normal" interleaved rotation (2j with 2j+1).
 *    The converter therefore permutes the rows of q_proj / k_proj within each head (`permute()`:
 *    reshape (heads, 2, d/2, in), swap axes 1 and 2): GGUF row h·d + 2j + s = HF row h·d + s·d/2 + j.
 *    Both rotations give the same q·k, so the permuted model computes the same function. A quantized
 *    matrix is permuted by moving its rows' bytes: in ggml every row is its own sequence of blocks, so
 *    whole rows move exactly (no requantization). @tersor/model's GGUF loader runs such files with
 *    interleaved RoPE.
 *
 * Tokenizer: tersor's byte-level tokenizer (256 bytes + `<|bos|>`, `<|eos|>`, `<|pad|>`) is written as
 * llama.cpp's "gpt2" (byte-level BPE) model with GPT-2's byte-to-unicode strings as the 256 byte
 * tokens and no merges. Why "gpt2": llama.cpp's byte-level BPE turns every input byte into exactly that
 * character before merging, and without merges each stays one token, so llama.cpp tokenizes text to
 * the same ids as tersor (whatever its pre-tokenizer splits, a split never changes a merge-less
 * result); its "llama" (SentencePiece) model would instead need `<0xNN>` byte-fallback tokens plus
 * scores and would apply SentencePiece's space handling. The specials are typed CONTROL (3), the
 * bytes NORMAL (1); `tokenizer.ggml.pre` is "gpt-2". @tersor/model recognises this vocabulary
 * ({@link isByteLevelGgufTokenizer}) and loads the byte tokenizer back. Other tokenizers are refused
 * (E_FORMAT) rather than written approximately.
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";

import {
  GgufMetadata,
  Tensor,
  TersorError,
  ggmlTypeByName,
  openGgufWriter,
  openSafetensorsDir,
  pathExists,
  progress,
  type GgmlTypeName,
  type GgufTensorDecl,
  type ProgressMode,
  type SafetensorsSource,
} from "@tersor/core";
import { BYTE_VOCAB_SIZE, byteLevelGgufTokens, isByteLevelTokenizerJson, parseHfConfig, type ModelSpec } from "@tersor/model";
import { native } from "@tersor/native";
import { z } from "zod";

import type { QuantizeModelReport } from "./driver.js";
import { QuantizationConfigSchema, quantizeTensor } from "./formats.js";

/** Schemes a GGUF file can hold (each is a ggml type of the same name), float ones first. */
export const GGUF_SCHEMES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "mxfp4", "nvfp4"] as const;
export type GgufScheme = (typeof GGUF_SCHEMES)[number];

/**
 * llama.cpp's `llama_ftype` for a model whose linears are all of one type (llama.h: ALL_F32 0,
 * MOSTLY_F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10, Q3_K_S 11, Q4_K_S 14, Q5_K_S 16,
 * Q6_K 18, BF16 32, MXFP4_MOE 38, NVFP4 39; the "_S" variants are the ones using that type throughout).
 */
export const GGUF_FILE_TYPES: Readonly<Record<GgufScheme, number>> = {
  f32: 0,
  f16: 1,
  bf16: 32,
  q4_0: 2,
  q4_1: 3,
  q8_0: 7,
  q5_0: 8,
  q5_1: 9,
  q2_k: 10,
  q3_k: 11,
  q4_k: 14,
  q5_k: 16,
  q6_k: 18,
  mxfp4: 38,
  nvfp4: 39,
};

/** llama.cpp's token types (`llama_token_type`). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** True for a scheme GGUF can store. */
export function isGgufScheme(scheme: string): scheme is GgufScheme {
  return (GGUF_SCHEMES as readonly string[]).includes(scheme);
}

/** Checks that `scheme` has a ggml type (E_RANGE naming the schemes GGUF supports otherwise). */
export function checkGgufScheme(scheme: string, what = "scheme"): GgufScheme {
  if (!isGgufScheme(scheme)) {
    throw new TersorError("E_RANGE", `${what} "${scheme}" has no ggml type, so GGUF cannot hold it; GGUF output supports: ${GGUF_SCHEMES.join(", ")} (for other schemes write a Hugging Face directory)`);
  }
  return scheme;
}

const FLOAT_TYPES = new Set<string>(["f32", "f16", "bf16"]);

export const GgufExportOptionsSchema = z
  .object({
    /**
     * Type of linears stored in float in the source (the seven per layer): a float type converts,
     * a block type quantizes them by RTN (quantizeTensor). A float type also applies to the
     * embeddings and the output matrix. Default: as stored (f64 → f32).
     */
    type: z.enum(GGUF_SCHEMES).optional(),
    /** Type for float linears whose rows `type`'s blocks do not divide (default: error). */
    fallbackType: z.enum(GGUF_SCHEMES).optional(),
    /** `general.name` (default: the directory's base name). */
    name: z.string().min(1).max(256).optional(),
    progress: z.enum(["bar", "json", "silent"]).optional(),
  })
  .strict();
export type GgufExportOptions = z.input<typeof GgufExportOptionsSchema>;

/** One tensor as written. */
export interface GgufExportTensor {
  name: string;
  /** The Hugging Face tensor it comes from. */
  source: string;
  shape: number[];
  type: GgmlTypeName;
  bytes: number;
  /** Linears converted or quantized here (not stored that way in the source): mean squared error against the source values. */
  weightMse?: number;
}

export interface GgufExportReport {
  path: string;
  tensors: GgufExportTensor[];
  /** Bytes of the file. */
  fileBytes: number;
  /** `general.file_type`. */
  fileType: number;
  /** Bytes of the source tensors that were written. */
  sourceBytes: number;
}

/** Rows of a `[heads·d, …]` matrix (each row `rowBytes` bytes) reordered from rotate-half to interleaved RoPE order (see the module comment). */
export function permuteRopeRows(bytes: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  if (bytes.byteLength !== rows * rowBytes) throw new TersorError("E_SHAPE", `permuteRopeRows: ${bytes.byteLength} bytes, expected ${rows} rows of ${rowBytes}`);
  if (heads < 1 || rows % heads !== 0 || (rows / heads) % 2 !== 0) throw new TersorError("E_SHAPE", `permuteRopeRows: ${rows} rows are not ${heads} heads of an even dimension`);
  const d = rows / heads;
  const half = d / 2;
  const out = new Uint8Array(bytes.byteLength);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++) {
        const from = h * d + s * half + j;
        const to = h * d + 2 * j + s;
        out.set(bytes.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
  return out;
}

const LINEARS = [
  ["self_attn.q_proj", "attn_q"],
  ["self_attn.k_proj", "attn_k"],
  ["self_attn.v_proj", "attn_v"],
  ["self_attn.o_proj", "attn_output"],
  ["mlp.gate_proj", "ffn_gate"],
  ["mlp.up_proj", "ffn_up"],
  ["mlp.down_proj", "ffn_down"],
] as const;

/** What to do for one output tensor. */
interface Job extends GgufTensorDecl {
  source: string;
  kind: "float" | "quantized" | "rtn";
  /** Heads for the Q/K permutation (0: none). */
  permuteHeads: number;
  /** Scheme of a quantized source / of RTN. */
  scheme?: string;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The model's checks: what llama.cpp's `llama` architecture can run. */
function checkLlama(spec: ModelSpec, where: string): void {
  const t = spec.transformer;
  if (spec.architecture !== "llama" && !(spec.architecture === "mistral" && t.slidingWindow === 0)) {
    throw new TersorError("E_FORMAT", `${where}: GGUF export writes the llama architecture; ${spec.architecture}${spec.architecture === "mistral" ? " with a sliding window" : ""} is not supported`);
  }
  const rope = t.rope;
  if (!rope) throw new TersorError("E_FORMAT", `${where}: a llama model without RoPE is not supported`);
  const rot = rope.rotaryDim === 0 ? t.headDim : rope.rotaryDim;
  if (rot !== t.headDim) throw new TersorError("E_FORMAT", `${where}: partial rotary (${rot} of ${t.headDim} dims) cannot be written for llama.cpp's llama architecture (it requires rope.dimension_count = head dim)`);
  if (rope.scaling !== "none" && rope.scaling !== "linear") throw new TersorError("E_FORMAT", `${where}: RoPE scaling "${rope.scaling}" is not supported in GGUF export (supported: none, linear)`);
  if (t.outBias) throw new TersorError("E_FORMAT", `${where}: output-projection biases are not supported in GGUF export`);
  if (t.headDim % 2 !== 0) throw new TersorError("E_FORMAT", `${where}: head dimension ${t.headDim} is odd`);
}

/** The `general.*`, `llama.*` and `tokenizer.ggml.*` metadata for a byte-level llama model. */
export function llamaGgufMetadata(spec: ModelSpec, name: string, fileType: number): GgufMetadata {
  const t = spec.transformer;
  const rope = t.rope!;
  const md = new GgufMetadata()
    .set("general.architecture", "string", "llama")
    .set("general.name", "string", name)
    .set("general.file_type", "u32", fileType)
    .set("general.quantization_version", "u32", 2)
    .set("llama.context_length", "u32", t.maxPositions)
    .set("llama.embedding_length", "u32", t.hidden)
    .set("llama.block_count", "u32", t.layers)
    .set("llama.feed_forward_length", "u32", t.intermediate)
    .set("llama.attention.head_count", "u32", t.heads)
    .set("llama.attention.head_count_kv", "u32", t.kvHeads)
    .set("llama.rope.freq_base", "f32", rope.theta)
    .set("llama.attention.layer_norm_rms_epsilon", "f32", t.normEps)
    .set("llama.rope.dimension_count", "u32", t.headDim)
    .set("llama.vocab_size", "u32", t.vocabSize);
  if (t.headDim * t.heads !== t.hidden) {
    md.set("llama.attention.key_length", "u32", t.headDim).set("llama.attention.value_length", "u32", t.headDim);
  }
  if (rope.scaling === "linear") md.set("llama.rope.scaling.type", "string", "linear").set("llama.rope.scaling.factor", "f32", rope.factor);
  const tokens = byteLevelGgufTokens();
  const types: number[] = tokens.map((_, i) => (i < 256 ? GGUF_TOKEN_TYPE.normal : GGUF_TOKEN_TYPE.control));
  // Embedding rows beyond the byte vocabulary (padding) get unused placeholder tokens: llama.cpp needs one token per row.
  for (let i = tokens.length; i < t.vocabSize; i++) {
    tokens.push(`<|unused_${i}|>`);
    types.push(GGUF_TOKEN_TYPE.unused);
  }
  md.set("tokenizer.ggml.model", "string", "gpt2")
    .set("tokenizer.ggml.pre", "string", "gpt-2")
    .set("tokenizer.ggml.tokens", "array", { itemType: "string", values: tokens })
    .set("tokenizer.ggml.token_type", "array", { itemType: "i32", values: Int32Array.from(types) })
    .set("tokenizer.ggml.merges", "array", { itemType: "string", values: [] as string[] })
    .set("tokenizer.ggml.bos_token_id", "u32", spec.bosTokenId ?? 256)
    .set("tokenizer.ggml.eos_token_id", "u32", spec.eosTokenIds[0] ?? 257)
    .set("tokenizer.ggml.padding_token_id", "u32", spec.padTokenId ?? 258)
    // The byte tokenizer adds no special tokens when encoding (tokenizer.json has no post-processor).
    .set("tokenizer.ggml.add_bos_token", "bool", false)
    .set("tokenizer.ggml.add_eos_token", "bool", false);
  return md;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new TersorError("E_IO", `cannot read ${path}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TersorError("E_FORMAT", `${path}: not valid JSON`, { cause: e });
  }
}

/** The ggml type name a float source dtype is written as. */
function storedFloatType(dtype: string, where: string): GgmlTypeName {
  const d = dtype.toLowerCase();
  if (d === "f32" || d === "f64") return "f32";
  if (d === "f16") return "f16";
  if (d === "bf16") return "bf16";
  throw new TersorError("E_DTYPE", `${where}: dtype ${dtype} is not supported (F32, F16, BF16, F64)`);
}

/**
 * Writes the Llama model in the Hugging Face directory `dir` (float, or quantized by
 * {@link quantizeModel}) as the GGUF file `out` (see the module comment for the layout). Everything
 * is checked before the file is opened; tensors then stream one at a time; on any error the
 * partial file is removed.
 *
 * Errors: `out` is a directory → E_IO; not a llama model, a tokenizer other than tersor's
 * byte-level one, low-rank adapters (GGUF has no place for them), a quantized scheme without a
 * ggml type → E_FORMAT / E_RANGE; rows a block type does not divide → E_SHAPE.
 */
export async function exportGguf(dir: string, out: string, options: GgufExportOptions = {}): Promise<GgufExportReport> {
  const parsed = GgufExportOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `GGUF export options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  if (typeof out !== "string" || out.length === 0) throw new TersorError("E_RANGE", "GGUF export: the output path must be a non-empty string");
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) throw new TersorError("E_IO", `GGUF export: ${out} is a directory; give a file path (e.g. model.gguf)`);
  const cfgPath = join(dir, "config.json");
  if (!(await pathExists(cfgPath))) throw new TersorError("E_IO", `GGUF export: ${dir} has no config.json (not a Hugging Face model directory)`);
  const cfg = (await readJson(cfgPath)) as Record<string, unknown>;
  const spec = parseHfConfig(cfg, cfgPath);
  checkLlama(spec, dir);
  const t = spec.transformer;
  // The tokenizer: only tersor's byte-level one maps exactly onto a llama.cpp vocabulary.
  const tokPath = join(dir, "tokenizer.json");
  if (await pathExists(tokPath)) {
    if (!isByteLevelTokenizerJson(await readJson(tokPath))) throw new TersorError("E_FORMAT", `${tokPath}: GGUF export writes tersor's byte-level tokenizer only (this tokenizer.json is another one)`);
  }
  if (t.vocabSize < BYTE_VOCAB_SIZE) throw new TersorError("E_FORMAT", `${dir}: vocab_size ${t.vocabSize} is smaller than the byte-level vocabulary (${BYTE_VOCAB_SIZE})`);
  let quant: z.infer<typeof QuantizationConfigSchema> | undefined;
  if (cfg["quantization_config"] !== undefined && cfg["quantization_config"] !== null) {
    const q = QuantizationConfigSchema.safeParse(cfg["quantization_config"]);
    if (!q.success) throw new TersorError("E_FORMAT", `${cfgPath}: quantization_config is not tersor's (quant_method "tersor", format_version 1): ${q.error.issues.map((i) => i.message).join("; ")}`);
    quant = q.data;
  }

  const src: SafetensorsSource = await openSafetensorsDir(dir);
  let report: GgufExportReport;
  try {
    const jobs: Job[] = [];
    const used = new Set<string>();
    const pre = src.tensors.some((x) => x.name.startsWith("model.")) ? "model." : "";
    const need = (name: string, shape: number[]) => {
      const info = src.get(name);
      if (!info) throw new TersorError("E_FORMAT", `${dir}: missing tensor "${name}"`);
      if (!sameShape(info.shape, shape)) throw new TersorError("E_SHAPE", `${dir}: tensor "${name}" has shape [${info.shape.join(", ")}], expected [${shape.join(", ")}]`);
      used.add(name);
      return info;
    };
    const floatJob = (source: string, name: string, shape: number[], vector: boolean) => {
      const info = need(source, shape);
      const stored = storedFloatType(info.dtype, `${dir}: tensor "${source}"`);
      // Norms and biases are f32 (llama.cpp's 1-D tensors); matrices keep their dtype unless a float type is asked for.
      const type: GgmlTypeName = vector ? "f32" : o.type !== undefined && FLOAT_TYPES.has(o.type) ? o.type : stored;
      jobs.push({ name, source, shape, type, kind: "float", permuteHeads: 0 });
    };
    const linearJob = (stem: string, name: string, shape: [number, number], permuteHeads: number) => {
      const qweight = `${stem}.qweight`;
      for (const a of [".lora_a", ".lora_b"]) {
        if (src.get(stem + a)) throw new TersorError("E_FORMAT", `${dir}: ${stem} has a low-rank adapter (${stem + a}); GGUF has no place for adapters (quantize without --eora-rank / --lorc-rank for GGUF output)`);
      }
      const qi = src.get(qweight);
      if (qi) {
        if (!quant) throw new TersorError("E_FORMAT", `${dir}: tensor "${qweight}" is quantized but config.json has no quantization_config`);
        const notConverted = (quant as Record<string, unknown>)["modules_to_not_convert"];
        if (Array.isArray(notConverted) && (notConverted.includes(stem) || notConverted.includes(stem.replace(/^model\./, "")))) {
          throw new TersorError("E_FORMAT", `${dir}: ${stem} is listed in quantization_config.modules_to_not_convert but has a quantized ${qweight}`);
        }
        const scheme = quant.modules?.[stem]?.scheme ?? quant.modules?.[stem.replace(/^model\./, "")]?.scheme ?? quant.scheme;
        const type = checkGgufScheme(scheme, `${stem}: scheme`);
        if (FLOAT_TYPES.has(type)) throw new TersorError("E_FORMAT", `${dir}: ${qweight} claims float scheme ${scheme}`);
        const rb = native().quantRowBytes(scheme, shape[1]);
        if (qi.dtype.toLowerCase() !== "u8" || !sameShape(qi.shape, [shape[0], rb])) {
          throw new TersorError("E_SHAPE", `${dir}: tensor "${qweight}" must be U8 [${shape[0]}, ${rb}] (${scheme} rows of ${shape[1]}), got ${qi.dtype} [${qi.shape.join(", ")}]`);
        }
        used.add(qweight);
        jobs.push({ name, source: qweight, shape, type, kind: "quantized", permuteHeads, scheme });
        return;
      }
      const info = need(`${stem}.weight`, shape);
      const stored = storedFloatType(info.dtype, `${dir}: tensor "${stem}.weight"`);
      let type: GgmlTypeName = o.type ?? stored;
      if (!FLOAT_TYPES.has(type) && shape[1] % ggmlTypeByName(type)!.blockSize !== 0) {
        if (o.fallbackType === undefined) throw new TersorError("E_SHAPE", `${dir}: ${stem}.weight has rows of ${shape[1]}, which the blocks of ${type} (${ggmlTypeByName(type)!.blockSize}) do not divide (give a fallback type)`);
        type = o.fallbackType;
        if (!FLOAT_TYPES.has(type) && shape[1] % ggmlTypeByName(type)!.blockSize !== 0) throw new TersorError("E_SHAPE", `${dir}: ${stem}.weight has rows of ${shape[1]}, which the fallback ${type} does not divide either`);
      }
      jobs.push({ name, source: `${stem}.weight`, shape, type, kind: FLOAT_TYPES.has(type) ? "float" : "rtn", permuteHeads, ...(FLOAT_TYPES.has(type) ? {} : { scheme: type }) });
    };
    const C = t.hidden;
    const qOut = t.heads * t.headDim;
    const kvOut = t.kvHeads * t.headDim;
    const F = t.intermediate;
    const permute = t.rope!.style === "neox";
    floatJob(`${pre}embed_tokens.weight`, "token_embd.weight", [t.vocabSize, C], false);
    for (let l = 0; l < t.layers; l++) {
      const p = `${pre}layers.${l}.`;
      const b = `blk.${l}.`;
      floatJob(p + "input_layernorm.weight", b + "attn_norm.weight", [C], true);
      for (const [hf, gg] of LINEARS) {
        const shape: [number, number] = hf === "self_attn.q_proj" ? [qOut, C] : hf === "self_attn.k_proj" || hf === "self_attn.v_proj" ? [kvOut, C] : hf === "self_attn.o_proj" ? [C, qOut] : hf === "mlp.down_proj" ? [C, F] : [F, C];
        const heads = !permute ? 0 : hf === "self_attn.q_proj" ? t.heads : hf === "self_attn.k_proj" ? t.kvHeads : 0;
        linearJob(p + hf, b + gg + ".weight", shape, heads);
        if (t.qkvBias && (hf === "self_attn.q_proj" || hf === "self_attn.k_proj" || hf === "self_attn.v_proj")) {
          floatJob(p + hf + ".bias", b + gg + ".bias", [shape[0]], true);
          if (heads) jobs[jobs.length - 1]!.permuteHeads = heads;
        }
      }
      floatJob(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", [C], true);
    }
    floatJob(`${pre}norm.weight`, "output_norm.weight", [C], true);
    if (!t.tieEmbeddings) {
      const name = src.get("lm_head.weight") ? "lm_head.weight" : `${pre}lm_head.weight`;
      floatJob(name, "output.weight", [t.vocabSize, C], false);
    } else if (src.get("lm_head.weight")) used.add("lm_head.weight");
    const unused = src.tensors.map((x) => x.name).filter((n) => !used.has(n) && !/rotary_emb\.inv_freq$/.test(n));
    if (unused.length > 0) throw new TersorError("E_FORMAT", `${dir}: tensors GGUF export does not know where to put: ${unused.slice(0, 5).join(", ")}${unused.length > 5 ? ` and ${unused.length - 5} more` : ""}`);

    // general.file_type: the type of the (first) linear; llama.cpp only reports it.
    const linearType = jobs.find((j) => /^blk\.0\.attn_q\.weight$/.test(j.name))!.type as GgufScheme;
    const fileType = GGUF_FILE_TYPES[linearType];
    const name = o.name ?? (dir.replace(/[/\\]+$/, "").split(/[/\\]/).pop() || "model");
    const md = llamaGgufMetadata(spec, name, fileType);

    const writer = await openGgufWriter(out, md, jobs);
    const bar = progress({ label: "gguf", total: jobs.length, unit: "tensors", ...(o.progress ? { mode: o.progress } : {}) });
    const mse = new Map<string, number>();
    let sourceBytes = 0;
    try {
      for (const j of jobs) {
        let bytes: Uint8Array;
        let rowBytes: number;
        sourceBytes += src.get(j.source)!.byteLength;
        if (j.kind === "quantized") {
          bytes = await src.readBytes(j.source);
          rowBytes = bytes.byteLength / j.shape[0]!;
        } else {
          const tensor = await src.read(j.source);
          const data = tensor.to("f32").data as Float32Array;
          for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) throw new TersorError("E_RANGE", `${dir}: tensor "${j.source}" holds a non-finite value at element ${i}`);
          let back: Float32Array | undefined;
          if (j.kind === "rtn") {
            bytes = await quantizeTensor(data, j.shape[0]!, j.shape[1]!, j.scheme!);
            back = await native().dequantizeTensor(bytes, j.shape[0]!, j.shape[1]!, j.scheme!);
          } else {
            const typed = j.type === "f32" ? new Tensor("f32", j.shape, data) : tensor.to(j.type as "f16" | "bf16");
            bytes = typed.bytes();
            if (j.shape.length === 2 && typed.dtype !== tensor.dtype && j.name.startsWith("blk.")) back = typed.toFloat32Array();
          }
          if (back) {
            let e = 0;
            for (let i = 0; i < data.length; i++) e += (data[i]! - back[i]!) ** 2;
            mse.set(j.name, e / data.length);
          }
          rowBytes = bytes.byteLength / j.shape[0]!;
        }
        if (j.permuteHeads > 0) bytes = permuteRopeRows(bytes, j.shape[0]!, rowBytes, j.permuteHeads);
        await writer.writeTensor(j.name, bytes);
        bar.tick();
      }
      await writer.commit();
    } catch (e) {
      await writer.abort();
      throw e;
    } finally {
      bar.stop();
    }
    report = {
      path: out,
      tensors: jobs.map((j) => ({ name: j.name, source: j.source, shape: [...j.shape], type: j.type, bytes: writer.sizes.get(j.name)!, ...(mse.has(j.name) ? { weightMse: mse.get(j.name)! } : {}) })),
      fileBytes: (await stat(out)).size,
      fileType,
      sourceBytes,
    };
  } finally {
    await src.close();
  }
  return report;
}

/**
 * `tersor quantize`'s report for a GGUF written straight from a float model (`--scheme f16|bf16|f32`:
 * no calibration, so the calibration output errors are NaN — `null` in JSON): per linear the weight
 * MSE of the conversion, sizes before (source tensors) and after (the file), bits per linear weight.
 */
export function ggufExportReport(r: GgufExportReport, scheme: string, seconds: number): QuantizeModelReport {
  const linears = r.tensors.filter((t) => /^blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(t.name));
  const weights = linears.reduce((a, t) => a + t.shape[0]! * t.shape[1]!, 0);
  return {
    scheme,
    method: "none",
    samples: 0,
    calibrationTokens: 0,
    linears: linears.map((t) => ({
      name: t.source.replace(/\.weight$/, ""),
      scheme: t.type,
      rows: t.shape[0]!,
      cols: t.shape[1]!,
      bitsPerWeight: (8 * t.bytes) / (t.shape[0]! * t.shape[1]!),
      weightMse: t.weightMse ?? 0,
      outputError: Number.NaN,
      rtnOutputError: Number.NaN,
      adapterRank: 0,
    })),
    bytesBefore: r.sourceBytes,
    bytesAfter: r.fileBytes,
    bitsPerWeight: (8 * linears.reduce((a, t) => a + t.bytes, 0)) / weights,
    peakRssBytes: process.memoryUsage().rss,
    seconds,
  };
}
