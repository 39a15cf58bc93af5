/**
 * `tersor mix swarm | fit | eval`: data mixing with proxy runs.
 *
 * - `swarm` trains proxy models on Dirichlet-sampled mixtures (RegMix's recipe) and appends their
 *   per-domain validation losses to `<out>/mixtures.csv` and `<out>/losses.csv` (resumable);
 * - `fit` fits RegMix (linear, log-linear, GBDT), Data Mixing Laws or BiMix to such tables (or to
 *   RegMix's published ones) and proposes a mixture; `--report <dir>` writes JSON, markdown and plots;
 * - `eval` trains a slightly larger model on a proposed mixture and on stratified sampling and
 *   reports per-domain and average validation loss for both.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Command } from "commander";
import { TersorError, setNumThreads, writeFileAtomic } from "@tersor/core";
import { corpus } from "@tersor/corpora";
import { writePlot } from "@tersor/eval";
import { FIT_METHODS, type FitMethod, type FitReport, domainOfSource, fitMixture, mixtureFromRecord, alignMixture, readRunTables, runSwarm, trainOnMixture, uniformMixture } from "@tersor/mix";
import { intOpt, numOpt } from "../options.js";



/** `2M`, `200k`, `1.5G` or a plain integer. */
export function parseTokens(v: string, name = "tokens"): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(v.trim());
  if (!m) throw new TersorError("E_RANGE", `--${name} must be a count like 200k or 2M, got "${v}"`);
  const mult = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  const n = Math.round(Number(m[1]) * mult);
  if (!(n >= 1)) throw new TersorError("E_RANGE", `--${name} must be at least 1, got "${v}"`);
  return n;
}

function applyThreads(cmd: Command): number | undefined {
  const n = intOpt(cmd.optsWithGlobals<{ threads?: string }>().threads, "threads", 0);
  if (n !== undefined) setNumThreads(n);
  return n;
}

function sourcesOf(v: string): string[] {
  const s = v.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (s.length < 2) throw new TersorError("E_RANGE", `--domains needs at least two comma-separated sources, got "${v}"`);
  s.forEach(domainOfSource);
  return s;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}

/** Markdown report of fitted models. */
function markdownReport(reports: FitReport[], domains: string[]): string {
  const lines = ["# Data mixing report", "", `Target: \`${reports[0]?.target ?? ""}\``, "", "## Proposed mixtures", ""];
  lines.push(`| domain | stratified | ${reports.map((r) => `${r.method}/${r.model}`).join(" | ")} |`);
  lines.push(`|---|---|${reports.map(() => "---").join("|")}|`);
  for (const d of domains) lines.push(`| ${d} | ${fmt(1 / domains.length)} | ${reports.map((r) => fmt(r.mixture[d] ?? 0)).join(" | ")} |`);
  lines.push("", "## Fit quality", "", "| model | Spearman ρ (held out) | predicted loss at proposal |", "|---|---|---|");
  for (const r of reports) lines.push(`| ${r.method}/${r.model} | ${r.spearman !== undefined ? fmt(r.spearman) : "n/a"} | ${fmt(r.predicted)} |`);
  lines.push("", "Plots: `proportions.png` (proposed vs stratified), `scatter-<model>.png` (predicted vs observed).", "");
  return lines.join("\n");
}

