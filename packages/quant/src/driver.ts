/**
 * The model-level driver of `tersor quantize`: a Hugging Face Llama-family directory in, a quantized
 * Hugging Face directory out (the layout documented in ./formats.ts: `<linear>.qweight` U8 rows,
 * optional `<linear>.lora_a` / `<linear>.lora_b` adapters, `quantization_config` in config.json).
 *
 * Layer by layer and sequential, as GPTQ's reference: the Grams XᵀX of layer l's linear inputs are
 * captured with layers 0..l−1 already replaced by their quantized values (plus adapters), so each
 * layer is calibrated on the inputs the quantized model will really see. Only one float copy of the
 * model exists (in the runtime); each linear is read from the checkpoint when its turn comes, and
 * the runtime's copy is overwritten with its quantized values. Nothing is written until every layer
 * is done, and then atomically, so an error never leaves a partial output.
 *
 * Methods: `rtn`, `gptq`, `awq` (activation-aware per-input-channel scales, folded so the float model
 * is unchanged, then RTN; see {@link quantizeModel}) and `hqq` (no calibration needed; integer
 * asymmetric schemes). With `rotate: "hadamard"` the model is first rotated (./rotate.ts: RMSNorm gains
 * folded, embeddings untied, residual stream rotated by a randomised Walsh–Hadamard Q) and the rotated
 * weights are quantized; the output directory holds the rotated model, which loads unchanged.
 *
 * Linears whose rows no block of the scheme fits take the `fallback`; a float fallback (`f16`, `bf16`,
 * `f32`, what llama.cpp does for such tensors) keeps them as plain float tensors of that dtype, listed
 * in `quantization_config.modules_to_not_convert` and never calibrated.
 *
 * The runtime of the `model` passed in is overwritten (quantized, and rotated / rescaled weights):
 * load the output directory to use the quantized model.
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { Tensor, TersorError, openSafetensorsDir, progress, writeFileAtomic, writeSafetensors, type ProgressMode } from "@tersor/core";
import type { Model } from "@tersor/model";
import { native } from "@tersor/native";
import { z } from "zod";

import { awqSearch, difference, eora, gptq, hqq, lorc, lowRankProduct, outputError, rtn, type QuantizedWeight } from "./methods.js";
import { copyTokenizer, openRotatedCheckpoint, type RotatedCheckpoint } from "./rotate.js";

const LINEARS = [
  ["q", "self_attn.q_proj"],
  ["k", "self_attn.k_proj"],
  ["v", "self_attn.v_proj"],
  ["o", "self_attn.o_proj"],
  ["gate", "mlp.gate_proj"],
  ["up", "mlp.up_proj"],
  ["down", "mlp.down_proj"],
] as const;

export const QuantizeModelOptionsSchema = z
  .object({
    scheme: z.string().min(1).max(64),
    method: z.enum(["rtn", "gptq", "awq", "hqq"]).default("gptq"),
    /**
     * Scheme for linears whose row length the scheme's block does not divide; absent = error.
     * `f16`, `bf16` or `f32` keeps such linears in float (llama.cpp's choice for tensors no block
     * fits): written as a plain `<linear>.weight` of that dtype, listed in quantization_config's
     * `modules_to_not_convert` (as Hugging Face's quantizers do), never calibrated.
     */
    fallback: z.string().min(1).max(64).optional(),
    eoraRank: z.number().int().min(1).optional(),
    lorcRank: z.number().int().min(1).optional(),
    rotate: z.enum(["none", "hadamard"]).default("none"),
    /** Seed of the rotation's random signs. */
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    /** AWQ: points of the α grid {0, 1/grid, …}. */
    awqGrid: z.number().int().min(1).max(1000).default(20),
    /** AWQ: use this α for every group instead of searching (s = mean|x|^α / √(max·min), as the search's). */
    awqAlpha: z.number().min(0).max(1).optional(),
    /**
     * Write the transformed float weights (rotated and / or AWQ-scaled, `<linear>.weight` f32) instead
     * of the quantized ones: the same function as the input model, for checking the folds. The
     * calibration still runs on the quantized layers, so the scales are the ones quantization uses.
     */
    floatOutput: z.boolean().default(false),
    damp: z.number().min(0).max(10).default(0.01),
    actOrder: z.boolean().default(false),
    progress: z.enum(["bar", "json", "silent"]).optional(),
  })
  .strict();
