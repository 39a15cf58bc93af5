/**
 * `tersor train --config train.json [--out dir] [--json]`: trains a byte-level model with
 * @tersor/model's `train()`; writes the Hugging Face checkpoint, a JSONL training log
 * (`train_log.jsonl`) and the loss curve (`loss.svg`, `loss.png`) into the output directory.
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";

import type { Command } from "commander";
import { TersorError, defaultProgressMode, setNumThreads, writeFileAtomic } from "@tersor/core";
import { type VegaLiteSpec, writePlot } from "@tersor/eval";
import { type DataSource, type EvalRecord, type StepRecord, type TrainLog, type TrainOptions, train } from "@tersor/model";

/** Keys of train() options a JSON config cannot hold (functions). */
const CODE_ONLY = ["weightsCallback", "onEval", "onStep", "targets", "lossGrad", "shouldStop"] as const;

function rebase(p: string, base: string): string {
  return p.startsWith("corpus:") || isAbsolute(p) ? p : resolve(base, p);
}

/**
 * A train.json → train() options: file paths in `data`, `model.fromCheckpoint` and `out` are
 * relative to the config file's directory. Function-valued options are refused (`E_RANGE`).
 */
export function trainOptionsFromJson(json: unknown, baseDir: string): TrainOptions {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new TersorError("E_FORMAT", "the training config must be a JSON object");
  const o = { ...(json as Record<string, unknown>) };
  for (const k of CODE_ONLY) if (k in o) throw new TersorError("E_RANGE", `the training config cannot set "${k}": it is a function (use the train() API)`);
  if (Array.isArray(o["data"])) {
    o["data"] = (o["data"] as DataSource[]).map((d) => {
      if (typeof d === "string") return rebase(d, baseDir);
      if (typeof d === "object" && d !== null && "source" in d) {
        const s = d.source;
        return { ...d, source: Array.isArray(s) ? s.map((x) => rebase(x, baseDir)) : typeof s === "string" ? rebase(s, baseDir) : s };
      }
      return d;
    });
  }
  const m = o["model"] as Record<string, unknown> | undefined;
  if (m && typeof m["fromCheckpoint"] === "string") o["model"] = { ...m, fromCheckpoint: resolve(baseDir, m["fromCheckpoint"]) };
  if (typeof o["out"] === "string") o["out"] = resolve(baseDir, o["out"]);
  return o as TrainOptions;
}

/** At most `max` points of a series: means over equal runs of steps. */
function thin(steps: StepRecord[], max: number): Array<{ step: number; loss: number }> {
  if (steps.length <= max) return steps.map((s) => ({ step: s.step, loss: s.loss }));
  const k = Math.ceil(steps.length / max);
  const out: Array<{ step: number; loss: number }> = [];
  for (let i = 0; i < steps.length; i += k) {
    const run = steps.slice(i, i + k);
    out.push({ step: run[run.length - 1]!.step, loss: run.reduce((a, s) => a + s.loss, 0) / run.length });
  }
  return out;
}

/** The loss-curve plot: training loss per step and validation loss per domain (nats per token). */
export function lossCurveSpec(log: TrainLog, title = "training loss"): VegaLiteSpec {
  const values: Array<{ step: number; loss: number; series: string }> = thin(log.steps, 300).map((p) => ({ ...p, series: "train" }));
  for (const e of log.evals) for (const [d, r] of Object.entries(e.domains)) values.push({ step: e.step, loss: r.loss, series: `validation: ${d}` });
  const x = { field: "step", type: "quantitative", title: "step" };
  const y = { field: "loss", type: "quantitative", title: "loss (nats / token)", scale: { zero: false } };
  const color = { field: "series", type: "nominal", title: null, legend: { labelLimit: 400 } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    width: 560,
    height: 320,
    data: { values },
    layer: [
      { transform: [{ filter: "datum.series === 'train'" }], mark: { type: "line", strokeWidth: 1.2 }, encoding: { x, y, color } },
      { transform: [{ filter: "datum.series !== 'train'" }], mark: { type: "line", point: true, strokeWidth: 1.8 }, encoding: { x, y, color } },
    ],
  } as VegaLiteSpec;
}