async function writeReport(dir: string, reports: FitReport[], domains: string[]): Promise<void> {
  await writeFileAtomic(join(dir, "report.json"), JSON.stringify({ domains, stratified: Object.fromEntries(domains.map((d) => [d, 1 / domains.length])), reports }, null, 2) + "\n");
  await writeFileAtomic(join(dir, "report.md"), markdownReport(reports, domains));
  const values = [
    ...domains.map((d) => ({ domain: d, mixer: "stratified", weight: 1 / domains.length })),
    ...reports.flatMap((r) => domains.map((d) => ({ domain: d, mixer: `${r.method}/${r.model}`, weight: r.mixture[d] ?? 0 }))),
  ];
  await writePlot(join(dir, "proportions.png"), {
    title: "Proposed mixture vs stratified",
    data: { values },
    mark: "bar",
    encoding: { y: { field: "domain", type: "nominal" }, x: { field: "weight", type: "quantitative" }, yOffset: { field: "mixer" }, color: { field: "mixer", type: "nominal" } },
    width: 400,
  });
  for (const r of reports) {
    await writePlot(join(dir, `scatter-${r.method}-${r.model}.png`), {
      title: `${r.method}/${r.model}: predicted vs observed${r.spearman !== undefined ? ` (ρ = ${r.spearman.toFixed(3)})` : ""}`,
      data: { values: r.points },
      mark: "point",
      encoding: { x: { field: "observed", type: "quantitative", scale: { zero: false } }, y: { field: "predicted", type: "quantitative", scale: { zero: false } } },
      width: 300,
      height: 300,
    });
  }
}

/** Reads `--mixture`: inline JSON or a file holding `{domain: weight}`, or `tersor mix fit --json` output (first object). */
async function readMixture(v: string): Promise<Record<string, number>> {
  let text = v.trim();
  if (!text.startsWith("{")) {
    try {
      text = await readFile(v, "utf8");
    } catch (e) {
      throw new TersorError("E_IO", `cannot read --mixture ${v}: ${(e as Error).message}`, { cause: e });
    }
  }
  const first = text.trim().split("\n")[0]!;
  let obj: unknown;
  try {
    obj = JSON.parse(text.trim().startsWith("{") && text.trim().includes("\n{") ? first : text);
  } catch (e) {
    throw new TersorError("E_FORMAT", `--mixture is not JSON: ${(e as Error).message}`);
  }
  const rec = (obj && typeof obj === "object" && "mixture" in obj ? (obj as { mixture: unknown }).mixture : obj) as Record<string, unknown>;
  if (!rec || typeof rec !== "object") throw new TersorError("E_FORMAT", "--mixture must be an object {domain: weight}");
  for (const [k, w] of Object.entries(rec)) if (typeof w !== "number") throw new TersorError("E_FORMAT", `--mixture: the weight of "${k}" is not a number`);
  return rec as Record<string, number>;
}

/** `--prior`: undefined for uniform, else the training-split UTF-8 bytes of each corpus. */
async function priorOf(kind: string, sources: string[]): Promise<number[] | undefined> {
  if (kind === "uniform") return undefined;
  if (kind !== "tokens") throw new TersorError("E_RANGE", `--prior must be uniform or tokens, got "${kind}"`);
  const out: number[] = [];
  for (const s of sources) {
    if (!s.startsWith("corpus:")) throw new TersorError("E_RANGE", `--prior tokens needs corpus: sources (byte counts), got "${s}"`);
    out.push((await corpus(domainOfSource(s)).stats({ split: "train" })).bytes);
  }
  return out;
}