export type QuantizeModelOptions = z.input<typeof QuantizeModelOptionsSchema>;

/** One linear's line in the report. */
export interface LinearReport {
  name: string;
  scheme: string;
  rows: number;
  cols: number;
  bitsPerWeight: number;
  weightMse: number;
  /** Calibration output error per calibration row, ‖X(W − Ŵ)ᵀ‖² / N (with the adapter, if any). */
  outputError: number;
  /** The same for plain RTN with the same scheme (the baseline every method must beat). */
  rtnOutputError: number;
  adapterRank: number;
  /** AWQ: the α of the group this linear was scaled with (0 = plain RTN). */
  awqAlpha?: number;
}

export interface QuantizeModelReport {
  scheme: string;
  method: string;
  samples: number;
  calibrationTokens: number;
  linears: LinearReport[];
  bytesBefore: number;
  bytesAfter: number;
  /** Bits per linear weight (packed rows plus adapters; 16 / 32 for linears kept in float by the fallback), over all linears. */
  bitsPerWeight: number;
  peakRssBytes: number;
  seconds: number;
  /** The rotation applied before quantization, if any. */
  rotation?: { kind: "hadamard"; seed: number; block: number };
}

/** Schemes HQQ can write: integer asymmetric (per channel or group) and ggml's Q4_1 / Q5_1 (d·q + m per 32). */
function hqqSchemeOk(scheme: string): { bits: number; group: number; kind: "int" | "q_1" } | undefined {
  const info = native().quantSchemeInfo(scheme);
  if (info.format === "q4_1") return { bits: 4, group: 32, kind: "q_1" };
  if (info.format === "q5_1") return { bits: 5, group: 32, kind: "q_1" };
  if (info.format !== "int" || info.symmetric || info.perTensor) return undefined;
  return { bits: info.bits, group: info.group, kind: "int" };
}

/** Fallback schemes that keep a linear in float (stored as a tensor of that dtype). */
const FLOAT_FALLBACKS = ["f16", "bf16", "f32"] as const;
type FloatFallback = (typeof FLOAT_FALLBACKS)[number];
const isFloatScheme = (s: string): s is FloatFallback => (FLOAT_FALLBACKS as readonly string[]).includes(s);

const HQQ_SCHEMES = "q4_1, q5_1, int<2..8>-asym, int<2..8>-g32-asym, -g64-asym, -g128-asym";

const toF16 = (x: Float32Array): Uint16Array => new Tensor("f32", [x.length], x).to("f16").data as Uint16Array;
const fromF16 = (x: Uint16Array): Float32Array => new Tensor("f16", [x.length], x).to("f32").data as Float32Array;

/**
 * HQQ (Badri & Shaji 2023) of one linear, stored in the scheme's layout (value = scale·(code − zero)
 * per group with HQQ's real-valued zero):
 *  - ggml Q4_1 / Q5_1 (value = d·q + m per block of 32) hold it directly: d = f16(scale),
 *    m = f16(−scale·zero), codes re-snapped to the stored grid;
 *  - tersor's integer asymmetric layout (f16 scale d, u8 zero point z, packed codes) stores an integer
 *    zero point: per group z ∈ {⌊zero⌋, ⌈zero⌉} (the one with the lower squared error), with the codes
 *    re-snapped and the scale refitted by least squares to them (two rounds), since rounding HQQ's
 *    zero alone costs more than HQQ gains.
 * The values returned are the format's own dequantization of the bytes.
 */
