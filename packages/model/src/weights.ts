/**
 * Checkpoint tensors → the runtime's canonical weights: name mapping, shape checks, GPT-2's Conv1D
 * transposes and fused-QKV split, and streaming one tensor at a time into the runtime.
 */
import { type GgufFile, type SafetensorsSource, Tensor, TersorError, progress, type ProgressMode } from "@tersor/core";
import { native, type TransformerConfig } from "@tersor/native";

import type { ModelArchitecture } from "./config.js";

/** Weight precisions the runtime accepts at `setWeight`. */
export type WeightDType = "f32" | "f16" | "bf16";

/** One tensor as handed to the runtime: f32 values or f16/bf16 bit patterns, row-major. */
export interface LoadedTensor {
  data: Float32Array | Uint16Array;
  dtype: WeightDType;
  shape: number[];
  /** Set when the checkpoint stores the tensor quantized (@tersor/quant formats): its bytes and scheme; `data` then holds the dequantized f32 values. */
  quantized?: { scheme: string; bytes: Uint8Array };
}

/** Where weights go: the runtime (or a test double). */
export interface WeightSink {
  setWeight(name: string, data: Float32Array | Uint16Array, dtype: WeightDType, shape: number[]): void;
  /** When present, quantized linear weights are handed over as they are stored (the runtime multiplies them quantized), with an optional low-rank adapter `y += (x Aᵀ) Bᵀ`. */
  setQuantizedWeight?(name: string, bytes: Uint8Array, scheme: string, loraA?: Float32Array | null, loraB?: Float32Array | null): void;
  missingWeights(): string[];
}

/** A checkpoint's tensors, read one at a time. */
export interface TensorSource {
  /** Where the tensors come from, for messages. */
  readonly where: string;
  names(): string[];
  shape(name: string): readonly number[] | undefined;
  /** Throws (`E_DTYPE`) when the tensor's type cannot be loaded, before any data is read. */
  check(name: string): void;
  read(name: string): Promise<LoadedTensor>;
  /** The stored bytes as they are (quantized checkpoints' `.qweight` tensors). */
  readRaw?(name: string): Promise<{ dtype: string; bytes: Uint8Array }>;
  close(): Promise<void>;
}

/**
 * A quantized Hugging Face checkpoint's `quantization_config` (`quant_method: "tersor"`, see
 * @tersor/quant formats.ts): `<name>.qweight` (U8 `[out, rowBytes(scheme, in)]`) replaces
 * `<name>.weight`, with an optional adapter `<name>.lora_a` `[rank, in]`, `<name>.lora_b` `[out, rank]`.
 */
export interface QuantizedCheckpoint {
  scheme: string;
  /** Per-module scheme overrides, keyed by the checkpoint name without `.weight`. */
  modules?: Record<string, { scheme: string }>;
}

/** One checkpoint tensor the model needs and what becomes of it. */
export interface PlanEntry {
  /** Name in the checkpoint. */
  source: string;
  /** Its expected shape in the checkpoint. */
  shape: number[];
  /** Canonical name it is set as (when `emit` is absent). */
  target?: string;
  /** Turns the checkpoint tensor into canonical weights (transposes, splits). */
  emit?: (t: LoadedTensor) => Array<[string, LoadedTensor]>;
  /** "ignore": may be absent, and is dropped when present. "zero": may be absent; when present it must be all zeros (a bias the runtime has no slot for). */
  optional?: "ignore" | "zero";
  /** Also keep an f32 copy of the emitted weight (final norm, for hidden states). */
  keep?: boolean;
}

/** Checkpoint tensors that are buffers, not weights: skipped without a warning. */
const IGNORED = [/(^|\.)attn\.(masked_)?bias$/, /(^|\.)rotary_emb\.inv_freq$/];

const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;

/** Transposes a row-major [rows, cols] matrix (any element type: values or 16-bit patterns). */
export function transpose2d<T extends Float32Array | Uint16Array>(data: T, rows: number, cols: number): T {
  const out = new (data.constructor as { new (n: number): T })(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = data[r * cols + c]!;
    }
  return out;
}

/** GPT-2 Conv1D [in, out] → nn.Linear [out, in]. */
function conv1d(t: LoadedTensor): LoadedTensor {
  const [inF, outF] = t.shape as [number, number];
  return { data: transpose2d(t.data, inF, outF), dtype: t.dtype, shape: [outF, inF] };
}

/** Rows [from, to) of a [rows, …] tensor (a view). */
function rowSlice(t: LoadedTensor, from: number, to: number): LoadedTensor {
  const inner = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: t.data.subarray(from * inner, to * inner), dtype: t.dtype, shape: [to - from, ...t.shape.slice(1)] };
}

