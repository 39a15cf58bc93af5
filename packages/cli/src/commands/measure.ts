/**
 * `tersor measure mi | entropy | spectrum | calibration`: information measures of paired samples,
 * spectra of a model's hidden states, and calibration of predictions (tables, --json, plots).
 *
 * Inputs of vectors (`--x`, `--y`, `--pred`, `--labels`) are `.npy` files (v1/v2/v3, `<f4 <f8 <i4
 * <i8 |u1`, C order; 1-D = one column, 2-D = rows × columns), JSON files holding an array of
 * numbers or of equal-length number arrays, or JSON Lines files (`.jsonl`, `.ndjson`, `.gz`) with
 * one number, number array, or object per line (objects: the `--field` value, default "vector").
 */
import { readFile } from "node:fs/promises";
import { basename, extname } from "node:path";

import type { Command } from "commander";
import { Tensor, TersorError, readJsonl, readNpy, setNumThreads } from "@tersor/core";
import { CORPUS_NAMES, checkSplit, corpus } from "@tersor/corpora";
import {
  NEURAL_MI_ESTIMATORS,
  type CalibrationReport,
  type EvalDocument,
  type NeuralMiEstimator,
  type NeuralMiOptions,
  type InformationEstimate,
  applyTemperature,
  calibrationReport,
  codingRate,
  discreteEntropy,
  effectiveRank,
  fitTemperature,
  kdeEntropy,
  klEntropy,
  ksgMutualInformation,
  neuralMutualInformation,
  probabilityRows,
  reliabilityDiagramSpec,
  splitIndices,
  vonNeumannEntropy,
  writePlot,
} from "@tersor/eval";
import { type LoadModelOptions, loadModel } from "@tersor/model";
import { intOpt, numOpt } from "../options.js";

// ---- option parsing ---------------------------------------------------------------------------



function listOpt(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  return v.split(",").map((s) => intOpt(s.trim(), name, 1)!);
}

function applyThreads(cmd: Command): void {
  const n = intOpt(cmd.optsWithGlobals<{ threads?: string }>().threads, "threads", 0);
  if (n !== undefined) setNumThreads(n);
}

function fmt(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e6 ? x.toExponential(3) : x.toFixed(digits);
}

/** Left-aligned first column, right-aligned others. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()).join("\n") + "\n";
}

// ---- reading vectors --------------------------------------------------------------------------

/** Rows × columns of numbers read from a file. */
export interface VectorData {
  data: Float64Array;
  rows: number;
  cols: number;
}

function fromRows(values: unknown[], where: string): VectorData {
  if (values.length === 0) throw new TersorError("E_FORMAT", `${where}: no values`);
  const first = values[0];
  const cols = Array.isArray(first) ? first.length : 1;
  if (cols === 0) throw new TersorError("E_FORMAT", `${where}: row 0 is empty`);
  const data = new Float64Array(values.length * cols);
  values.forEach((v, i) => {
    const row = Array.isArray(v) ? v : [v];
    if (Array.isArray(v) !== Array.isArray(first) || row.length !== cols) throw new TersorError("E_FORMAT", `${where}: row ${i} has ${row.length} values, row 0 has ${cols}`);
    row.forEach((x, j) => {
      if (typeof x !== "number") throw new TersorError("E_FORMAT", `${where}: row ${i}, column ${j} is not a number (${JSON.stringify(x)})`);
      data[i * cols + j] = x;
    });
  });
  return { data, rows: values.length, cols };
}