async function hqqPacked(w: Tensor<"f32">, scheme: string): Promise<QuantizedWeight> {
  const s = hqqSchemeOk(scheme)!;
  const [rows, cols] = w.shape as [number, number];
  const g = s.group === 0 ? cols : s.group;
  if (cols % g !== 0) throw new TersorError("E_SHAPE", `hqq: ${scheme} groups of ${g} do not divide rows of ${cols}`);
  const r = await hqq(w, { bits: s.bits, group: s.group === 0 ? 0 : g });
  const groups = cols / g;
  const maxq = (1 << s.bits) - 1;
  const rb = native().quantRowBytes(scheme, cols);
  const q = new Uint8Array(rows * rb);
  const x = w.data as Float32Array;
  const codes = new Uint8Array(g);
  if (s.kind === "q_1") {
    const d = fromF16(toF16(r.scale));
    const m16 = toF16(Float32Array.from(r.scale, (sc, i) => -sc * r.zero[i]!));
    const m = fromF16(m16);
    const d16 = toF16(d);
    const blockBytes = s.bits === 4 ? 20 : 24;
    if (rb !== groups * blockBytes) throw new TersorError("E_NATIVE", `hqq: ${scheme} rows are ${rb} bytes, expected ${groups} blocks of ${blockBytes}`);
    for (let i = 0; i < rows; i++)
      for (let k = 0; k < groups; k++) {
        const gi = i * groups + k;
        const off = i * rb + k * blockBytes;
        const inv = d[gi]! !== 0 ? 1 / d[gi]! : 0;
        for (let j = 0; j < 32; j++) codes[j] = Math.min(maxq, Math.max(0, Math.round((x[i * cols + k * 32 + j]! - m[gi]!) * inv)));
        q[off] = d16[gi]! & 0xff;
        q[off + 1] = d16[gi]! >> 8;
        q[off + 2] = m16[gi]! & 0xff;
        q[off + 3] = m16[gi]! >> 8;
        let qs = off + 4;
        if (s.bits === 5) {
          let qh = 0;
          for (let j = 0; j < 32; j++) if (codes[j]! & 0x10) qh |= 1 << j;
          q[off + 4] = qh & 0xff;
          q[off + 5] = (qh >>> 8) & 0xff;
          q[off + 6] = (qh >>> 16) & 0xff;
          q[off + 7] = (qh >>> 24) & 0xff;
          qs = off + 8;
        }
        for (let j = 0; j < 16; j++) q[qs + j] = (codes[j]! & 0x0f) | ((codes[j + 16]! & 0x0f) << 4);
      }
  } else {
    const codeBytes = Math.ceil((g * s.bits) / 8);
    const groupBytes = 3 + codeBytes;
    if (rb !== groups * groupBytes) throw new TersorError("E_NATIVE", `hqq: ${scheme} rows are ${rb} bytes, expected ${groups} groups of ${groupBytes}`);
    const best = new Uint8Array(g);
    for (let i = 0; i < rows; i++)
      for (let k = 0; k < groups; k++) {
        const gi = i * groups + k;
        const xs = x.subarray(i * cols + k * g, i * cols + (k + 1) * g);
        let bestErr = Infinity;
        let bestD = 0;
        let bestZ = 0;
        for (const z0 of [Math.floor(r.zero[gi]!), Math.ceil(r.zero[gi]!)]) {
          const z = Math.min(255, Math.max(0, z0));
          let dd = r.scale[gi]!;
          for (let round = 0; round < 3; round++) {
            const d = fromF16(toF16(Float32Array.of(dd)))[0]!;
            const inv = d !== 0 ? 1 / d : 0;
            let err = 0;
            let num = 0;
            let den = 0;
            for (let j = 0; j < g; j++) {
              const c = Math.min(maxq, Math.max(0, Math.round(xs[j]! * inv + z)));
              codes[j] = c;
              err += (xs[j]! - d * (c - z)) ** 2;
              num += xs[j]! * (c - z);
              den += (c - z) ** 2;
            }
            if (err < bestErr) {
              bestErr = err;
              bestD = d;
              bestZ = z;
              best.set(codes);
            }
            if (den === 0) break;
            dd = num / den;
          }
        }
        const off = i * rb + k * groupBytes;
        const d16 = toF16(Float32Array.of(bestD))[0]!;
        q[off] = d16 & 0xff;
        q[off + 1] = d16 >> 8;
        q[off + 2] = bestZ;
        let bit = 0;
        for (let j = 0; j < g; j++) for (let b = 0; b < s.bits; b++, bit++) if ((best[j]! >> b) & 1) q[off + 3 + (bit >> 3)]! |= 1 << (bit & 7);
      }
  }
  const deq = await native().dequantizeTensor(q, rows, cols, scheme);
  return { scheme, q, values: new Tensor("f32", [rows, cols], deq) };
}