/**
 * The tensors a Hugging Face checkpoint of `arch` holds for `cfg`, by name without the `model.` /
 * `transformer.` prefix (lm_head has none).
 */
export function hfPlan(arch: ModelArchitecture, cfg: TransformerConfig): PlanEntry[] {
  const C = cfg.hidden;
  const V = cfg.vocabSize;
  const F = cfg.intermediate;
  const qOut = cfg.heads * cfg.headDim;
  const kvOut = cfg.kvHeads * cfg.headDim;
  const plan: PlanEntry[] = [];
  const add = (source: string, shape: number[], target: string, extra: Partial<PlanEntry> = {}) => plan.push({ source, shape, target, ...extra });
  if (arch === "gpt2") {
    add("wte.weight", [V, C], "embed");
    add("wpe.weight", [cfg.maxPositions, C], "posEmbed");
    for (let l = 0; l < cfg.layers; l++) {
      const p = `h.${l}.`;
      const t = `layers.${l}.`;
      add(p + "ln_1.weight", [C], t + "attnNorm.weight");
      add(p + "ln_1.bias", [C], t + "attnNorm.bias");
      plan.push({
        source: p + "attn.c_attn.weight",
        shape: [C, 3 * C],
        emit: (w) => {
          const lin = conv1d(w);
          return [
            [t + "q.weight", rowSlice(lin, 0, C)],
            [t + "k.weight", rowSlice(lin, C, 2 * C)],
            [t + "v.weight", rowSlice(lin, 2 * C, 3 * C)],
          ];
        },
      });
      plan.push({
        source: p + "attn.c_attn.bias",
        shape: [3 * C],
        emit: (b) => [
          [t + "q.bias", rowSlice(b, 0, C)],
          [t + "k.bias", rowSlice(b, C, 2 * C)],
          [t + "v.bias", rowSlice(b, 2 * C, 3 * C)],
        ],
      });
      plan.push({ source: p + "attn.c_proj.weight", shape: [C, C], emit: (w) => [[t + "o.weight", conv1d(w)]] });
      add(p + "attn.c_proj.bias", [C], t + "o.bias");
      add(p + "ln_2.weight", [C], t + "mlpNorm.weight");
      add(p + "ln_2.bias", [C], t + "mlpNorm.bias");
      plan.push({ source: p + "mlp.c_fc.weight", shape: [C, F], emit: (w) => [[t + "up.weight", conv1d(w)]] });
      add(p + "mlp.c_fc.bias", [F], t + "up.bias");
      plan.push({ source: p + "mlp.c_proj.weight", shape: [F, C], emit: (w) => [[t + "down.weight", conv1d(w)]] });
      add(p + "mlp.c_proj.bias", [C], t + "down.bias");
    }
    add("ln_f.weight", [C], "finalNorm.weight", { keep: true });
    add("ln_f.bias", [C], "finalNorm.bias", { keep: true });
  } else {
    add("embed_tokens.weight", [V, C], "embed");
    for (let l = 0; l < cfg.layers; l++) {
      const p = `layers.${l}.`;
      const t = `layers.${l}.`;
      add(p + "input_layernorm.weight", [C], t + "attnNorm.weight");
      add(p + "self_attn.q_proj.weight", [qOut, C], t + "q.weight");
      add(p + "self_attn.k_proj.weight", [kvOut, C], t + "k.weight");
      add(p + "self_attn.v_proj.weight", [kvOut, C], t + "v.weight");
      if (cfg.qkvBias) {
        add(p + "self_attn.q_proj.bias", [qOut], t + "q.bias");
        add(p + "self_attn.k_proj.bias", [kvOut], t + "k.bias");
        add(p + "self_attn.v_proj.bias", [kvOut], t + "v.bias");
      }
      add(p + "self_attn.o_proj.weight", [C, qOut], t + "o.weight");
      // Llama's attention_bias also biases o_proj; the runtime has no slot for that alone, so only zero ones load.
      plan.push({ source: p + "self_attn.o_proj.bias", shape: [C], optional: "zero" });
      add(p + "post_attention_layernorm.weight", [C], t + "mlpNorm.weight");
      add(p + "mlp.gate_proj.weight", [F, C], t + "gate.weight");
      add(p + "mlp.up_proj.weight", [F, C], t + "up.weight");
      add(p + "mlp.down_proj.weight", [C, F], t + "down.weight");
    }
    add("norm.weight", [C], "finalNorm.weight", { keep: true });
  }
  if (cfg.tieEmbeddings) plan.push({ source: "lm_head.weight", shape: [V, C], optional: "ignore" });
  else add("lm_head.weight", [V, C], "lmHead");
  return plan;
}

