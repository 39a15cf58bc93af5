/**
 * `tersor kv plan | eval`: KV-cache memory planning and the accuracy/memory/speed of compressed
 * caches (@tersor/kv; the compressors run natively in the model's runtime).
 *
 *   tersor kv plan --model <config.json|dir|ref-small> --context 1000000 --method kvquant:3 [--memory 80GB] [--json]
 *   tersor kv eval <model> --methods fp16,kivi:2,kivi:4,kvquant:3,gear:4,zipcache:4/2,h2o:0.2,streaming:256
 *                  --data corpus:moby --context 1024 [--bf16-dot] [--json] [--plot out.png]
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Command } from "commander";
import { TersorError, defaultProgressMode } from "@tersor/core";
import { CORPUS_NAMES, checkSplit, corpus } from "@tersor/corpora";
import { type VegaLiteSpec, evaluatePerplexity, writePlot } from "@tersor/eval";
import { type KvModelShape, type KvOptions, type KvPlan, checkKvForContext, f16BytesPerToken, kvCacheBytes, kvSpecName, parseKvSpec, parseMemory, planKv } from "@tersor/kv";
import { type Model, loadModel } from "@tersor/model";
import { isReferenceModelName, referenceModelPath } from "@tersor/models";
import { native } from "@tersor/native";

/** Model shape of a Hugging Face config.json (Llama/Mistral/Qwen2/GPT-2 field names) or {layers, kvHeads, headDim}. */
export function kvShapeFromConfig(c: Record<string, unknown>): KvModelShape {
  const num = (...keys: string[]): number | undefined => {
    for (const k of keys) if (typeof c[k] === "number") return c[k] as number;
    return undefined;
  };
  const layers = num("num_hidden_layers", "n_layer", "layers");
  const heads = num("num_attention_heads", "n_head", "heads");
  const kvHeads = num("num_key_value_heads", "kvHeads") ?? heads;
  const hidden = num("hidden_size", "n_embd", "hidden");
  const headDim = num("head_dim", "headDim") ?? (hidden !== undefined && heads ? hidden / heads : undefined);
  if (!layers || !kvHeads || !headDim || !Number.isInteger(headDim)) throw new TersorError("E_FORMAT", "the model config needs num_hidden_layers, num_attention_heads (num_key_value_heads) and head_dim or hidden_size");
  return { layers, kvHeads, headDim };
}