/** Per-column mean |x| of raw captured inputs [n, cols]. */
function meanAbs(t: Tensor<"f32">): Float32Array {
  const [n, cols] = t.shape as [number, number];
  const x = t.data as Float32Array;
  const acc = new Float64Array(cols);
  for (let i = 0; i < n; i++) for (let j = 0; j < cols; j++) acc[j]! += Math.abs(x[i * cols + j]!);
  return Float32Array.from(acc, (v) => v / Math.max(1, n));
}

/** diag(1/s) G diag(1/s): the Gram of inputs divided by s. */
function scaleGram(g: Tensor<"f64">, s: Float32Array): Tensor<"f64"> {
  const n = s.length;
  const a = g.data as Float64Array;
  const out = new Float64Array(a.length);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = a[i * n + j]! / (s[i]! * s[j]!);
  return new Tensor("f64", [n, n], out);
}

/** diag(r) W diag(c) (either may be undefined = ones) as a new f32 Tensor. */
function rescale(w: Tensor<"f32">, r: Float32Array | undefined, c: Float32Array | undefined): Tensor<"f32"> {
  const [rows, cols] = w.shape as [number, number];
  const x = w.data as Float32Array;
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) {
    const ri = r ? r[i]! : 1;
    for (let j = 0; j < cols; j++) out[i * cols + j] = x[i * cols + j]! * ri * (c ? c[j]! : 1);
  }
  return new Tensor("f32", [rows, cols], out);
}

const inv = (s: Float32Array): Float32Array => Float32Array.from(s, (v) => 1 / v);

const RUNTIME_NAME: Record<string, string> = { "model.embed_tokens.weight": "embed", "model.norm.weight": "finalNorm.weight", "lm_head.weight": "lmHead" };
function runtimeName(hf: string): string | undefined {
  if (RUNTIME_NAME[hf]) return RUNTIME_NAME[hf];
  const m = /^model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight$/.exec(hf);
  if (m) return `layers.${m[1]}.${m[2] === "input_layernorm" ? "attnNorm" : "mlpNorm"}.weight`;
  const b = /^model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.bias$/.exec(hf);
  if (b) return `layers.${b[1]}.${b[2]}.bias`;
  return undefined;
}

/**
 * Quantizes `model` (loaded from the Hugging Face directory `dir`) with calibration `sequences`
 * (token ids), writing the quantized directory to `out`.
 *
 * `method: "awq"` (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization for LLM Compression and
 * Acceleration", Sec. 3.2): per layer, on the layer's calibration inputs (captured with the earlier
 * layers already quantized), a per-input-channel scale s = mean|x|^α is searched over the α grid for
 * each group of linears sharing an input, minimising the group's summed output error of
 * Q(W·diag(s))·diag(s)⁻¹ (α = 0 is RTN). The scales are folded so the float model is unchanged:
 * q/k/v share input_layernorm (gain ← gain / s, columns ← columns · s), gate/up share
 * post_attention_layernorm, o_proj's input scale goes into v_proj's output rows (one scale per v
 * channel: with grouped-query attention a v row feeds the o_proj columns of every query head of its
 * group, so the search sees the mean |x| of those columns averaged and every one of them gets that v
 * channel's scale), and down_proj's into up_proj's output rows. The scaled linears are then quantized
 * with RTN. The report's errors are in the original (unscaled) coordinates, with the original Gram.
 *
 * `method: "hqq"` (Badri & Shaji 2023): needs no calibration; schemes with a zero point only
 * (`q4_1`, `q5_1`, `int<b>-asym`, `int<b>-g<32|64|128>-asym`), see `hqqPacked` in methods.ts.
 */
