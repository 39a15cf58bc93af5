/**
 * `tersor quantize <model> --scheme <s> --method rtn|gptq|awq|hqq [--rotate hadamard [--rotate-seed 0]]
 *  [--eora-rank R | --lorc-rank R] --calib corpus:sotu --samples 128 --seq-len 256 --out <dir>
 *  [--fallback int8|f16|bf16|f32] [--report r.json] [--plot p.svg] [--seed 0]`
 *
 * Quantizes a Hugging Face Llama-family model layer by layer (@tersor/quant's quantizeModel), writes
 * the quantized directory, and reports per-layer weight MSE and calibration output error, bits per
 * weight, size before/after and bits per byte before/after on the calibration corpus's test split.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import type { Command } from "commander";
import { Rng, TersorError, defaultProgressMode, ggmlTypeByName, writeFileAtomic } from "@tersor/core";
import { CORPUS_NAMES, corpus } from "@tersor/corpora";
import { type VegaLiteSpec, evaluatePerplexity, writePlot } from "@tersor/eval";
import { type Model, loadModel } from "@tersor/model";
import { isReferenceModelName, referenceModelPath } from "@tersor/models";
import { checkGgufScheme, exportGguf, ggufExportReport, hadamardRotation, quantizeModel, reportMarkdown, type QuantizeModelReport } from "@tersor/quant";

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new TersorError("E_RANGE", `${what} must be a positive integer, got "${v}"`);
  return n;
}

function corpusName(spec: string, what: string): string {
  if (!spec.startsWith("corpus:") || !CORPUS_NAMES.includes(spec.slice(7))) throw new TersorError("E_RANGE", `${what} must be corpus:<name> with name one of ${CORPUS_NAMES.join(", ")}; got "${spec}"`);
  return spec.slice(7);
}

/** `samples` windows of `seqLen` tokens from the corpus's train split, chosen under `seed`. */
export async function calibrationSequences(model: Model, name: string, samples: number, seqLen: number, seed: number): Promise<number[][]> {
  if (seqLen > model.maxLength) throw new TersorError("E_RANGE", `--seq-len ${seqLen} exceeds the model's maximum length ${model.maxLength}`);
  const ids: number[] = [];
  const need = samples * seqLen;
  for await (const d of corpus(name).docs({ split: "train" })) {
    for (const t of model.encode(d.text)) ids.push(t);
    if (ids.length >= 4 * need) break;
  }
  const windows = Math.floor(ids.length / seqLen);
  if (windows < samples) throw new TersorError("E_RANGE", `calibration data too short: corpus:${name} (train) gives ${windows} windows of ${seqLen} tokens, ${samples} requested`);
  const order = Array.from({ length: windows }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = windows - 1; i > 0; i--) {
    const j = rng.nextBelow(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, samples).sort((a, b) => a - b).map((w) => ids.slice(w * seqLen, (w + 1) * seqLen));
}

async function bitsPerByte(model: Model, name: string, maxChars: number, progress: "bar" | "json" | "silent"): Promise<number> {
  const docs: { text: string }[] = [];
  let left = maxChars;
  for await (const d of corpus(name).docs({ split: "test" })) {
    if (left <= 0) break;
    docs.push({ text: d.text.slice(0, left) });
    left -= d.text.length;
  }
  const r = await evaluatePerplexity(model.scorer(), docs, { progress });
  return r.bits_per_byte;
}

/** Registers the command(s) of this module on the program. */
export function registerQuantize(program: Command): void {
  program
    .command("quantize <model>")
    .description("quantize a Hugging Face model (RTN, GPTQ, AWQ or HQQ, optional Hadamard rotation and EoRA/LoRC adapters) and report what was lost")
    .requiredOption("--scheme <scheme>", "q8_0, q4_0, q4_k, q6_k, int4-g128, int3-g64-asym, nf4, fp8, mxfp4, …")
    .option("--method <method>", "rtn | gptq | awq (activation-aware scales folded into the norms, then RTN) | hqq (no calibration; q4_1, q5_1, int<b>[-g<n>]-asym)", "gptq")
    .option("--fallback <scheme>", "scheme for linears whose rows the scheme's block does not divide, or f16 | bf16 | f32 to keep them in float (as llama.cpp does; default: error)")
    .option("--eora-rank <r>", "EoRA adapter rank per linear")
    .option("--lorc-rank <r>", "LoRC adapter rank per linear")
    .option("--rotate <kind>", "none | hadamard (QuaRot: fold the RMSNorm gains, rotate the residual stream by a randomised Walsh-Hadamard matrix, then quantize; the output holds the rotated model)", "none")
    .option("--rotate-seed <n>", "seed of the rotation's random signs", "0")
    .option("--act-order", "GPTQ act-order (columns by decreasing Hessian diagonal; static groups)")
    .option("--calib <spec>", "calibration data: corpus:<name>", "corpus:sotu")
    .option("--samples <n>", "calibration sequences", "128")
    .option("--seq-len <n>", "tokens per calibration sequence", "256")
    .option("--eval-chars <n>", "characters of the test split for bits per byte (0 = skip)", "20000")
    .requiredOption("--out <dir|file.gguf>", "output Hugging Face directory, or a GGUF file for llama.cpp (a path ending in .gguf; schemes f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k … q6_k mxfp4 nvfp4)")
    .option("--report <file>", "JSON report (a .md table beside it)")
    .option("--plot <file>", "per-linear output error plot (.svg or .png)")
    .option("--seed <n>", "seed of the calibration sample", "0")
    .action(async (modelArg: string, opts: Record<string, string | boolean | undefined>) => {
      const progress = defaultProgressMode();
      const out = String(opts["out"]);
      // GGUF output: checked before any work (the scheme needs a ggml type; GGUF has no adapters).
      const gguf = out.endsWith(".gguf");
      const scheme = String(opts["scheme"]);
      const floatGguf = gguf && ["f32", "f16", "bf16"].includes(checkGgufScheme(scheme, "--scheme"));
      if (gguf && opts["fallback"]) checkGgufScheme(String(opts["fallback"]), "--fallback");
      if (!gguf && ["f32", "f16", "bf16"].includes(scheme)) throw new TersorError("E_RANGE", `quantize: --scheme ${scheme} is a float type: a Hugging Face directory keeps float weights without quantizing (use it as --fallback for linears no block fits, or write a GGUF: --out model.gguf)`);
      if (gguf && (opts["eoraRank"] || opts["lorcRank"])) throw new TersorError("E_RANGE", "quantize: GGUF has no place for low-rank adapters (--eora-rank / --lorc-rank); write a Hugging Face directory for them");
      if (existsSync(out)) throw new TersorError("E_IO", `quantize: ${out} already exists; choose a new output ${gguf ? "file" : "directory"}`);
      const calib = corpusName(String(opts["calib"]), "--calib");
      const samples = positiveInt(String(opts["samples"]), "--samples");
      const seqLen = positiveInt(String(opts["seqLen"]), "--seq-len");
      const seed = Number(opts["seed"]);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new TersorError("E_RANGE", `--seed must be a non-negative integer`);
      const evalChars = Number(opts["evalChars"]);
      let path = modelArg;
      if (isReferenceModelName(modelArg)) {
        const p = referenceModelPath(modelArg);
        if (!p) throw new TersorError("E_IO", `reference model ${modelArg} is not built in this install`);
        path = p;
      }
      const model = await loadModel(path, { progress });
      if (model.source.format !== "huggingface") throw new TersorError("E_FORMAT", "quantize: the input must be a Hugging Face directory");
      const rotate = String(opts["rotate"]);
      if (rotate !== "none" && rotate !== "hadamard") throw new TersorError("E_RANGE", `--rotate must be none or hadamard, got "${rotate}"`);
      const rotateSeed = Number(opts["rotateSeed"]);
      if (!Number.isSafeInteger(rotateSeed) || rotateSeed < 0) throw new TersorError("E_RANGE", `--rotate-seed must be a non-negative integer`);
      // A hidden size the rotation cannot handle fails here, before any calibration work.
      if (rotate === "hadamard") hadamardRotation(model.config.hidden, { seed: rotateSeed });
      if (floatGguf && rotate !== "none") throw new TersorError("E_RANGE", "quantize: --rotate applies to quantized schemes; a float GGUF export copies the weights as they are");
      if (gguf && !floatGguf) {
        // Every linear's rows must fit the ggml blocks of the scheme or of the fallback (llama.cpp has no other types for them).
        // A float fallback (f16 / bf16 / f32: blocks of 1) fits every row: such linears become F16 / BF16 / F32 tensors.
        const fb = opts["fallback"] ? String(opts["fallback"]) : undefined;
        const c = model.config;
        for (const cols of new Set([c.hidden, c.heads * c.headDim, c.intermediate])) {
          const fits = (s: string) => cols % ggmlTypeByName(s)!.blockSize === 0;
          if (!fits(scheme) && (fb === undefined || !fits(fb))) {
            const what = (s: string) => `${s} (${ggmlTypeByName(s)!.blockSize} elements)`;
            throw new TersorError("E_SHAPE", `quantize: linears with rows of ${cols} ${fb ? `fit the blocks of neither ${what(scheme)} nor ${what(fb)}` : `do not fit the blocks of ${what(scheme)} and no --fallback is given`}; GGUF output needs a ggml block type for every linear`);
          }
        }
      }
      const seqs = floatGguf ? [] : await calibrationSequences(model, calib, samples, seqLen, seed);
      const before = evalChars > 0 ? await bitsPerByte(model, calib, evalChars, progress) : undefined;
      // GGUF: the driver's Hugging Face directory goes to a hidden folder beside the file, is streamed into the GGUF and removed.
      const hfOut = gguf ? join(dirname(out), `.${basename(out)}.${process.pid}.hf`) : out;
      const t0 = Date.now();
      let report: QuantizeModelReport;
      if (floatGguf) {
        const ex = await exportGguf(model.source.path, out, { type: scheme as "f16", progress, name: basename(path) });
        report = ggufExportReport(ex, scheme, (Date.now() - t0) / 1000);
      } else {
        try {
          report = await quantizeModel(model, model.source.path, seqs, hfOut, {
            scheme,
            method: String(opts["method"]) as "rtn",
            ...(opts["fallback"] ? { fallback: String(opts["fallback"]) } : {}),
            ...(opts["eoraRank"] ? { eoraRank: positiveInt(String(opts["eoraRank"]), "--eora-rank") } : {}),
            ...(opts["lorcRank"] ? { lorcRank: positiveInt(String(opts["lorcRank"]), "--lorc-rank") } : {}),
            rotate: String(opts["rotate"]) as "none",
            seed: rotateSeed,
            actOrder: Boolean(opts["actOrder"]),
            progress,
          });
          if (gguf) {
            const ex = await exportGguf(hfOut, out, { progress, name: basename(path) });
            report = { ...report, bytesAfter: ex.fileBytes, seconds: (Date.now() - t0) / 1000 };
          }
        } finally {
          if (gguf) await rm(hfOut, { recursive: true, force: true });
        }
      }
      const after = evalChars > 0 ? await bitsPerByte(await loadModel(out, { progress }), calib, evalChars, progress) : undefined;
      const full = { model: path, calib: `corpus:${calib}`, seed, bitsPerByteBefore: before ?? null, bitsPerByteAfter: after ?? null, ...report };
      const extra: Record<string, number> = {};
      if (before !== undefined) extra["bits per byte before (test)"] = before;
      if (after !== undefined) extra["bits per byte after (test)"] = after;
      const md = reportMarkdown(report, extra);
      if (opts["report"]) {
        const rp = String(opts["report"]);
        await writeFileAtomic(rp, JSON.stringify(full, null, 2) + "\n");
        await writeFileAtomic(rp.replace(/\.json$/, "") + ".md", md);
      }
      if (opts["plot"]) {
        const spec: VegaLiteSpec = {
          $schema: "https://vega.github.io/schema/vega-lite/v5.json",
          title: `calibration output error per linear (${report.method} ${report.scheme})`,
          data: { values: report.linears.flatMap((l) => [{ linear: l.name, method: report.method, err: l.outputError }, { linear: l.name, method: "rtn", err: l.rtnOutputError }]) },
          mark: "bar",
          encoding: { x: { field: "linear", type: "nominal", sort: null }, xOffset: { field: "method" }, color: { field: "method" }, y: { field: "err", type: "quantitative", scale: { type: "log" } } },
        } as VegaLiteSpec;
        await writePlot(String(opts["plot"]), spec);
      }
      process.stdout.write(md + "\n");
    });
}