/** Registers `tersor mix swarm|fit|eval`. */
export function registerMix(program: Command): void {
  const cmd = program.command("mix").description("data mixing: proxy swarms, RegMix / mixing-law / BiMix fits, evaluation against stratified sampling");

  cmd
    .command("swarm")
    .description("train proxy models on Dirichlet-sampled mixtures; append results to <out>/mixtures.csv and <out>/losses.csv (resumable)")
    .requiredOption("--domains <sources>", "comma-separated data sources, e.g. corpus:sotu,corpus:moby")
    .requiredOption("--out <dir>", "output folder")
    .option("--runs <n>", "proxy runs", "64")
    .option("--proxy <name>", "proxy model shape (ref-tiny-shape, ref-small-shape)", "ref-tiny-shape")
    .option("--tokens <n>", "training tokens per proxy (e.g. 2M)", "2M")
    .option("--batch-tokens <n>", "tokens per step", "2048")
    .option("--lr <x>", "learning rate", "0.003")
    .option("--eval-tokens <n>", "validation tokens per domain", "4096")
    .option("--prior <kind>", "mixture generator prior: uniform, or tokens (training-split bytes of each corpus, RegMix's token prior)", "uniform")
    .option("--temperature <x>", "exponent on the prior (RegMix: 0.5 flattens it)", "1")
    .option("--min-weight <x>", "zero proportions below this", "0")
    .option("--seed <n>", "seed of the mixtures, models and data", "0")
    .option("--json", "print the summary as JSON")
    .action(async (o: Record<string, string | boolean | undefined>, c: Command) => {
      const threads = applyThreads(c);
      const sources = sourcesOf(o["domains"] as string);
      const prior = await priorOf(o["prior"] as string, sources);
      const res = await runSwarm({
        sources,
        ...(prior ? { prior } : {}),
        temperature: numOpt(o["temperature"] as string, "temperature")!,
        out: o["out"] as string,
        runs: intOpt(o["runs"] as string, "runs", 1)!,
        proxy: o["proxy"] as string,
        tokens: parseTokens(o["tokens"] as string),
        batchTokens: parseTokens(o["batchTokens"] as string, "batch-tokens"),
        lr: numOpt(o["lr"] as string, "lr")!,
        evalTokens: parseTokens(o["evalTokens"] as string, "eval-tokens"),
        minWeight: numOpt(o["minWeight"] as string, "min-weight")!,
        seed: intOpt(o["seed"] as string, "seed", 0)!,
        ...(threads !== undefined ? { threads } : {}),
        onRun: (r) => {
          if (!o["json"]) process.stderr.write(`run ${r.index}: done ${r.done}/${r.total} (${r.seconds.toFixed(1)} s)\n`);
        },
      });
      if (o["json"]) process.stdout.write(JSON.stringify(res) + "\n");
      else
        process.stdout.write(
          `${res.completed} runs in ${res.out} (${res.trained} trained now, ${res.skipped} already done); ${res.runsPerHour.toFixed(1)} proxy runs per hour\n` +
            `  ${res.mixturesPath}\n  ${res.lossesPath}\n`,
        );
    });

  cmd
    .command("fit")
    .description("fit a mixer to proxy runs and propose a mixture (RegMix: linear, log-linear and GBDT)")
    .requiredOption("--method <m>", `one of ${FIT_METHODS.join(", ")}`)
    .requiredOption("--runs <csv>", "mixture CSV (index,train_<domain>...)")
    .requiredOption("--losses <csv>", "loss CSV (index,<loss columns>...)")
    .option("--target <column>", 'a loss column, a domain name, or "avg"', "avg")
    .option("--holdout-runs <csv>", "held-out mixture CSV")
    .option("--holdout-losses <csv>", "held-out loss CSV")
    .option("--samples <n>", "RegMix: candidate mixtures scored", "100000")
    .option("--top-k <n>", "RegMix: best candidates averaged", "100")
    .option("--seed <n>", "seed", "0")
    .option("--report <dir>", "write report.json, report.md and plots here")
    .option("--json", "print one JSON object per fitted model")
    .action(async (o: Record<string, string | boolean | undefined>, c: Command) => {
      applyThreads(c);
      const method = o["method"] as string;
      if (!(FIT_METHODS as readonly string[]).includes(method)) throw new TersorError("E_RANGE", `--method must be one of ${FIT_METHODS.join(", ")}, got "${method}"`);
      if ((o["holdoutRuns"] === undefined) !== (o["holdoutLosses"] === undefined)) throw new TersorError("E_RANGE", "--holdout-runs and --holdout-losses go together");
      const runs = await readRunTables(o["runs"] as string, o["losses"] as string);
      const holdout = o["holdoutRuns"] ? await readRunTables(o["holdoutRuns"] as string, o["holdoutLosses"] as string) : undefined;
      const reports = await fitMixture(method as FitMethod, runs, o["target"] as string, {
        ...(holdout ? { holdout } : {}),
        samples: intOpt(o["samples"] as string, "samples", 1)!,
        topK: intOpt(o["topK"] as string, "top-k", 1)!,
        seed: intOpt(o["seed"] as string, "seed", 0)!,
      });
      if (o["report"]) await writeReport(o["report"] as string, reports, runs.domains);
      for (const r of reports) {
        if (o["json"]) {
          process.stdout.write(JSON.stringify({ method: r.method, model: r.model, target: r.target, ...(r.spearman !== undefined ? { spearman: r.spearman } : {}), mixture: r.mixture, predicted: r.predicted }) + "\n");
        } else {
          process.stdout.write(`${r.method}/${r.model}  target ${r.target}${r.spearman !== undefined ? `  spearman ${fmt(r.spearman)}` : ""}  predicted ${fmt(r.predicted)}\n`);
          for (const d of runs.domains) process.stdout.write(`  ${d.padEnd(32)} ${fmt(r.mixture[d]!)}\n`);
        }
      }
    });

  cmd
    .command("eval")
    .description("train a model on a proposed mixture and on stratified sampling; per-domain and average validation loss")
    .requiredOption("--domains <sources>", "comma-separated data sources")
    .requiredOption("--mixture <json|file>", "{domain: weight} (inline or a file; `mix fit --json` output works)")
    .option("--proxy <name>", "model shape", "ref-small-shape")
    .option("--tokens <n>", "training tokens", "4M")
    .option("--batch-tokens <n>", "tokens per step", "4096")
    .option("--lr <x>", "learning rate", "0.003")
    .option("--eval-tokens <n>", "validation tokens per domain", "8192")
    .option("--seed <n>", "seed", "0")
    .option("--out <file>", "write the comparison as JSON")
    .option("--json", "print the comparison as JSON")
    .action(async (o: Record<string, string | boolean | undefined>, c: Command) => {
      const threads = applyThreads(c);
      const sources = sourcesOf(o["domains"] as string);
      const domains = sources.map(domainOfSource);
      const proposed = alignMixture(mixtureFromRecord(await readMixture(o["mixture"] as string), { normalise: true }), domains);
      const strat = uniformMixture(domains);
      const common = {
        proxy: o["proxy"] as string,
        tokens: parseTokens(o["tokens"] as string),
        batchTokens: parseTokens(o["batchTokens"] as string, "batch-tokens"),
        lr: numOpt(o["lr"] as string, "lr")!,
        evalTokens: parseTokens(o["evalTokens"] as string, "eval-tokens"),
        seed: intOpt(o["seed"] as string, "seed", 0)!,
        ...(threads !== undefined ? { threads } : {}),
      };
      const a = await trainOnMixture(sources, proposed.weights, common);
      const b = await trainOnMixture(sources, strat.weights, common);
      const result = {
        domains,
        proposed: { mixture: Object.fromEntries(domains.map((d, i) => [d, proposed.weights[i]!])), perDomain: a.perDomain, average: a.average },
        stratified: { mixture: Object.fromEntries(domains.map((d, i) => [d, strat.weights[i]!])), perDomain: b.perDomain, average: b.average },
        parameters: a.parameters,
      };
      if (o["out"]) await writeFileAtomic(o["out"] as string, JSON.stringify(result, null, 2) + "\n");
      if (o["json"]) process.stdout.write(JSON.stringify(result) + "\n");
      else {
        process.stdout.write(`${"domain".padEnd(16)} ${"proposed".padStart(10)} ${"stratified".padStart(10)}\n`);
        for (const d of domains) process.stdout.write(`${d.padEnd(16)} ${fmt(a.perDomain[d]!).padStart(10)} ${fmt(b.perDomain[d]!).padStart(10)}\n`);
        process.stdout.write(`${"average".padEnd(16)} ${fmt(a.average).padStart(10)} ${fmt(b.average).padStart(10)}\n`);
      }
    });
}