export async function quantizeModel(model: Model, dir: string, sequences: number[][], out: string, options: QuantizeModelOptions): Promise<QuantizeModelReport> {
  const parsed = QuantizeModelOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `quantize options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  const t0 = Date.now();
  if (model.architecture === "gpt2") throw new TersorError("E_FORMAT", "quantize: GPT-2 checkpoints are not supported by the driver (Llama, Mistral and Qwen2 are)");
  if (o.eoraRank !== undefined && o.lorcRank !== undefined) throw new TersorError("E_RANGE", "quantize: give at most one of eoraRank and lorcRank");
  if (sequences.length === 0) throw new TersorError("E_RANGE", "quantize: no calibration sequences");
  if (o.floatOutput && (o.eoraRank !== undefined || o.lorcRank !== undefined)) throw new TersorError("E_RANGE", "quantize: floatOutput writes float weights; it takes no eoraRank / lorcRank");
  // Validates the scheme names early (E_RANGE listing the valid ones).
  if (isFloatScheme(o.scheme)) throw new TersorError("E_RANGE", `quantize: scheme ${o.scheme} is a float type, not a quantization scheme (float types are fallbacks only; a float model needs no quantize, or write a GGUF with --scheme ${o.scheme})`);
  native().quantRowBytes(o.scheme, 256 * 1024);
  const floatFallback = o.fallback !== undefined && isFloatScheme(o.fallback);
  if (o.fallback && !floatFallback) native().quantRowBytes(o.fallback, 256 * 1024);
  if (o.method === "hqq") {
    for (const s of [o.scheme, ...(o.fallback && !floatFallback ? [o.fallback] : [])])
      if (!hqqSchemeOk(s)) throw new TersorError("E_RANGE", `quantize: method hqq writes schemes with a zero point only (${HQQ_SCHEMES}); got ${s}`);
  }
  const schemeFor = (cols: number, name: string): string => {
    try {
      native().quantRowBytes(o.scheme, cols);
      return o.scheme;
    } catch (e) {
      if (o.fallback === undefined) throw new TersorError("E_SHAPE", `quantize: ${name} has rows of ${cols}, which the blocks of ${o.scheme} do not divide (give a fallback scheme for such linears)`, { cause: e });
      if (!isFloatScheme(o.fallback)) {
        try {
          native().quantRowBytes(o.fallback, cols);
        } catch (e2) {
          throw new TersorError("E_SHAPE", `quantize: ${name} has rows of ${cols}, which the blocks of neither ${o.scheme} nor the fallback ${o.fallback} divide (a float fallback, f16 | bf16 | f32, fits every row)`, { cause: e2 });
        }
      }
      return o.fallback;
    }
  };
  const cfgIn = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const src = await openSafetensorsDir(dir);
  let rc: RotatedCheckpoint | undefined;
  const outTensors = new Map<string, Tensor>();
  const modules: Record<string, { scheme: string }> = {};
  /** Linears kept in float by a float fallback (quantization_config.modules_to_not_convert). */
  const notConverted: string[] = [];
  const linears: LinearReport[] = [];
  let bytesBefore = 0;
  let bytesAfter = 0;
  let qWeights = 0;
  let qBits = 0;
  let peak = process.memoryUsage().rss;
  const L = model.config.layers;
  const bar = progress({ label: "quantize", total: L, unit: "layers", ...(o.progress ? { mode: o.progress } : {}) });
  const setRuntime = (name: string, t: Tensor) => {
    const f = t.to("f32");
    model.runtime.setWeight(name as Parameters<typeof model.runtime.setWeight>[0], f.data as Float32Array, "f32", [...f.shape]);
  };
  /** A linear's float weight (rotated when rotating), checked. */
  const readLinear = async (name: string): Promise<Tensor<"f32">> => {
    const info = src.get(`${name}.weight`);
    if (!info) throw new TersorError("E_FORMAT", `quantize: the checkpoint has no ${name}.weight`);
    if (info.dtype !== "F32" && info.dtype !== "F16" && info.dtype !== "BF16") throw new TersorError("E_DTYPE", `quantize: ${name}.weight has dtype ${info.dtype}; supported: F32, F16, BF16`);
    const w = (rc ? await rc.read(`${name}.weight`) : (await src.read(`${name}.weight`)).to("f32")) as Tensor<"f32">;
    const data = w.data as Float32Array;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) throw new TersorError("E_RANGE", `quantize: ${name}.weight holds a non-finite value at element ${i}`);
    return w;
  };
  try {
    if (o.rotate === "hadamard") rc = await openRotatedCheckpoint(dir, { seed: o.seed });
    const isLinear = new Set<string>();
    for (let l = 0; l < L; l++) for (const [, hf] of LINEARS) isLinear.add(`model.layers.${l}.${hf}.weight`);
    for (const info of src.tensors) bytesBefore += info.byteLength;
    for (const name of rc ? rc.names : src.tensors.map((t) => t.name)) {
      if (isLinear.has(name)) continue;
      const t = rc ? await rc.read(name) : await src.read(name);
      bytesAfter += t.byteLength;
      outTensors.set(name, t);
      if (rc) {
        // The runtime runs the rotated model for calibration (its untied head only when it has one;
        // the capture never reaches the head).
        const rn = runtimeName(name);
        if (rn && !(rn === "lmHead" && model.config.tieEmbeddings)) setRuntime(rn, t);
      }
    }
    const { heads, kvHeads, headDim } = model.config;
    for (let l = 0; l < L; l++) {
      // This layer's float weights (rotated: set into the runtime before capturing its inputs).
      const w = new Map<string, Tensor<"f32">>();
      for (const [short, hf] of LINEARS) {
        const t = await readLinear(`model.layers.${l}.${hf}`);
        w.set(short, t);
        if (rc) setRuntime(`layers.${l}.${short}.weight`, t);
      }
      const cap = await model.captureLinearInputs(sequences, { layers: [l], accumulate: "gram" });
      const grams = new Map<string, { g: Tensor<"f64">; n: number }>();
      for (const [short] of LINEARS) {
        const key = `layers.${l}.${short}`;
        const g = cap.tensors.get(key) as Tensor<"f64"> | undefined;
        const n = cap.rows.get(key) ?? 0;
        if (!g || n === 0) throw new TersorError("E_NATIVE", `quantize: no calibration inputs captured for ${key}`);
        grams.set(short, { g, n });
      }
      // AWQ: search and fold the scales (row scale r, column scale c per linear: W' = diag(r) W diag(c)).
      const rowScale = new Map<string, Float32Array>();
      const colScale = new Map<string, Float32Array>();
      const alphaOf = new Map<string, number>();
      if (o.method === "awq") {
        const raw = await model.captureLinearInputs(sequences, { layers: [l], accumulate: "raw" });
        const m = (short: string) => meanAbs(raw.tensors.get(`layers.${l}.${short}`) as Tensor<"f32">);
        // A group kept in float (float fallback) is not scaled: undefined = no scale searched or folded.
        const search = async (group: string[], mean: Float32Array, gram: Tensor<"f64">): Promise<Float32Array | undefined> => {
          const cols = mean.length;
          const scheme = schemeFor(cols, `model.layers.${l} ${group.join("/")}`);
          if (isFloatScheme(scheme)) return undefined;
          if (o.awqAlpha !== undefined) {
            // The search's scale formula at the given alpha.
            const p = Float32Array.from(mean, (v) => Math.max(1e-4, v ** o.awqAlpha!));
            let lo = Infinity;
            let hi = 0;
            for (const v of p) {
              lo = Math.min(lo, v);
              hi = Math.max(hi, v);
            }
            const norm = Math.sqrt(lo * hi);
            for (const s of group) alphaOf.set(s, o.awqAlpha);
            return p.map((v) => v / norm);
          }
          const r = await awqSearch(group.map((s) => w.get(s)!), gram, mean, scheme, o.awqGrid);
          for (const s of group) alphaOf.set(s, r.alpha);
          return r.scales;
        };
        const inIn = m("q");
        const sQkv = await search(["q", "k", "v"], inIn, grams.get("q")!.g);
        // o_proj: one scale per v channel (GQA: the o columns of every query head in a group share it).
        const mo = m("o");
        const per = heads / kvHeads;
        const mv = new Float32Array(kvHeads * headDim);
        for (let h = 0; h < heads; h++) for (let j = 0; j < headDim; j++) mv[Math.floor(h / per) * headDim + j]! += mo[h * headDim + j]! / per;
        const moTied = new Float32Array(heads * headDim);
        for (let h = 0; h < heads; h++) for (let j = 0; j < headDim; j++) moTied[h * headDim + j] = mv[Math.floor(h / per) * headDim + j]!;
        const sO = await search(["o"], moTied, grams.get("o")!.g);
        let sV: Float32Array | undefined;
        if (sO) {
          sV = new Float32Array(kvHeads * headDim);
          for (let h = 0; h < heads; h++) for (let j = 0; j < headDim; j++) sV[Math.floor(h / per) * headDim + j] = sO[h * headDim + j]!;
        }
        const sMlp = await search(["gate", "up"], m("gate"), grams.get("gate")!.g);
        const sDown = await search(["down"], m("down"), grams.get("down")!.g);
        if (sQkv) for (const s of ["q", "k", "v"]) colScale.set(s, sQkv);
        if (sO) colScale.set("o", sO);
        if (sV) rowScale.set("v", inv(sV));
        if (sMlp) for (const s of ["gate", "up"]) colScale.set(s, sMlp);
        if (sDown) {
          colScale.set("down", sDown);
          rowScale.set("up", inv(sDown));
        }
        // Fold into the norms (and the v bias, when the model has one).
        for (const [norm, s] of [["input_layernorm", sQkv], ["post_attention_layernorm", sMlp]] as const) {
          if (!s) continue;
          const name = `model.layers.${l}.${norm}.weight`;
          const g = (outTensors.get(name) as Tensor).to("f32").data as Float32Array;
          const t = new Tensor("f32", [g.length], Float32Array.from(g, (v, j) => v / s[j]!));
          bytesAfter += t.byteLength - outTensors.get(name)!.byteLength;
          outTensors.set(name, t);
          setRuntime(runtimeName(name)!, t);
        }
        const vb = `model.layers.${l}.self_attn.v_proj.bias`;
        if (sV && outTensors.has(vb)) {
          const b = outTensors.get(vb)!.to("f32").data as Float32Array;
          const t = new Tensor("f32", [b.length], Float32Array.from(b, (v, j) => v / sV[j]!));
          bytesAfter += t.byteLength - outTensors.get(vb)!.byteLength;
          outTensors.set(vb, t);
          setRuntime(runtimeName(vb)!, t);
        }
      }
      for (const [short, hf] of LINEARS) {
        const name = `model.layers.${l}.${hf}`;
        const w0 = w.get(short)!;
        const [rows, cols] = w0.shape as [number, number];
        const { g: gram0, n } = grams.get(short)!;
        const r = rowScale.get(short);
        const c = colScale.get(short);
        // The weight and Gram the quantizer sees (scaled by AWQ; otherwise the originals).
        const wq = r || c ? rescale(w0, r, c) : w0;
        const gram = c ? scaleGram(gram0, c) : gram0;
        const scheme = schemeFor(cols, name);
        if (isFloatScheme(scheme)) {
          // Float fallback: the linear stays as it is, in the fallback's dtype; no calibration, no adapter.
          const kept = scheme === "f32" || o.floatOutput ? w0 : w0.to(scheme);
          const values = (kept === w0 ? w0 : kept.to("f32")) as Tensor<"f32">;
          outTensors.set(`${name}.weight`, kept);
          notConverted.push(name);
          bytesAfter += kept.byteLength;
          qBits += 8 * kept.byteLength;
          qWeights += rows * cols;
          const d0 = w0.data as Float32Array;
          let mse = 0;
          for (let i = 0; i < d0.length; i++) mse += (d0[i]! - values.data[i]!) ** 2;
          const err = (await outputError(w0, values, gram0)) / n;
          linears.push({ name, scheme, rows, cols, bitsPerWeight: (8 * kept.byteLength) / (rows * cols), weightMse: mse / d0.length, outputError: err, rtnOutputError: err, adapterRank: 0 });
          setRuntime(`layers.${l}.${short}.weight`, values);
          continue;
        }
        if (scheme !== o.scheme) modules[name] = { scheme };
        const q = o.method === "gptq" ? await gptq(wq, gram, n, scheme, { damp: o.damp, actOrder: o.actOrder }) : o.method === "hqq" ? await hqqPacked(wq, scheme) : await rtn(wq, scheme);
        let values: Tensor<"f32"> = q.values;
        let rank = 0;
        if (o.eoraRank !== undefined || o.lorcRank !== undefined) {
          rank = Math.min(o.eoraRank ?? o.lorcRank!, rows, cols);
          const e = difference(wq, q.values);
          const f = o.eoraRank !== undefined ? await eora(e, gram, rank) : await lorc(e, rank);
          const ba = lowRankProduct(f);
          const v = new Float32Array(rows * cols);
          for (let i = 0; i < v.length; i++) v[i] = q.values.data[i]! + ba.data[i]!;
          values = new Tensor("f32", [rows, cols], v);
          outTensors.set(`${name}.lora_a`, f.a);
          outTensors.set(`${name}.lora_b`, f.b);
          bytesAfter += f.a.byteLength + f.b.byteLength;
          qBits += 8 * (f.a.byteLength + f.b.byteLength);
        }
        if (o.floatOutput) {
          outTensors.set(`${name}.weight`, wq);
          bytesAfter += wq.byteLength;
        } else {
          outTensors.set(`${name}.qweight`, new Tensor("u8", [rows, q.q.length / rows], q.q));
          bytesAfter += q.q.length;
        }
        qBits += 8 * q.q.length;
        qWeights += rows * cols;
        // Errors in the original coordinates.
        const back = r || c ? rescale(values, r ? inv(r) : undefined, c ? inv(c) : undefined) : values;
        const base = await rtn(w0, scheme);
        const d0 = w0.data as Float32Array;
        let mse = 0;
        for (let i = 0; i < d0.length; i++) mse += (d0[i]! - back.data[i]!) ** 2;
        linears.push({
          name,
          scheme,
          rows,
          cols,
          bitsPerWeight: (8 * q.q.length) / (rows * cols),
          weightMse: mse / d0.length,
          outputError: (await outputError(w0, back, gram0)) / n,
          rtnOutputError: (await outputError(w0, base.values, gram0)) / n,
          adapterRank: rank,
          ...(alphaOf.has(short) ? { awqAlpha: alphaOf.get(short)! } : {}),
        });
        // The next layers are calibrated on this layer's quantized outputs.
        setRuntime(`layers.${l}.${short}.weight`, values);
      }
      peak = Math.max(peak, process.memoryUsage().rss);
      bar.tick();
    }
  } finally {
    bar.stop();
    await src.close();
    if (rc) await rc.close();
  }
  // All computed: write the directory (each file atomically).
  const cfg = rc ? { ...rc.config } : cfgIn;
  const rotation = rc ? { kind: "hadamard" as const, seed: rc.rotation.seed, block: rc.rotation.block } : undefined;
  if (o.floatOutput) cfg["tersor_transform"] = { method: o.method, scheme: o.scheme, ...(rotation ? { rotation } : {}) };
  else cfg["quantization_config"] = {
    quant_method: "tersor",
    format_version: 1,
    scheme: o.scheme,
    method: o.method,
    ...(rotation ? { rotation } : {}),
    ...(Object.keys(modules).length ? { modules } : {}),
    ...(notConverted.length ? { modules_to_not_convert: notConverted } : {}),
  };
  await writeSafetensors(join(out, "model.safetensors"), [...outTensors.entries()], { format: "pt", quantized_by: `tersor ${o.method}${rotation ? " hadamard" : ""}` });
  await copyTokenizer(dir, out);
  await writeFileAtomic(join(out, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
  return {
    scheme: o.scheme,
    method: o.method,
    samples: sequences.length,
    calibrationTokens: sequences.reduce((a, s) => a + s.length, 0),
    linears,
    bytesBefore,
    bytesAfter,
    bitsPerWeight: qBits / qWeights,
    peakRssBytes: Math.max(peak, process.memoryUsage().rss),
    seconds: (Date.now() - t0) / 1000,
    ...(rotation ? { rotation } : {}),
  };
}

/** The report as a markdown table. */
export function reportMarkdown(r: QuantizeModelReport, extra: Record<string, string | number> = {}): string {
  const lines = [
    `# tersor quantize: ${r.method} ${r.scheme}`,
    "",
    `| | |`,
    `|---|---|`,
    `| size before | ${(r.bytesBefore / 1e6).toFixed(3)} MB |`,
    `| size after | ${(r.bytesAfter / 1e6).toFixed(3)} MB |`,
    `| bits per linear weight | ${r.bitsPerWeight.toFixed(3)} |`,
    `| calibration | ${r.samples} sequences, ${r.calibrationTokens} tokens |`,
    `| peak RSS | ${(r.peakRssBytes / 1e6).toFixed(1)} MB |`,
    ...Object.entries(extra).map(([k, v]) => `| ${k} | ${typeof v === "number" ? v.toFixed(5) : v} |`),
    "",
    "| linear | scheme | bits/w | weight MSE | output error | RTN output error | adapter rank |",
    "|---|---|---|---|---|---|---|",
    ...r.linears.map((x) => `| ${x.name} | ${x.scheme} | ${x.bitsPerWeight.toFixed(3)} | ${x.weightMse.toExponential(3)} | ${x.outputError.toExponential(3)} | ${x.rtnOutputError.toExponential(3)} | ${x.adapterRank} |`),
    "",
  ];
  return lines.join("\n");
}
