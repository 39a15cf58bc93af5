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
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { Tensor, TersorError, openSafetensorsDir, progress, writeFileAtomic, writeSafetensors, type ProgressMode } from "@tersor/core";
import type { Model } from "@tersor/model";
import { native } from "@tersor/native";
import { z } from "zod";

import { difference, eora, gptq, lorc, lowRankProduct, outputError, rtn } from "./methods.js";

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
    /** Scheme for linears whose row length the scheme's block does not divide; absent = error. */
    fallback: z.string().min(1).max(64).optional(),
    eoraRank: z.number().int().min(1).optional(),
    lorcRank: z.number().int().min(1).optional(),
    rotate: z.enum(["none", "hadamard"]).default("none"),
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
}

export interface QuantizeModelReport {
  scheme: string;
  method: string;
  samples: number;
  calibrationTokens: number;
  linears: LinearReport[];
  bytesBefore: number;
  bytesAfter: number;
  /** Bits per quantized linear weight (packed rows plus adapters), over all linears. */
  bitsPerWeight: number;
  peakRssBytes: number;
  seconds: number;
}

function ggBytes(t: Tensor): number {
  return t.byteLength;
}

/**
 * Quantizes `model` (loaded from the Hugging Face directory `dir`) with calibration `sequences`
 * (token ids), writing the quantized directory to `out`.
 */
export async function quantizeModel(model: Model, dir: string, sequences: number[][], out: string, options: QuantizeModelOptions): Promise<QuantizeModelReport> {
  const parsed = QuantizeModelOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `quantize options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  const t0 = Date.now();
  if (model.architecture === "gpt2") throw new TersorError("E_FORMAT", "quantize: GPT-2 checkpoints are not supported by the driver (Llama, Mistral and Qwen2 are)");
  if (o.method === "awq" || o.method === "hqq") throw new TersorError("E_RANGE", `quantize: method ${o.method} is available per layer (awqSearch / hqq in @tersor/quant) but not yet in the model driver; use rtn or gptq`);
  if (o.rotate !== "none") throw new TersorError("E_RANGE", "quantize: --rotate hadamard is not implemented yet");
  if (o.eoraRank !== undefined && o.lorcRank !== undefined) throw new TersorError("E_RANGE", "quantize: give at most one of eoraRank and lorcRank");
  if (sequences.length === 0) throw new TersorError("E_RANGE", "quantize: no calibration sequences");
  // Validates the scheme names early (E_RANGE listing the valid ones).
  native().quantRowBytes(o.scheme, 256 * 1024);
  if (o.fallback) native().quantRowBytes(o.fallback, 256 * 1024);
  const schemeFor = (cols: number, name: string): string => {
    try {
      native().quantRowBytes(o.scheme, cols);
      return o.scheme;
    } catch (e) {
      if (o.fallback === undefined) throw new TersorError("E_SHAPE", `quantize: ${name} has rows of ${cols}, which the blocks of ${o.scheme} do not divide (give a fallback scheme for such linears)`, { cause: e });
      native().quantRowBytes(o.fallback, cols);
      return o.fallback;
    }
  };
  const src = await openSafetensorsDir(dir);
  const outTensors = new Map<string, Tensor>();
  const modules: Record<string, { scheme: string }> = {};
  const linears: LinearReport[] = [];
  let bytesBefore = 0;
  let bytesAfter = 0;
  let qWeights = 0;
  let qBits = 0;
  let peak = process.memoryUsage().rss;
  const L = model.config.layers;
  const bar = progress({ label: "quantize", total: L, unit: "layers", ...(o.progress ? { mode: o.progress } : {}) });
  try {
    const isLinear = new Set<string>();
    for (let l = 0; l < L; l++) for (const [, hf] of LINEARS) isLinear.add(`model.layers.${l}.${hf}.weight`);
    for (const info of src.tensors) {
      if (isLinear.has(info.name)) continue;
      const t = await src.read(info.name);
      bytesBefore += ggBytes(t);
      bytesAfter += ggBytes(t);
      outTensors.set(info.name, t);
    }
    for (let l = 0; l < L; l++) {
      const cap = await model.captureLinearInputs(sequences, { layers: [l], accumulate: "gram" });
      for (const [short, hf] of LINEARS) {
        const name = `model.layers.${l}.${hf}`;
        const raw = await src.read(`${name}.weight`);
        if (raw.dtype !== "f32" && raw.dtype !== "f16" && raw.dtype !== "bf16") throw new TersorError("E_DTYPE", `quantize: ${name}.weight has dtype ${raw.dtype}; supported: f32, f16, bf16`);
        bytesBefore += raw.byteLength;
        const w = raw.to("f32");
        const data = w.data as Float32Array;
        for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) throw new TersorError("E_RANGE", `quantize: ${name}.weight holds a non-finite value at element ${i}`);
        const [rows, cols] = w.shape as [number, number];
        const key = `layers.${l}.${short}`;
        const gram = cap.tensors.get(key) as Tensor<"f64"> | undefined;
        const n = cap.rows.get(key) ?? 0;
        if (!gram || n === 0) throw new TersorError("E_NATIVE", `quantize: no calibration inputs captured for ${key}`);
        const scheme = schemeFor(cols, name);
        if (scheme !== o.scheme) modules[name] = { scheme };
        const base = await rtn(w, scheme);
        const q = o.method === "gptq" ? await gptq(w, gram, n, scheme, { damp: o.damp, actOrder: o.actOrder }) : base;
        let values: Tensor<"f32"> = q.values;
        let rank = 0;
        if (o.eoraRank !== undefined || o.lorcRank !== undefined) {
          rank = Math.min(o.eoraRank ?? o.lorcRank!, rows, cols);
          const e = difference(w, q.values);
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
        outTensors.set(`${name}.qweight`, new Tensor("u8", [rows, q.q.length / rows], q.q));
        bytesAfter += q.q.length;
        qBits += 8 * q.q.length;
        qWeights += rows * cols;
        let mse = 0;
        for (let i = 0; i < data.length; i++) mse += (data[i]! - values.data[i]!) ** 2;
        linears.push({
          name,
          scheme,
          rows,
          cols,
          bitsPerWeight: (8 * q.q.length) / (rows * cols),
          weightMse: mse / data.length,
          outputError: (await outputError(w, values, gram)) / n,
          rtnOutputError: (await outputError(w, base.values, gram)) / n,
          adapterRank: rank,
        });
        // The next layers are calibrated on this layer's quantized outputs.
        model.runtime.setWeight(`layers.${l}.${short}.weight` as Parameters<typeof model.runtime.setWeight>[0], values.data as Float32Array, "f32", [rows, cols]);
      }
      peak = Math.max(peak, process.memoryUsage().rss);
      bar.tick();
    }
  } finally {
    bar.stop();
    await src.close();
  }
  // All computed: write the directory (each file atomically).
  const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  cfg["quantization_config"] = { quant_method: "tersor", format_version: 1, scheme: o.scheme, ...(Object.keys(modules).length ? { modules } : {}) };
  await writeSafetensors(join(out, "model.safetensors"), [...outTensors.entries()], { format: "pt", quantized_by: `tersor ${o.method}` });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    let b: Buffer | undefined;
    try {
      b = await readFile(join(dir, f));
    } catch {
      b = undefined;
    }
    if (b) await writeFileAtomic(join(out, f), b);
  }
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