/** Reads a `.npy`, JSON or JSON Lines file of vectors (see the module notes). */
export async function readVectors(path: string, field = "vector"): Promise<VectorData> {
  const name = basename(path).toLowerCase();
  const ext = extname(name.endsWith(".gz") ? name.slice(0, -3) : name);
  if (ext === ".npy") {
    const t = await readNpy(path);
    if (t.rank === 0 || t.rank > 2) throw new TersorError("E_SHAPE", `${path}: expected a 1-D or 2-D array, got shape [${t.shape.join(", ")}]`);
    const data = t.dtype === "i64" ? Float64Array.from(t.data as BigInt64Array, (v) => Number(v)) : Float64Array.from(t.data as ArrayLike<number>);
    return { data, rows: t.shape[0]!, cols: t.rank === 1 ? 1 : t.shape[1]! };
  }
  if (ext === ".json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path, "utf8"));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code) throw new TersorError("E_IO", `cannot read ${path}: ${err.code} ${err.message}`, { cause: e });
      throw new TersorError("E_FORMAT", `${path}: not valid JSON: ${err.message}`);
    }
    if (!Array.isArray(parsed)) throw new TersorError("E_FORMAT", `${path}: expected a JSON array of numbers or of number arrays`);
    return fromRows(parsed, path);
  }
  if (ext === ".jsonl" || ext === ".ndjson") {
    const rows: unknown[] = [];
    let line = 0;
    for await (const rec of readJsonl<unknown>(path)) {
      line++;
      if (typeof rec === "number" || Array.isArray(rec)) rows.push(rec);
      else if (typeof rec === "object" && rec !== null && field in rec) rows.push((rec as Record<string, unknown>)[field]);
      else throw new TersorError("E_FORMAT", `${path}: line ${line} is neither a number, an array, nor an object with a "${field}" field`);
    }
    return fromRows(rows, path);
  }
  throw new TersorError("E_FORMAT", `${path}: unknown vector file type "${ext}" (use .npy, .json or .jsonl)`);
}

// ---- helpers ---------------------------------------------------------------------------------

/** Samples as an f64 Tensor (rows × columns), the form @tersor/eval's estimators take. */
function asF64(v: VectorData): Tensor<"f64"> {
  return new Tensor("f64", [v.rows, v.cols], v.data);
}

/** "[lo, hi]" of an estimate's interval, or undefined. */
function ciOf(e: InformationEstimate): { level: number; lo: number; hi: number; method: string } | undefined {
  return e.ci ? { level: e.ci.level, lo: e.ci.lower, hi: e.ci.upper, method: e.ci.method } : undefined;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9 after one Newton step). */
function probit(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  return x;
}

function checkLevel(ci: number | undefined): void {
  if (ci !== undefined && !(ci > 0 && ci < 1)) throw new TersorError("E_RANGE", `--ci must be in (0, 1), got ${ci}`);
}

function asTensor(v: VectorData): Tensor<"f32"> {
  return new Tensor("f32", [v.rows, v.cols], Float32Array.from(v.data));
}

// ---- documents for spectra ---------------------------------------------------------------------

async function* docsOf(data: string, o: { split: string; textField: string; maxDocs: number }): AsyncGenerator<EvalDocument> {
  let n = 0;
  if (o.maxDocs === 0) return;
  if (data.startsWith("corpus:")) {
    const name = data.slice("corpus:".length);
    if (!CORPUS_NAMES.includes(name)) throw new TersorError("E_RANGE", `unknown corpus "${name}"; known: ${CORPUS_NAMES.join(", ")}`);
    for await (const d of corpus(name).docs({ split: checkSplit(o.split) })) {
      yield { text: d.text, domain: d.domain };
      if (++n >= o.maxDocs) return;
    }
    return;
  }
  let line = 0;
  for await (const rec of readJsonl<unknown>(data)) {
    line++;
    const v = typeof rec === "object" && rec !== null ? (rec as Record<string, unknown>)[o.textField] : undefined;
    if (typeof v !== "string") throw new TersorError("E_FORMAT", `${data}: record ${line} has no string field "${o.textField}" (choose one with --text-field)`);
    yield { text: v };
    if (++n >= o.maxDocs) return;
  }
}

// ---- calibration output ------------------------------------------------------------------------

function calibrationSummary(r: CalibrationReport) {
  return { kind: r.kind, samples: r.samples, classes: r.classes, binning: r.binning, confidence: r.confidence, ece: r.ece, mce: r.mce, rmsce: r.rmsce, brier: r.brier, nll: r.nll, accuracy: r.accuracy };
}