/** The JSONL training log: one `{"type":"step",…}` or `{"type":"eval",…}` record per line, in step order. */
export function trainLogJsonl(log: TrainLog): string {
  const lines: string[] = [];
  let e = 0;
  const evals = [...log.evals].sort((a, b) => a.step - b.step);
  for (const s of log.steps) {
    // An evaluation at step k follows step k's record (step 0's comes first).
    while (e < evals.length && evals[e]!.step < s.step) lines.push(JSON.stringify({ type: "eval", ...evals[e++]! }));
    lines.push(JSON.stringify({ type: "step", ...s }));
  }
  while (e < evals.length) lines.push(JSON.stringify({ type: "eval", ...evals[e++]! }));
  return lines.join("\n") + (lines.length > 0 ? "\n" : "");
}

function evalLine(e: EvalRecord): string {
  const parts = Object.entries(e.domains).map(([d, r]) => `${d} ${r.bitsPerByte.toFixed(3)}`);
  return `step ${e.step}: validation loss ${e.loss.toFixed(4)} nats/token; bits/byte ${parts.join(", ")}\n`;
}

/** Registers `tersor train`. */
export function registerTrain(program: Command): void {
  program
    .command("train")
    .description("train a byte-level language model (Llama, Qwen2 or GPT-2 architecture) from a JSON config; writes a Hugging Face checkpoint, train_log.jsonl and loss.svg/png")
    .requiredOption("--config <file>", "train.json: the options of @tersor/model's train() (model, data, weights, steps, batchTokens, lr, …)")
    .option("--out <dir>", "checkpoint directory (overrides the config's out)")
    .option("--resume", "continue from the checkpoint in the output directory")
    .option("--json", "print a JSON summary on stdout")
    .action(async (o: { config: string; out?: string; resume?: boolean; json?: boolean }, cmd: Command) => {
      const t = cmd.optsWithGlobals<{ threads?: string }>().threads;
      if (t !== undefined) {
        const n = Number(t);
        if (!Number.isInteger(n) || n < 0) throw new TersorError("E_RANGE", `--threads must be an integer ≥ 0, got "${t}"`);
        setNumThreads(n);
      }
      let text: string;
      try {
        text = await readFile(o.config, "utf8");
      } catch (e) {
        throw new TersorError("E_IO", `cannot read ${o.config}: ${(e as Error).message}`, { cause: e });
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new TersorError("E_FORMAT", `${o.config}: not valid JSON: ${(e as Error).message}`);
      }
      const opts = trainOptionsFromJson(json, dirname(resolve(o.config)));
      if (o.out !== undefined) opts.out = resolve(o.out);
      if (o.resume) opts.resume = true;
      if (opts.out === undefined) throw new TersorError("E_RANGE", "no output directory: give --out or set \"out\" in the config");
      const out = opts.out;
      const mode = opts.progress ?? defaultProgressMode();
      opts.progress = mode;
      opts.onEval = (e) => void process.stderr.write(mode === "json" ? JSON.stringify({ type: "eval", ...e }) + "\n" : evalLine(e));
      const t0 = Date.now();
      const result = await train(opts);
      const log: TrainLog = { steps: result.steps, evals: result.evals };
      await writeFileAtomic(join(out, "train_log.jsonl"), trainLogJsonl(log));
      const spec = lossCurveSpec(log, `${result.architecture}, ${result.parameterCount.toLocaleString("en-US")} parameters`);
      await writePlot(join(out, "loss.svg"), spec);
      await writePlot(join(out, "loss.png"), spec);
      const last = result.steps[result.steps.length - 1];
      const lastEval = result.evals[result.evals.length - 1];
      const summary = {
        out,
        architecture: result.architecture,
        parameters: result.parameterCount,
        steps: result.step,
        tokens_seen: result.tokensSeen,
        final_loss: last?.loss ?? null,
        validation: lastEval ? lastEval.domains : null,
        seconds: (Date.now() - t0) / 1000,
        files: ["config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "trainer_state.json", "train_log.jsonl", "loss.svg", "loss.png"],
      };
      if (o.json) process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
      else process.stdout.write(`trained ${summary.parameters.toLocaleString("en-US")} parameters for ${summary.steps} steps (${summary.tokens_seen.toLocaleString("en-US")} tokens); final loss ${last ? last.loss.toFixed(4) : "n/a"}; checkpoint in ${out}\n`);
    });
}