/** The tensors of a llama.cpp GGUF (`llama` architecture), by GGUF name. */
export function ggufLlamaPlan(cfg: TransformerConfig): PlanEntry[] {
  const C = cfg.hidden;
  const F = cfg.intermediate;
  const qOut = cfg.heads * cfg.headDim;
  const kvOut = cfg.kvHeads * cfg.headDim;
  const plan: PlanEntry[] = [];
  const add = (source: string, shape: number[], target: string, extra: Partial<PlanEntry> = {}) => plan.push({ source, shape, target, ...extra });
  add("token_embd.weight", [cfg.vocabSize, C], "embed");
  for (let l = 0; l < cfg.layers; l++) {
    const p = `blk.${l}.`;
    const t = `layers.${l}.`;
    add(p + "attn_norm.weight", [C], t + "attnNorm.weight");
    add(p + "attn_q.weight", [qOut, C], t + "q.weight");
    add(p + "attn_k.weight", [kvOut, C], t + "k.weight");
    add(p + "attn_v.weight", [kvOut, C], t + "v.weight");
    if (cfg.qkvBias) {
      add(p + "attn_q.bias", [qOut], t + "q.bias");
      add(p + "attn_k.bias", [kvOut], t + "k.bias");
      add(p + "attn_v.bias", [kvOut], t + "v.bias");
    }
    add(p + "attn_output.weight", [C, qOut], t + "o.weight");
    plan.push({ source: p + "attn_output.bias", shape: [C], optional: "zero" });
    add(p + "ffn_norm.weight", [C], t + "mlpNorm.weight");
    add(p + "ffn_gate.weight", [F, C], t + "gate.weight");
    add(p + "ffn_up.weight", [F, C], t + "up.weight");
    add(p + "ffn_down.weight", [C, F], t + "down.weight");
  }
  add("output_norm.weight", [C], "finalNorm.weight", { keep: true });
  if (!cfg.tieEmbeddings) add("output.weight", [cfg.vocabSize, C], "lmHead");
  return plan;
}

/** A tensor's bytes as the runtime's input type, converted to `dtype` when one is asked for. */
const LOADABLE = new Set(["f32", "f16", "bf16", "f64"]);

function checkLoadable(storedDType: string, where: string): void {
  if (!LOADABLE.has(storedDType.toLowerCase())) {
    throw new TersorError("E_DTYPE", `${where}: dtype ${storedDType} is not supported for weights (tersor loads F32, F16, BF16 and F64 tensors)`);
  }
}

export function asLoaded(storedDType: string, shape: readonly number[], bytes: Uint8Array, where: string, dtype?: WeightDType): LoadedTensor {
  checkLoadable(storedDType, where);
  const d = storedDType.toLowerCase() as "f32" | "f16" | "bf16" | "f64";
  let t: Tensor = Tensor.fromBytes(d, shape, bytes);
  const want: WeightDType = dtype ?? (d === "f64" ? "f32" : (d as WeightDType));
  if (t.dtype !== want) t = t.to(want);
  return { data: t.data as Float32Array | Uint16Array, dtype: want, shape: [...shape] };
}

/** A safetensors checkpoint as a {@link TensorSource}. */
export function safetensorsSource(src: SafetensorsSource, where: string, dtype?: WeightDType): TensorSource {
  return {
    where,
    names: () => src.tensors.map((t) => t.name),
    shape: (name) => src.get(name)?.shape,
    check: (name) => checkLoadable(src.get(name)!.dtype, `${where}: tensor "${name}"`),
    async read(name) {
      const info = src.get(name)!;
      return asLoaded(info.dtype, info.shape, await src.readBytes(name), `${where}: tensor "${name}"`, dtype);
    },
    async readRaw(name) {
      return { dtype: src.get(name)!.dtype, bytes: await src.readBytes(name) };
    },
    close: () => src.close(),
  };
}