function calibrationText(r: CalibrationReport, label?: string): string {
  const head = label ? `${label}: ` : "";
  const lines = [
    `${head}${r.samples} samples, ${r.kind}${r.kind === "multiclass" ? ` (${r.classes} classes)` : ""}, ${r.bins.length} ${r.binning} bins, confidence ${r.confidence}`,
    table([
      ["ECE", "MCE", "RMSCE", "Brier", "NLL", "accuracy"],
      [fmt(r.ece), fmt(r.mce), fmt(r.rmsce), fmt(r.brier), fmt(r.nll), fmt(r.accuracy)],
    ]).trimEnd(),
    "",
    table([
      ["bin", "lo", "hi", "count", "confidence", r.kind === "binary" && r.confidence === "positive" ? "frac class 1" : "accuracy", "gap"],
      ...r.bins.map((b, i) => [String(i), fmt(b.lo), fmt(b.hi), String(b.count), b.count ? fmt(b.confidence) : "-", b.count ? fmt(b.accuracy) : "-", b.count ? fmt(b.gap) : "-"]),
    ]).trimEnd(),
  ];
  return lines.join("\n") + "\n";
}

function predictionsOf(v: VectorData): number[] | number[][] {
  if (v.cols === 1) return Array.from(v.data);
  return Array.from({ length: v.rows }, (_, i) => Array.from(v.data.subarray(i * v.cols, (i + 1) * v.cols)));
}

// ---- registration ------------------------------------------------------------------------------