async function readShape(model: string): Promise<KvModelShape> {
  let path = model;
  if (isReferenceModelName(model)) {
    const p = referenceModelPath(model);
    if (!p) throw new TersorError("E_IO", `reference model ${model} is not built in this install`);
    path = p;
  }
  if (existsSync(path) && statSync(path).isDirectory()) path = join(path, "config.json");
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new TersorError("E_IO", `cannot read the model config ${path}: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null) throw new TersorError("E_FORMAT", `${path} is not a JSON object`);
  return kvShapeFromConfig(json as Record<string, unknown>);
}

function human(bytes: number): string {
  const u = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let x = bytes;
  while (x >= 1000 && i < u.length - 1) (x /= 1000), i++;
  return `${x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2)} ${u[i]}`;
}

/** The text of a plan. */
export function planText(p: KvPlan): string {
  const lines = [
    `method            ${p.method}`,
    `context           ${p.context} tokens`,
    `bytes per token   ${p.bytesPerToken.toFixed(1)} (f16: ${p.f16BytesPerToken}, ratio ${p.ratio.toFixed(2)}x)`,
    `cache             ${human(p.cacheBytes)} (${p.cacheBytes} bytes)`,
  ];
  if (p.memory !== undefined) {
    lines.push(`memory            ${human(p.memory)}: the cache ${p.fits ? "fits" : "does not fit"}`);
    lines.push(`longest context   ${p.maxContext === Infinity ? "unbounded (fixed eviction budget)" : `${p.maxContext} tokens`}`);
  }
  return lines.join("\n") + "\n";
}

async function docsOf(data: string, split: string, maxDocs: number, maxBytes: number): Promise<{ text: string; domain: string }[]> {
  if (!data.startsWith("corpus:")) throw new TersorError("E_RANGE", `--data must be corpus:<name>, got "${data}"`);
  const name = data.slice(7);
  if (!CORPUS_NAMES.includes(name)) throw new TersorError("E_RANGE", `unknown corpus "${name}"; known: ${CORPUS_NAMES.join(", ")}`);
  const out: { text: string; domain: string }[] = [];
  let bytes = 0;
  for await (const d of corpus(name).docs({ split: checkSplit(split) })) {
    const left = maxBytes - bytes;
    if (left <= 0 || out.length >= maxDocs) break;
    const text = Buffer.byteLength(d.text) > left ? Buffer.from(d.text).subarray(0, left).toString("utf8").replace(/\uFFFD$/, "") : d.text;
    out.push({ text, domain: name });
    bytes += Buffer.byteLength(text);
  }
  if (out.length === 0) throw new TersorError("E_RANGE", `${data} (${split}) gave no documents`);
  return out;
}

export interface KvEvalRow {
  method: string;
  bitsPerByte: number;
  /** (bpb − uncompressed bpb) / uncompressed bpb. */
  relChange: number;
  /** Cache bytes at the context length, and the f16 ratio. */
  cacheBytes: number;
  ratio: number;
  decodeTokensPerSecond: number;
}

/** Decode speed through a cache: prefill `context − steps` tokens, then time `steps` single-token forwards. */
async function decodeSpeed(model: Model, kv: KvOptions | undefined, context: number, tokens: number[]): Promise<number> {
  const steps = Math.min(32, Math.max(1, context >> 2));
  const ids = Int32Array.from({ length: context }, (_, i) => tokens[i % tokens.length]!);
  const cache = model.createKvCache(context, kv);
  await model.runtime.forward(ids.subarray(0, context - steps), { cache, logits: "none" });
  const t0 = performance.now();
  for (let i = context - steps; i < context; i++) await model.runtime.forward(ids.subarray(i, i + 1), { cache, logits: "last" });
  return steps / ((performance.now() - t0) / 1000);
}

export function kvEvalTable(rows: KvEvalRow[], base: number): string {
  const head = ["method", "bits/byte", "change", "cache bytes", "ratio", "decode tok/s"];
  const cells = [
    head,
    ["uncompressed (f32)", base.toFixed(4), "", "", "", ""],
    ...rows.map((r) => [r.method, r.bitsPerByte.toFixed(4), `${(100 * r.relChange).toFixed(2)}%`, String(r.cacheBytes), r.ratio.toFixed(2), r.decodeTokensPerSecond.toFixed(1)]),
  ];
  const w = head.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join("  ")).join("\n") + "\n";
}

/** Registers the command(s) of this module on the program. */
export function registerKv(program: Command): void {
  const kv = program.command("kv").description("KV-cache compression: memory planning and evaluation of compressed caches");
  kv.command("plan")
    .description("cache bytes per token of a method and the longest context that fits in a memory")
    .requiredOption("--model <config>", "config.json, a model directory, or a reference model name (ref-small)")
    .requiredOption("--context <tokens>", "context length in tokens")
    .option("--method <spec>", "fp16 | kivi:B | kvquant:B | gear:B | zipcache:H/L | h2o:F | streaming:N | ems:F", "kvquant:3")
    .option("--memory <size>", "memory for the cache, e.g. 80GB or 24GiB")
    .option("--group <n>", "tokens per block")
    .option("--residual <n>", "full-precision window")
    .option("--json", "print JSON")
    .action(async (o: { model: string; context: string; method: string; memory?: string; group?: string; residual?: string; json?: boolean }) => {
      const shape = await readShape(o.model);
      const base: Record<string, number> = {};
      if (o.group !== undefined) base["group"] = Number(o.group);
      if (o.residual !== undefined) base["residual"] = Number(o.residual);
      const opts = parseKvSpec(o.method, base);
      const plan = planKv(shape, opts, Number(o.context), o.memory !== undefined ? parseMemory(o.memory) : undefined);
      process.stdout.write(o.json ? JSON.stringify({ ...plan, maxContext: plan.maxContext === Infinity ? null : plan.maxContext, shape }, null, 2) + "\n" : planText(plan));
    });

  kv.command("eval <model>")
    .description("bits per byte with each compressed cache vs the uncompressed one, cache bytes, ratio, decode tokens/s")
    .option("--methods <list>", "comma-separated method specs", "fp16,kivi:2,kivi:4,kvquant:3,gear:4,zipcache:4/2,h2o:0.2,streaming:256")
    .option("--data <source>", "corpus:<name>", "corpus:moby")
    .option("--split <split>", "train | validation | test", "test")
    .option("--context <tokens>", "window length (clipped to the model's maximum)", "1024")
    .option("--group <n>", "tokens per block (quantizing methods)")
    .option("--residual <n>", "full-precision window (default: min(128, context / 4))")
    .option("--chunk <n>", "tokens per forward through the compressed cache", "16")
    .option("--bf16-dot", "attention over 4-bit blocks with bf16 dot products (AVX-512 BF16 CPUs; exact elsewhere)")
    .option("--max-docs <n>", "documents evaluated", "4")
    .option("--max-bytes <n>", "bytes of text evaluated", "4000")
    .option("--json", "print JSON")
    .option("--plot <file>", "write a bits-per-byte chart (.svg or .png)")
    .action(async (path: string, o: { methods: string; data: string; split: string; context: string; group?: string; residual?: string; chunk: string; bf16Dot?: boolean; maxDocs: string; maxBytes: string; json?: boolean; plot?: string }) => {
      const model = await loadModel(path);
      const context = Math.min(Number(o.context), model.maxLength);
      if (!Number.isInteger(context) || context < 2) throw new TersorError("E_RANGE", `--context must be an integer ≥ 2, got ${o.context}`);
      const base: Record<string, number | boolean> = { residual: o.residual !== undefined ? Number(o.residual) : Math.min(128, Math.floor(context / 4)) };
      if (o.group !== undefined) base["group"] = Number(o.group);
      if (o.bf16Dot) base["bf16Dot"] = true;
      const specs = o.methods.split(",").map((s) => s.trim()).filter(Boolean);
      const methods = specs.map((s) => parseKvSpec(s, base));
      for (const m of methods) checkKvForContext(m, context);
      const docs = await docsOf(o.data, o.split, Number(o.maxDocs), Number(o.maxBytes));
      const progress = o.json ? "silent" : defaultProgressMode();
      const shape: KvModelShape = { layers: model.config.layers, kvHeads: model.config.kvHeads, headDim: model.config.headDim };
      const chunk = Number(o.chunk);
      const exact = await evaluatePerplexity(model.scorer(), docs, { window: context, progress });
      const sample = model.encode(docs[0]!.text);
      const rows: KvEvalRow[] = [];
      for (const m of methods) {
        const r = await evaluatePerplexity(model.scorer({ kv: m, chunk }), docs, { window: context, progress });
        const cacheBytes = kvCacheBytes(shape, m, context);
        rows.push({
          method: kvSpecName(m),
          bitsPerByte: r.bits_per_byte,
          relChange: (r.bits_per_byte - exact.bits_per_byte) / exact.bits_per_byte,
          cacheBytes,
          ratio: (f16BytesPerToken(shape) * context) / cacheBytes,
          decodeTokensPerSecond: await decodeSpeed(model, m, context, sample.length > 0 ? sample : [model.prefixToken]),
        });
      }
      // whether the bf16 kernels ran (the option falls back to the exact ones without AVX-512 BF16)
      const bf16Dot = o.bf16Dot === true && native().kvBf16DotSupported();
      const result = { model: path, data: o.data, split: o.split, context, uncompressedBitsPerByte: exact.bits_per_byte, bytes: exact.totals.bytes, bf16Dot, methods: rows };
      if (o.plot) {
        const spec: VegaLiteSpec = {
          $schema: "https://vega.github.io/schema/vega-lite/v5.json",
          title: `bits per byte with a compressed KV cache (${o.data}, context ${context})`,
          data: { values: [{ method: "uncompressed", bpb: exact.bits_per_byte }, ...rows.map((r) => ({ method: r.method, bpb: r.bitsPerByte }))] },
          mark: "bar",
          encoding: { x: { field: "method", type: "nominal", sort: null }, y: { field: "bpb", type: "quantitative", title: "bits per byte", scale: { zero: false } } },
        } as VegaLiteSpec;
        await writePlot(o.plot, spec);
      }
      if (o.bf16Dot && !bf16Dot && !o.json) process.stderr.write("note: this CPU lacks AVX-512 BF16; --bf16-dot ran the exact kernels\n");
      process.stdout.write(o.json ? JSON.stringify(result, null, 2) + "\n" : kvEvalTable(rows, exact.bits_per_byte));
    });
}