/** ggml block types the runtime reads (byte-exact with @tersor/quant's formats of the same name). */
const GGUF_QUANTIZED = new Set(["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "mxfp4", "nvfp4"]);

/**
 * A GGUF file as a {@link TensorSource}: f32/f16/bf16 tensors, and the ggml block types listed in
 * `GGUF_QUANTIZED` (read as their bytes plus the dequantized f32 values).
 */
export function ggufSource(g: GgufFile, dtype?: WeightDType): TensorSource {
  return {
    where: g.path,
    names: () => g.tensors.map((t) => t.name),
    shape: (name) => g.get(name)?.shape,
    check(name) {
      const info = g.get(name)!;
      if (info.type.quantized) {
        if (!GGUF_QUANTIZED.has(info.type.name)) {
          throw new TersorError("E_DTYPE", `${g.path}: tensor "${name}" is ${info.dtype}-quantized; tersor loads ${[...GGUF_QUANTIZED].join(", ")} and f32, f16, bf16 tensors`);
        }
        return;
      }
      checkLoadable(info.dtype, `${g.path}: tensor "${name}"`);
    },
    async read(name) {
      const info = g.get(name)!;
      if (info.type.quantized) {
        const bytes = await g.readBytes(name);
        const cols = info.shape[info.shape.length - 1] ?? 1;
        const rows = info.shape.slice(0, -1).reduce((a, b) => a * b, 1);
        const data = await native().dequantizeTensor(bytes, rows, cols, info.type.name);
        return { data, dtype: "f32", shape: [...info.shape], quantized: { scheme: info.type.name, bytes } };
      }
      return asLoaded(info.dtype, info.shape, await g.readBytes(name), `${g.path}: tensor "${name}"`, dtype);
    },
    close: () => g.close(),
  };
}

/** What {@link loadWeights} reports. */
export interface LoadWeightsResult {
  /** One line per checkpoint tensor the model does not use (e.g. heads of other tasks). */
  warnings: string[];
  /** f32 copies of the entries marked `keep`, by canonical name. */
  kept: Map<string, Float32Array>;
}

function toF32(t: LoadedTensor): Float32Array {
  if (t.dtype === "f32") return Float32Array.from(t.data as Float32Array);
  return new Tensor(t.dtype, t.shape, Uint16Array.from(t.data as Uint16Array)).toFloat32Array();
}

/**
 * Loads the tensors of `plan` from `src` into `sink`, one at a time. `prefixes` are the name
 * prefixes a checkpoint may put before the plan's names (`model.`, `transformer.`); the first is
 * the one named in messages when no tensor uses any. Missing tensor → `E_FORMAT` naming it; a shape
 * other than the plan's → `E_SHAPE` naming the tensor and both shapes. Tensors the plan does not use
 * come back as warnings.
 */
export async function loadWeights(
  src: TensorSource,
  plan: PlanEntry[],
  sink: WeightSink,
  opts: { prefixes?: string[]; progress?: ProgressMode; quantization?: QuantizedCheckpoint } = {},
): Promise<LoadWeightsResult> {
  const prefixes = opts.prefixes ?? [];
  const present = new Set(src.names());
  // Plan name → checkpoint name, trying the bare name and each prefix.
  const used = prefixes.find((p) => p !== "" && [...present].some((n) => n.startsWith(p))) ?? prefixes[0] ?? "";
  const resolve = (name: string): string | undefined => {
    if (present.has(used + name)) return used + name;
    if (present.has(name)) return name;
    for (const p of prefixes) if (present.has(p + name)) return p + name;
    return undefined;
  };
  const consumed = new Set<string>();
  const kept = new Map<string, Float32Array>();
  // Check presence and shapes of everything before reading any data.
  const quantOf = new Map<PlanEntry, { qweight: string; scheme: string; loraA?: string; loraB?: string }>();
  const resolved: Array<[PlanEntry, string | undefined]> = plan.map((e) => {
    const full = resolve(e.source);
    const qc = opts.quantization;
    if (full === undefined && qc && e.source.endsWith(".weight") && e.shape.length === 2) {
      const stem = e.source.slice(0, -".weight".length);
      const qweight = resolve(stem + ".qweight");
      if (qweight !== undefined) {
        if (e.emit || !src.readRaw) throw new TersorError("E_FORMAT", `${src.where}: tensor "${qweight}" is quantized, which this architecture's loader does not support for it`);
        const key = qweight.slice(0, -".qweight".length);
        const scheme = qc.modules?.[key]?.scheme ?? qc.modules?.[stem]?.scheme ?? qc.scheme;
        const rb = native().quantRowBytes(scheme, e.shape[1]!);
        const shape = src.shape(qweight)!;
        if (shape.length !== 2 || shape[0] !== e.shape[0] || shape[1] !== rb) {
          throw new TersorError("E_SHAPE", `${src.where}: tensor "${qweight}" has shape ${shapeText(shape)}, but ${scheme} rows of ${shapeText(e.shape)} need ${shapeText([e.shape[0]!, rb])}`);
        }
        const loraA = resolve(stem + ".lora_a");
        const loraB = resolve(stem + ".lora_b");
        if ((loraA === undefined) !== (loraB === undefined)) throw new TersorError("E_FORMAT", `${src.where}: ${key} has only one of lora_a / lora_b`);
        consumed.add(qweight);
        if (loraA !== undefined) {
          consumed.add(loraA);
          consumed.add(loraB!);
        }
        quantOf.set(e, { qweight, scheme, ...(loraA !== undefined ? { loraA, loraB: loraB! } : {}) });
        return [e, qweight];
      }
    }
    if (full === undefined) {
      if (e.optional) return [e, undefined];
      const shown = e.source === "lm_head.weight" ? e.source : used + e.source;
      throw new TersorError("E_FORMAT", `${src.where}: missing tensor "${shown}" (the config needs it${e.target ? ` for ${e.target}` : ""})`);
    }
    const shape = src.shape(full)!;
    if (shape.length !== e.shape.length || shape.some((d, i) => d !== e.shape[i])) {
      throw new TersorError("E_SHAPE", `${src.where}: tensor "${full}" has shape ${shapeText(shape)}, but the config needs ${shapeText(e.shape)}`);
    }
    if (e.optional !== "ignore") src.check(full);
    consumed.add(full);
    return [e, full];
  });
  const bar = progress({ label: "load weights", total: resolved.length, unit: "tensors", ...(opts.progress ? { mode: opts.progress } : {}) });
  try {
    for (const [e, full] of resolved) {
      if (full === undefined) {
        bar.tick();
        continue;
      }
      if (e.optional === "ignore") {
        bar.tick();
        continue;
      }
      const quant = quantOf.get(e);
      if (quant) {
        const raw = await src.readRaw!(full);
        if (raw.dtype.toLowerCase() !== "u8") throw new TersorError("E_DTYPE", `${src.where}: tensor "${full}" must be U8, got ${raw.dtype}`);
        const a = quant.loraA !== undefined ? toF32(await src.read(quant.loraA)) : null;
        const b = quant.loraB !== undefined ? toF32(await src.read(quant.loraB)) : null;
        const [rows, cols] = e.shape as [number, number];
        if (sink.setQuantizedWeight) {
          sink.setQuantizedWeight(e.target!, raw.bytes, quant.scheme, a, b);
        } else {
          // a sink without quantized weights gets W = dequantize(Q) + B A
          const w = await native().dequantizeTensor(raw.bytes, rows, cols, quant.scheme);
          if (a && b) {
            const rank = a.length / cols;
            for (let o = 0; o < rows; o++)
              for (let k = 0; k < rank; k++) {
                const bk = b[o * rank + k]!;
                for (let i = 0; i < cols; i++) w[o * cols + i]! += bk * a[k * cols + i]!;
              }
          }
          sink.setWeight(e.target!, w, "f32", [rows, cols]);
        }
        bar.tick();
        continue;
      }
      const t = await src.read(full);
      if (e.optional === "zero") {
        const nonzero = t.data.some((v) => (t.dtype === "f32" ? v !== 0 : (v & 0x7fff) !== 0));
        if (nonzero) throw new TersorError("E_FORMAT", `${src.where}: tensor "${full}" is a non-zero bias the runtime has no slot for; this checkpoint is not supported`);
        bar.tick();
        continue;
      }
      const out: Array<[string, LoadedTensor]> = e.emit ? e.emit(t) : [[e.target!, t]];
      for (const [name, w] of out) {
        // Quantized linears stay quantized when the sink takes them (a plain target, not a transform).
        const linear = name === "lmHead" || /^layers\.\d+\.(q|k|v|o|gate|up|down)\.weight$/.test(name);
        if (!e.emit && w.quantized && linear && sink.setQuantizedWeight) sink.setQuantizedWeight(name, w.quantized.bytes, w.quantized.scheme);
        else sink.setWeight(name, w.data, w.dtype, w.shape);
        if (e.keep) kept.set(name, toF32(w));
      }
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  const missing = sink.missingWeights();
  if (missing.length > 0) throw new TersorError("E_FORMAT", `${src.where}: the runtime still lacks weights after loading: ${missing.join(", ")}`);
  const warnings = [...present]
    .filter((n) => !consumed.has(n) && !IGNORED.some((r) => r.test(n)))
    .map((n) => `${src.where}: unexpected tensor "${n}" ${shapeText(src.shape(n) ?? [])} is not used by the model`);
  return { warnings, kept };
}