/** Registers `tersor measure mi|entropy|spectrum|calibration`. */
export function registerMeasure(program: Command): void {
  const cmd = program.command("measure").description("information measures, hidden-state spectra and calibration");

  cmd
    .command("mi")
    .description("mutual information I(X;Y) of paired samples (rows of --x and --y), in nats and bits")
    .requiredOption("--x <file>", "samples of X (.npy, .json or .jsonl; rows × columns)")
    .requiredOption("--y <file>", "samples of Y, paired row by row with --x")
    .option("--estimator <name>", `ksg1, ksg2 (k-NN) or ${NEURAL_MI_ESTIMATORS.join(", ")} (neural bounds)`, "ksg1")
    .option("--k <k>", "neighbours (KSG)", "3")
    .option("--ci <level>", "confidence level of an interval (e.g. 0.95)")
    .option("--field <name>", "JSONL objects: the field holding the vector", "vector")
    .option("--steps <n>", "neural: Adam steps", "500")
    .option("--batch-size <n>", "neural: batch size N (InfoNCE cannot exceed log N)", "128")
    .option("--lr <rate>", "neural: Adam learning rate", "5e-4")
    .option("--critic <kind>", "neural: concat or separable", "concat")
    .option("--hidden <widths>", "neural: hidden widths of the critic, comma-separated", "64,64")
    .option("--clip <tau>", "neural: SMILE's clip τ", "5")
    .option("--holdout <fraction>", "neural: fraction of samples kept out of training for the estimate", "0")
    .option("--seed <n>", "neural: seed", "0")
    .option("--json", "print one JSON object")
    .action(
      async (
        o: {
          x: string;
          y: string;
          estimator: string;
          k: string;
          ci?: string;
          field: string;
          steps: string;
          batchSize: string;
          lr: string;
          critic: string;
          hidden: string;
          clip: string;
          holdout: string;
          seed: string;
          json?: boolean;
        },
        c: Command,
      ) => {
        applyThreads(c);
        const ci = numOpt(o.ci, "ci");
        checkLevel(ci);
        const k = intOpt(o.k, "k", 1)!;
        const est = o.estimator;
        if (est !== "ksg1" && est !== "ksg2" && !(NEURAL_MI_ESTIMATORS as readonly string[]).includes(est)) {
          throw new TersorError("E_RANGE", `--estimator must be ksg1, ksg2, ${NEURAL_MI_ESTIMATORS.join(", ")}; got "${est}"`);
        }
        if (o.critic !== "concat" && o.critic !== "separable") throw new TersorError("E_RANGE", `--critic must be concat or separable, got "${o.critic}"`);
        const neural: NeuralMiOptions = {
          estimator: est as NeuralMiEstimator,
          critic: o.critic,
          hidden: listOpt(o.hidden, "hidden")!,
          steps: intOpt(o.steps, "steps", 1)!,
          batchSize: intOpt(o.batchSize, "batch-size", 2)!,
          learningRate: numOpt(o.lr, "lr")!,
          clip: numOpt(o.clip, "clip")!,
          holdout: numOpt(o.holdout, "holdout")!,
          seed: intOpt(o.seed, "seed", 0)!,
        };
        const x = await readVectors(o.x, o.field);
        const y = await readVectors(o.y, o.field);
        if (x.rows !== y.rows) throw new TersorError("E_SHAPE", `--x has ${x.rows} samples and --y has ${y.rows}: they must be paired row by row`);
        if (est === "ksg1" || est === "ksg2") {
          const e = await ksgMutualInformation(asF64(x), asF64(y), { k, algorithm: est === "ksg1" ? 1 : 2, ...(ci !== undefined ? { ci, seed: neural.seed! } : {}) });
          const interval = ciOf(e);
          if (o.json) {
            process.stdout.write(JSON.stringify({ estimator: est, k, nats: e.value, bits: e.value / Math.LN2, samples: x.rows, dx: x.cols, dy: y.cols, ...(interval ? { ci: interval } : {}) }, null, 2) + "\n");
            return;
          }
          const lines = [
            `estimator   ${est} (Kraskov–Stögbauer–Grassberger algorithm ${est === "ksg1" ? 1 : 2}, k = ${k})`,
            `I(X;Y)      ${fmt(e.value)} nats = ${fmt(e.value / Math.LN2)} bits`,
            `samples     ${x.rows} (x: ${x.cols} column${x.cols === 1 ? "" : "s"}, y: ${y.cols})`,
          ];
          if (interval) lines.push(`${ci! * 100}% CI      [${fmt(interval.lo)}, ${fmt(interval.hi)}] (${interval.method})`);
          process.stdout.write(lines.join("\n") + "\n");
          return;
        }
        const r = await neuralMutualInformation(asTensor(x), asTensor(y), neural);
        let interval: [number, number] | undefined;
        if (ci !== undefined) {
          const B = r.batchEstimates.length;
          const z = probit(0.5 + ci / 2);
          const half = B > 1 ? (z * r.batchStd) / Math.sqrt(B) : Number.NaN;
          interval = [r.estimate - half, r.estimate + half];
        }
        if (o.json) {
          const out: Record<string, unknown> = {
            estimator: r.estimator,
            nats: r.estimate,
            bits: r.bits,
            samples: x.rows,
            dx: x.cols,
            dy: y.cols,
            critic: neural.critic,
            hidden: neural.hidden,
            steps: neural.steps,
            batch_size: r.batchSize,
            log_batch_size: r.logBatchSize,
            eval_batches: r.batchEstimates.length,
            batch_std: r.batchStd,
            train_samples: r.trainSamples,
            eval_samples: r.evalSamples,
          };
          if (r.saturated !== undefined) out["saturated"] = r.saturated;
          if (interval) out["ci"] = { level: ci, lo: interval[0], hi: interval[1], method: "normal approximation over evaluation batches" };
          process.stdout.write(JSON.stringify(out, null, 2) + "\n");
          return;
        }
        const rows = [
          ["estimator", `${r.estimator} (neural bound, ${neural.critic} critic ${neural.hidden!.join("-")}, ${neural.steps} steps, batch ${r.batchSize})`],
          ["I(X;Y)", `${fmt(r.estimate)} nats = ${fmt(r.bits)} bits`],
          ["samples", `${x.rows} (x: ${x.cols} column${x.cols === 1 ? "" : "s"}, y: ${y.cols}); trained on ${r.trainSamples}, estimated on ${r.evalSamples}`],
          ["batch std", `${fmt(r.batchStd)} over ${r.batchEstimates.length} evaluation batches`],
        ];
        if (interval) rows.push([`${ci! * 100}% CI`, `[${fmt(interval[0])}, ${fmt(interval[1])}] (normal approximation over evaluation batches; excludes critic-training variability)`]);
        if (r.estimator === "infonce") rows.push(["note", `InfoNCE cannot exceed log N = ${fmt(r.logBatchSize)}${r.saturated ? ": the estimate is at that ceiling, the true MI may be larger (raise --batch-size)" : ""}`]);
        process.stdout.write(rows.map(([a, b]) => `${a!.padEnd(10)}  ${b}`).join("\n") + "\n");
      },
    );

  cmd
    .command("entropy")
    .description("entropy of samples (rows of --x), in nats and bits")
    .requiredOption("--x <file>", "samples (.npy, .json or .jsonl; rows × columns)")
    .option("--estimator <name>", "kl (Kozachenko–Leonenko), kde or discrete (plug-in over distinct rows)", "kl")
    .option("--k <k>", "neighbours (kl)", "3")
    .option("--bandwidth <h>", "kernel bandwidth (kde; default: the median heuristic)")
    .option("--miller-madow", "discrete: add the Miller–Madow bias correction")
    .option("--ci <level>", "confidence level of a resampling interval (e.g. 0.95)")
    .option("--field <name>", "JSONL objects: the field holding the vector", "vector")
    .option("--json", "print one JSON object")
    .action(async (o: { x: string; estimator: string; k: string; bandwidth?: string; millerMadow?: boolean; ci?: string; field: string; json?: boolean }, c: Command) => {
      applyThreads(c);
      if (!["kl", "kde", "discrete"].includes(o.estimator)) throw new TersorError("E_RANGE", `--estimator must be kl, kde or discrete, got "${o.estimator}"`);
      const k = intOpt(o.k, "k", 1)!;
      const h = numOpt(o.bandwidth, "bandwidth");
      if (h !== undefined && !(h > 0)) throw new TersorError("E_RANGE", `--bandwidth must be > 0, got ${h}`);
      const x = await readVectors(o.x, o.field);
      for (let i = 0; i < x.data.length; i++) {
        if (!Number.isFinite(x.data[i]!)) throw new TersorError("E_RANGE", `${o.x}: row ${Math.floor(i / x.cols)}, column ${i % x.cols} is not finite`);
      }
      const ci = numOpt(o.ci, "ci");
      checkLevel(ci);
      const ciOpts = ci !== undefined ? { ci } : {};
      let e: InformationEstimate;
      let what: string;
      if (o.estimator === "kl") {
        e = await klEntropy(asF64(x), { k, ...ciOpts });
        what = `kl (Kozachenko–Leonenko, k = ${k})`;
      } else if (o.estimator === "kde") {
        e = await kdeEntropy(asF64(x), { bandwidth: h ?? "median", ...ciOpts });
        what = `kde (Gaussian kernel, bandwidth ${h ?? "median heuristic"})`;
      } else {
        const rows = Array.from({ length: x.rows }, (_, i) => Array.from(x.data.subarray(i * x.cols, (i + 1) * x.cols)));
        e = await discreteEntropy(rows, { correction: o.millerMadow ? "miller-madow" : "none", ...ciOpts });
        what = `discrete (${o.millerMadow ? "Miller–Madow" : "plug-in"} over distinct rows)`;
      }
      const interval = ciOf(e);
      if (o.json) {
        process.stdout.write(JSON.stringify({ estimator: o.estimator, nats: e.value, bits: e.value / Math.LN2, samples: x.rows, dims: x.cols, ...(e.parameters ? { parameters: e.parameters } : {}), ...(interval ? { ci: interval } : {}) }, null, 2) + "\n");
        return;
      }
      const lines = [`estimator   ${what}`, `H(X)        ${fmt(e.value)} nats = ${fmt(e.value / Math.LN2)} bits`, `samples     ${x.rows} × ${x.cols}`];
      if (interval) lines.push(`${ci! * 100}% CI      [${fmt(interval.lo)}, ${fmt(interval.hi)}] (${interval.method})`);
      process.stdout.write(lines.join("\n") + "\n");
    });

  cmd
    .command("spectrum")
    .description(
      "per-layer effective rank, von Neumann entropy (nats) and coding rate (nats, ε² = 0.5) of a model's token-level hidden states (Model.hiddenStates; each document's first context-length tokens)",
    )
    .argument("<model>", "model directory, .gguf file or model name")
    .requiredOption("--data <source>", `corpus:<name> (${CORPUS_NAMES.join(", ")}) or a JSONL file`)
    .option("--split <split>", "corpus split", "test")
    .option("--text-field <name>", "JSONL: the field holding the text", "text")
    .option("--max-docs <n>", "documents to read", "64")
    .option("--max-tokens <n>", "token rows kept per layer", "2048")
    .option("--tokenizer <path>", "tokenizer.json (or a directory holding one) instead of the model's own")
    .option("--dtype <dtype>", "round the weights to f32, f16 or bf16 when loading")
    .option("--json", "print one JSON object")
    .action(
      async (
        path: string,
        o: { data: string; split: string; textField: string; maxDocs: string; maxTokens: string; tokenizer?: string; dtype?: string; json?: boolean },
        c: Command,
      ) => {
        applyThreads(c);
        const maxDocs = intOpt(o.maxDocs, "max-docs", 1)!;
        const maxTokens = intOpt(o.maxTokens, "max-tokens", 2)!;
        checkSplit(o.split);
        if (o.dtype !== undefined && o.dtype !== "f32" && o.dtype !== "f16" && o.dtype !== "bf16") throw new TersorError("E_RANGE", `--dtype must be f32, f16 or bf16, got "${o.dtype}"`);
        const opts: LoadModelOptions = {};
        if (o.tokenizer !== undefined) opts.tokenizer = o.tokenizer;
        if (o.dtype !== undefined) opts.dtype = o.dtype as "f32" | "f16" | "bf16";
        const model = await loadModel(path, opts);
        const hidden = await collectHidden(model, docsOf(o.data, { split: o.split, textField: o.textField, maxDocs }), maxTokens);
        if (hidden.rows < 2) throw new TersorError("E_RANGE", `only ${hidden.rows} token(s) were read from ${o.data}: a spectrum needs at least 2`);
        const layers = [];
        for (const [l, z] of hidden.layers.entries()) {
          const t = new Tensor("f64", [hidden.rows, hidden.cols], z);
          layers.push({
            layer: l,
            effectiveRank: (await effectiveRank(t)).value,
            vonNeumannEntropy: (await vonNeumannEntropy(t)).value,
            codingRate: (await codingRate(t)).value,
          });
        }
        if (o.json) {
          process.stdout.write(JSON.stringify({ model: model.source.path, data: o.data, tokens: hidden.rows, hidden: hidden.cols, layers }, null, 2) + "\n");
          return;
        }
        process.stdout.write(
          table([
            ["layer", "effective rank", "von Neumann entropy", "coding rate"],
            ...layers.map((r) => [String(r.layer), fmt(r.effectiveRank), fmt(r.vonNeumannEntropy), fmt(r.codingRate)]),
          ]) + `\n${hidden.rows} token rows of width ${hidden.cols} per layer (layer 0 = embeddings)\n`,
        );
      },
    );

  cmd
    .command("calibration")
    .description("calibration of predictions against labels: ECE, MCE, RMS calibration error, Brier, NLL, reliability diagram, temperature scaling")
    .requiredOption("--pred <file>", "predictions: n probabilities of class 1 (binary) or n × K rows (multiclass); .npy, .json or .jsonl")
    .requiredOption("--labels <file>", "n integer labels (binary: 0/1)")
    .option("--bins <n>", "number of bins", "15")
    .option("--equal-mass", "equal-mass bins (default: uniform bins of width 1/bins)")
    .option("--logits", "the predictions are logits (sigmoid / softmax)")
    .option("--top-label", "binary: bin max(p, 1 − p) against correctness instead of p(class 1) against the class-1 frequency")
    .option("--plot <file>", "write a reliability diagram (.png or .svg)")
    .option("--temperature", "fit a temperature on a validation split and report the rest before and after scaling")
    .option("--val-fraction <f>", "with --temperature: the validation fraction", "0.5")
    .option("--seed <n>", "with --temperature: seed of the split", "0")
    .option("--field <name>", "JSONL objects: the field holding the vector", "vector")
    .option("--json", "print one JSON object")
    .action(
      async (o: {
        pred: string;
        labels: string;
        bins: string;
        equalMass?: boolean;
        logits?: boolean;
        topLabel?: boolean;
        plot?: string;
        temperature?: boolean;
        valFraction: string;
        seed: string;
        field: string;
        json?: boolean;
      }) => {
        const bins = Number(o.bins);
        if (o.bins.trim() === "" || !Number.isInteger(bins) || bins < 1) throw new TersorError("E_RANGE", `--bins must be an integer ≥ 1, got "${o.bins}"`);
        if (o.plot !== undefined && !/\.(png|svg)$/i.test(o.plot)) throw new TersorError("E_RANGE", `--plot must name a .png or .svg file, got "${o.plot}"`);
        const pred = await readVectors(o.pred, o.field);
        const lab = await readVectors(o.labels, o.field);
        if (lab.cols !== 1) throw new TersorError("E_SHAPE", `${o.labels}: labels must be one column, got ${lab.cols}`);
        const P = predictionsOf(pred);
        const y = Array.from(lab.data);
        const opts = {
          bins,
          binning: o.equalMass ? ("equal-mass" as const) : ("uniform" as const),
          confidence: o.topLabel ? ("top-label" as const) : ("positive" as const),
        };
        let report: CalibrationReport;
        let temp: { temperature: number; nllBefore: number; nllAfter: number; validation: number; before: CalibrationReport } | undefined;
        if (o.temperature) {
          const fraction = numOpt(o.valFraction, "val-fraction")!;
          if (y.length !== pred.rows) throw new TersorError("E_SHAPE", `${y.length} labels for ${pred.rows} predictions: the lengths must match`);
          const { validation, test } = splitIndices(pred.rows, fraction, intOpt(o.seed, "seed", 0)!);
          const pick = <T>(a: T[], idx: number[]) => idx.map((i) => a[i]!);
          const Pa = P as (number | number[])[];
          const fit = fitTemperature(pick(Pa, validation) as number[] | number[][], pick(y, validation), { logits: o.logits ?? false });
          const testPred = pick(Pa, test) as number[] | number[][];
          const before = calibrationReport(testPred, pick(y, test), { ...opts, logits: o.logits ?? false });
          report = calibrationReport(probabilityRows(applyTemperature(testPred, fit.temperature, { logits: o.logits ?? false })), pick(y, test), opts);
          temp = { temperature: fit.temperature, nllBefore: fit.nllBefore, nllAfter: fit.nllAfter, validation: validation.length, before };
        } else {
          report = calibrationReport(P, y, { ...opts, logits: o.logits ?? false });
        }
        if (o.plot !== undefined) {
          const title = temp ? `after temperature scaling (T = ${temp.temperature.toFixed(3)})` : undefined;
          const spec = reliabilityDiagramSpec(report, title ? { title: `Reliability ${title}: ECE ${report.ece.toFixed(4)}` } : {});
          await writePlot(o.plot, spec);
        }
        if (o.json) {
          const out: Record<string, unknown> = { ...calibrationSummary(report), bins: report.bins };
          if (temp) out["temperature_scaling"] = { temperature: temp.temperature, validation_samples: temp.validation, validation_nll_before: temp.nllBefore, validation_nll_after: temp.nllAfter, test_before: calibrationSummary(temp.before) };
          if (o.plot !== undefined) out["plot"] = o.plot;
          process.stdout.write(JSON.stringify(out, null, 2) + "\n");
          return;
        }
        let text = "";
        if (temp) {
          text += `temperature scaling: T = ${fmt(temp.temperature)} fitted on ${temp.validation} validation samples (NLL ${fmt(temp.nllBefore)} → ${fmt(temp.nllAfter)})\n\n`;
          text += calibrationText(temp.before, "test split before") + "\n";
          text += calibrationText(report, "test split after");
        } else text += calibrationText(report);
        if (o.plot !== undefined) text += `\nreliability diagram written to ${o.plot}\n`;
        process.stdout.write(text);
      },
    );
}

/** Token-level hidden states of every layer (0 = embeddings … L), up to `maxTokens` rows per layer. */
async function collectHidden(
  model: Awaited<ReturnType<typeof loadModel>>,
  docs: AsyncIterable<EvalDocument>,
  maxTokens: number,
): Promise<{ layers: Float64Array[]; rows: number; cols: number }> {
  const L = model.config.layers;
  const C = model.config.hidden;
  const layers = Array.from({ length: L + 1 }, () => new Float64Array(maxTokens * C));
  let rows = 0;
  for await (const d of docs) {
    if (rows >= maxTokens) break;
    let ids = model.encode(d.text);
    if (ids.length === 0) continue;
    ids = ids.slice(0, Math.min(model.maxLength, maxTokens - rows));
    const hs = await model.hiddenStates(ids, { layers: Array.from({ length: L + 1 }, (_, l) => l), pool: "none" });
    hs.forEach((h, l) => layers[l]!.set(h.data, rows * C));
    rows += ids.length;
  }
  return { layers: layers.map((a) => a.subarray(0, rows * C)), rows, cols: C };
}
