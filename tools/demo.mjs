#!/usr/bin/env node
// `npm run demo`: tersor's whole job on the bundled data, through the real `tersor` commands,
// everything under out/demo/ (removed and rebuilt on every run):
//
//   1. select    dedup (MinHash-LSH) email-ham; DSIR toward Moby-Dick's train split from the
//                train splits of sotu, email-ham (deduplicated) and wordnet; a random sample of
//                moby itself; each domain's validation split is added for held-out losses.
//   2. mix       RegMix checked on its published proxy runs (Spearman ρ on the held-out runs),
//                then a proxy swarm over our four domains and a RegMix fit → domain weights.
//   3. train     a ref-tiny-shaped student on the selected data under those weights.
//   4. distil    ref-small's top-k logits cached once; the student continued with KD against the
//                cache and, for the same steps and seed, with CE only; teacher/KD/CE bits per byte.
//   5. quantize  the distilled student: 4-bit GPTQ (Q4_0 blocks) and Q8_0 to a GGUF file; the
//                teacher ref-small: Q4_K with GPTQ.
//   6. kv        `tersor kv eval` of the distilled student on moby: fp16, KIVI, KVQuant, StreamingLLM.
//   7. report    out/demo/report.md, report.html and report.json (tools/demo/report.mjs).
//
// Deterministic under DEMO_SEED (default 2026): every command gets its seed. Sizes are chosen so
// the whole demo runs in a few minutes on two cores. A failing step stops the demo with a
// non-zero exit and names the step.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { writeFileAtomic } from "@tersor/core";

import { writeDemoReport } from "./demo/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "out", "demo");
const cli = join(root, "packages", "cli", "dist", "bin.js");
const seed = Number(process.env["DEMO_SEED"] ?? 2026);
if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`DEMO_SEED must be a non-negative integer, got ${process.env["DEMO_SEED"]}`);

/** Paths as the commands see them (the demo runs them from the repository root). */
const rel = (p) => relative(root, p);
const o = (...p) => rel(join(out, ...p));

class StepError extends Error {}
let currentStep = "setup";

function section(title) {
  process.stdout.write(`\n=== ${title} ===\n`);
}

function say(line) {
  process.stdout.write(`  ${line}\n`);
}

/**
 * Runs `tersor <args>`; progress and messages on stderr pass through; stdout is captured.
 * With `json`, stdout is parsed (one JSON document, or one object per line) and returned;
 * otherwise it is echoed (unless `echo` is false: the demo prints the key figures itself) and returned as text. A non-zero exit stops the demo, naming the step.
 */
function tersor(args, { json = false, echo = true } = {}) {
  process.stdout.write(`$ tersor ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "inherit"], cwd: root, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new StepError(`step "${currentStep}": tersor ${args[0]} could not run: ${r.error.message}`);
  if (r.status !== 0) {
    if (r.stdout) process.stdout.write(r.stdout);
    throw new StepError(`step "${currentStep}": tersor ${args.join(" ")} exited with ${r.status ?? r.signal}`);
  }
  if (!json) {
    if (echo) process.stdout.write(r.stdout);
    return r.stdout;
  }
  const text = r.stdout.trim();
  try {
    return JSON.parse(text);
  } catch {
    try {
      return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
    } catch (e) {
      throw new StepError(`step "${currentStep}": tersor ${args[0]} printed no JSON: ${e.message}`);
    }
  }
}

function readJson(p) {
  return JSON.parse(readFileSync(p, "utf8"));
}

const timings = {};
async function step(name, title, fn) {
  currentStep = name;
  section(title);
  const t0 = performance.now();
  const r = await fn();
  timings[name] = (performance.now() - t0) / 1000;
  say(`(${timings[name].toFixed(1)} s)`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Sizes: small enough for a few minutes on two cores, large enough to show each effect.
const TARGET = "corpus:moby:train";
const DOMAINS = [
  // domain, input pool, method, budget (documents)
  { domain: "moby", input: "corpus:moby:train", method: "random", budget: 8 },
  { domain: "sotu", input: "corpus:sotu:train", method: "dsir", budget: 3 },
  { domain: "email-ham", input: "dedup", method: "dsir", budget: 8 },
  { domain: "wordnet", input: "corpus:wordnet:train", method: "dsir", budget: 300 },
];
const STUDENT = { arch: "llama", dim: 128, layers: 2, heads: 4, kvHeads: 2, intermediate: 352, contextLength: 256 }; // ref-tiny's shape
const SWARM = { runs: 16, tokens: "120k" };
const TRAIN_STEPS = 150;
const DISTILL_STEPS = 80;

async function main() {
  const started = new Date();
  const t0 = performance.now();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, "data"), { recursive: true });
  const results = { meta: { seed, started: started.toISOString() }, timings };

  // 1. select ------------------------------------------------------------------------------------
  results.select = await step("select", "1. select: MinHash dedup, then DSIR toward Moby-Dick (tersor dedup, tersor select)", async () => {
    mkdirSync(join(out, "select"), { recursive: true });
    const dedupOut = o("select", "email-ham.dedup.jsonl");
    const d = tersor(["dedup", "corpus:email-ham:train", "--mode", "minhash", "--threshold", "0.8", "--out", dedupOut, "--report", o("select", "dedup-email-ham.html"), "--json"], { json: true });
    say(`email-ham train split: ${d.documents} documents, kept ${d.kept}; dropped ${d.exact_duplicates} exact and ${d.near_duplicates} near duplicates (${d.clusters_with_duplicates} clusters, largest ${d.largest_cluster})`);
    const domains = [];
    for (const spec of DOMAINS) {
      const input = spec.input === "dedup" ? dedupOut : spec.input;
      const selOut = o("select", `${spec.domain}.jsonl`);
      const args = ["select", input, "--method", spec.method, "--budget", String(spec.budget), "--seed", String(seed), "--out", selOut, "--report", o("select", `select-${spec.domain}.html`), "--json"];
      if (spec.method === "dsir") args.push("--target", TARGET);
      const s = tersor(args, { json: true });
      const val = o("select", `${spec.domain}.validation.jsonl`);
      tersor(["corpus", "export", spec.domain, "--split", "validation", "--out", val, "--json"], { json: true });
      // The training file of the domain: the selected (train-split) documents, then the domain's
      // validation split; the loader assigns each record to its corpus split by id, so the
      // validation documents are held out and the test split is never read.
      const selected = readFileSync(join(root, selOut), "utf8");
      writeFileSync(join(out, "data", `${spec.domain}.jsonl`), selected + readFileSync(join(root, val), "utf8"));
      const b = statSync(join(root, selOut)).size;
      domains.push({
        domain: spec.domain,
        input,
        method: spec.method,
        pool: s.documents,
        selected: s.selected,
        bytes: b,
        ...(s.target_alignment_selected !== undefined ? { alignmentSelected: s.target_alignment_selected, alignmentRandom: s.target_alignment_random } : {}),
      });
      say(`${spec.domain}: ${spec.method} kept ${s.selected} of ${s.documents} documents (${(b / 1024).toFixed(1)} KiB)` + (s.target_alignment_selected !== undefined ? `; target alignment ${s.target_alignment_selected.toFixed(4)} vs random ${s.target_alignment_random.toFixed(4)}` : ""));
    }
    return {
      text: `Target: Moby-Dick's train split (${TARGET}). email-ham's train split is deduplicated with MinHash-LSH (5-word shingles, 112 permutations, Jaccard threshold 0.8) before selection; DSIR keeps the documents of each pool whose hashed n-gram features are most likely under the target's distribution; moby itself is sampled at random. Target alignment is the mean ZIP-FIT (gzip) similarity of the kept documents to the target, against a random subset of the same size.`,
      dedup: { input: "corpus:email-ham:train", ...d },
      domains,
      plots: [],
    };
  });
  const dataFiles = DOMAINS.map((d) => o("data", `${d.domain}.jsonl`));

  // 2. mix ---------------------------------------------------------------------------------------
  results.mix = await step("mix", "2. mix: RegMix on its published runs, then a proxy swarm over our domains (tersor mix fit, tersor mix swarm)", async () => {
    const rm = join(root, "..", "shared", "data", "regmix");
    const published = [];
    let publishedNote;
    try {
      statSync(join(rm, "train_mixture_1m.csv"));
      const fits = tersor(["mix", "fit", "--method", "regmix", "--runs", rel(join(rm, "train_mixture_1m.csv")), "--losses", rel(join(rm, "train_pile_loss_1m.csv")), "--holdout-runs", rel(join(rm, "test_mixture_1m.csv")), "--holdout-losses", rel(join(rm, "test_pile_loss_1m.csv")), "--target", "the_pile_pile_cc", "--samples", "20000", "--seed", String(seed), "--json"], { json: true });
      for (const f of [fits].flat()) {
        published.push({ model: f.model, target: f.target, spearman: f.spearman });
        say(`RegMix ${f.model} on the published runs: Spearman ρ ${f.spearman.toFixed(4)} on the 256 held-out runs (Pile-CC loss)`);
      }
      publishedNote = "The RegMix paper reports ρ 98.92 (LightGBM) for this split; ordinary least squares gives about 90.2.";
    } catch (e) {
      if (e instanceof StepError) throw e;
      say(`(skipped RegMix's published runs: ${rel(rm)} is not here)`);
    }
    const swarmDir = o("mix", "swarm");
    const sw = tersor(["mix", "swarm", "--domains", dataFiles.join(","), "--out", swarmDir, "--runs", String(SWARM.runs), "--proxy", "ref-tiny-shape", "--tokens", SWARM.tokens, "--batch-tokens", "2048", "--eval-tokens", "4096", "--seed", String(seed), "--json"], { json: true });
    say(`${sw.completed} proxy runs of ${SWARM.tokens} tokens in ${sw.seconds.toFixed(1)} s`);
    const fits = [tersor(["mix", "fit", "--method", "regmix", "--runs", join(swarmDir, "mixtures.csv"), "--losses", join(swarmDir, "losses.csv"), "--target", "avg", "--samples", "20000", "--top-k", "50", "--seed", String(seed), "--report", o("mix", "report"), "--json"], { json: true })].flat();
    // RegMix's paper fits LightGBM; our histogram GBDT is its counterpart.
    const chosen = fits.find((f) => f.model === "gbdt") ?? fits[0];
    say(`mixture (${chosen.method}/${chosen.model}, target: average validation loss): ${Object.entries(chosen.mixture).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}`);
    return {
      text: "RegMix (Liu et al., 2024) regresses validation loss on the training mixture of small proxy runs and proposes the mixture that minimises the predicted loss. First the mixer is checked on the paper's own published proxy runs; then 16 ref-tiny-shaped proxies are trained on Dirichlet mixtures of our four selected domains and RegMix proposes weights for the average validation loss.",
      published,
      ...(publishedNote ? { publishedNote } : {}),
      swarm: { runs: sw.completed, tokens: SWARM.tokens, seconds: sw.seconds },
      fits: fits.map((f) => ({ method: f.method, model: f.model, target: f.target, mixture: f.mixture, predicted: f.predicted })),
      chosen: { method: chosen.method, model: chosen.model, target: "avg", mixture: chosen.mixture },
      plots: [{ title: "proposed mixture vs stratified", path: "mix/report/proportions.png" }, ...(chosen ? [{ title: `${chosen.method}/${chosen.model}: predicted vs observed`, path: `mix/report/scatter-${chosen.method}-${chosen.model}.png` }] : [])],
    };
  });

  // 3. train -------------------------------------------------------------------------------------
  results.train = await step("train", "3. train: a ref-tiny-shaped student on the selected, mixed data (tersor train)", async () => {
    mkdirSync(join(out, "train"), { recursive: true });
    const config = {
      model: STUDENT,
      data: DOMAINS.map((d) => `../data/${d.domain}.jsonl`),
      weights: results.mix.chosen.mixture,
      steps: TRAIN_STEPS,
      batchTokens: 2048,
      seqLen: 128,
      lr: 0.005,
      minLr: 0.0005,
      warmup: 15,
      evalEvery: 50,
      evalTokens: 4096,
      seed,
    };
    writeFileSync(join(out, "train", "train.json"), JSON.stringify(config, null, 2) + "\n");
    const t = tersor(["train", "--config", o("train", "train.json"), "--out", o("train", "student"), "--json"], { json: true });
    say(`${t.parameters.toLocaleString("en-US")} parameters, ${t.steps} steps, ${t.tokens_seen.toLocaleString("en-US")} tokens, final loss ${t.final_loss.toFixed(4)} nats/token`);
    say(`validation bits/byte: ${Object.entries(t.validation ?? {}).map(([k, v]) => `${k} ${v.bitsPerByte.toFixed(3)}`).join(", ")}`);
    return {
      text: `Llama architecture, ref-tiny's shape (width ${STUDENT.dim}, ${STUDENT.layers} layers, ${STUDENT.heads} heads, ${STUDENT.kvHeads} KV heads), byte-level; AdamW with warm-up and cosine decay; domains sampled by the mixture weights.`,
      parameters: t.parameters,
      steps: t.steps,
      tokens: t.tokens_seen,
      finalLoss: t.final_loss,
      seconds: t.seconds,
      validation: t.validation ?? {},
      plots: [{ title: "student: training and validation loss", path: "train/student/loss.svg" }],
    };
  });

  // 4. distil ------------------------------------------------------------------------------------
  results.distill = await step("distill", "4. distil: ref-small's logits cached once, KD vs CE for the student (tersor distill cache, tersor distill train)", async () => {
    const cacheDir = o("distill", "cache");
    const c = tersor(["distill", "cache", "ref-small", "--data", ...dataFiles, "--mode", "topk:16", "--out", cacheDir, "--seed", String(seed), "--json"], { json: true });
    say(`teacher cache: ${c.positions.toLocaleString("en-US")} positions, ${c.bytesPerToken.toFixed(1)} bytes/token on disk (dense f32 logits: ${c.denseF32BytesPerToken}) in ${c.seconds.toFixed(1)} s`);
    const k = tersor(["distill", "train", "--student", o("train", "student"), "--data", ...dataFiles, "--cache", cacheDir, "--loss", "fkl", "--alpha", "0.5", "--steps", String(DISTILL_STEPS), "--batch-tokens", "2048", "--seq-len", "128", "--lr", "0.002", "--seed", String(seed), "--compare-ce", "--out", o("distill", "student"), "--json"], { json: true });
    say(`${k.evalSplit} bits/byte: teacher ${k.teacher.bitsPerByte.toFixed(4)}, KD student ${k.student.bitsPerByte.toFixed(4)}, CE student ${k.ce.bitsPerByte.toFixed(4)} (KD − CE ${(k.student.bitsPerByte - k.ce.bitsPerByte).toFixed(4)})`);
    return {
      text: `Hinton et al. (2015) KD: the trained student continues for ${DISTILL_STEPS} steps against the teacher's top-16 next-token distributions (forward KL, α = 0.5 with next-token CE), and, from the same checkpoint with the same steps and batches, with CE only. Bits per byte on the first 20,000 characters of the data's validation documents, in domain order: moby's, the target's, come first and fill them.`,
      cache: { mode: "topk:16", positions: c.positions, bytesPerToken: c.bytesPerToken, denseF32BytesPerToken: c.denseF32BytesPerToken, seconds: c.seconds },
      loss: k.loss,
      alpha: k.alpha,
      steps: k.steps,
      parameters: k.parameters,
      evalSplit: k.evalSplit,
      student: k.student,
      ce: k.ce,
      teacher: k.teacher,
      plots: [],
    };
  });

  // 5. quantize ----------------------------------------------------------------------------------
  results.quantize = await step("quantize", "5. quantize: the distilled student (4-bit GPTQ, Q8_0 GGUF) and the teacher (Q4_K GPTQ) (tersor quantize)", async () => {
    mkdirSync(join(out, "quantize"), { recursive: true });
    const runs = [
      { label: "student, Q4_0 GPTQ", scheme: "q4_0", method: "gptq", out: o("quantize", "student-q4_0"), report: o("quantize", "student-q4_0.json"), plot: o("quantize", "student-q4_0.svg") },
      { label: "student, Q8_0 RTN → GGUF", scheme: "q8_0", method: "rtn", out: o("quantize", "student-q8_0.gguf"), report: o("quantize", "student-q8_0.json"), plot: o("quantize", "student-q8_0.svg") },
      // The teacher at 4 bits with K-quant super-blocks; its down projections (688 columns, not a
      // multiple of 256 or 32) fall back to per-channel int4.
      { label: "teacher ref-small, Q4_K GPTQ", model: "ref-small", scheme: "q4_k", method: "gptq", fallback: "int4", out: o("quantize", "ref-small-q4_k"), report: o("quantize", "ref-small-q4_k.json"), plot: o("quantize", "ref-small-q4_k.svg") },
    ];
    const rows = [];
    for (const q of runs) {
      tersor(["quantize", q.model ?? o("distill", "student"), "--scheme", q.scheme, "--method", q.method, ...(q.fallback ? ["--fallback", q.fallback] : []), "--calib", "corpus:moby", "--samples", "32", "--seq-len", "128", "--eval-chars", "10000", "--seed", String(seed), "--out", q.out, "--report", q.report, "--plot", q.plot], { echo: false });
      const r = readJson(join(root, q.report));
      say(`${q.label}: ${r.bytesBefore.toLocaleString("en-US")} → ${r.bytesAfter.toLocaleString("en-US")} bytes, moby test bits/byte ${r.bitsPerByteBefore.toFixed(4)} → ${r.bitsPerByteAfter.toFixed(4)}`);
      rows.push({ label: q.label, scheme: r.scheme, method: r.method, out: rel(join(root, q.out)).replace(/^out\/demo\//, ""), bitsPerWeight: r.bitsPerWeight, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, bitsPerByteBefore: r.bitsPerByteBefore, bitsPerByteAfter: r.bitsPerByteAfter, plot: rel(join(root, q.plot)).replace(/^out\/demo\//, "") });
    }
    tersor(["inspect", o("quantize", "student-q8_0.gguf")]);
    return rows;
  });
  results.quantizeText = "GPTQ (Frantar et al., 2023) quantizes each linear column by column, correcting the rest with the inverse Hessian of its calibration inputs (32 sequences of 128 bytes of moby's train split); RTN rounds to nearest. Sizes are the weight bytes of the checkpoint (GGUF: the file). The student's widths (128, 352) are not multiples of the 256-element K-quant super-block, so its 4-bit scheme is Q4_0 (blocks of 32); the teacher ref-small takes Q4_K, with per-channel int4 for its down projections (688 columns).";

  // 6. kv ----------------------------------------------------------------------------------------
  results.kv = await step("kv", "6. kv: compressed KV caches for the distilled student on moby (tersor kv eval)", async () => {
    mkdirSync(join(out, "kv"), { recursive: true });
    const methods = "fp16,kivi:4,kivi:2,kvquant:3,streaming:64";
    const r = tersor(["kv", "eval", o("distill", "student"), "--methods", methods, "--data", "corpus:moby", "--context", "256", "--max-docs", "2", "--max-bytes", "3000", "--plot", o("kv", "kv.svg"), "--json"], { json: true });
    for (const m of r.methods) say(`${m.method.padEnd(14)} ${m.cacheBytes.toLocaleString("en-US").padStart(9)} cache bytes  ratio ${m.ratio.toFixed(2)}  ${m.bitsPerByte.toFixed(4)} bits/byte`);
    return {
      text: "KIVI (Liu et al., 2024): keys per channel and values per token at 2 or 4 bits; KVQuant (Hooper et al., 2024): 3-bit non-uniform keys quantized before RoPE; StreamingLLM (Xiao et al., 2024): attention sinks plus a recent window. The most recent tokens stay in full precision.",
      model: "distilled student",
      data: r.data,
      split: r.split,
      context: r.context,
      uncompressedBitsPerByte: r.uncompressedBitsPerByte,
      methods: r.methods,
      plot: "kv/kv.svg",
    };
  });

  // 7. report ------------------------------------------------------------------------------------
  currentStep = "report";
  section("7. report");
  timings["total"] = (performance.now() - t0) / 1000;
  results.meta.seconds = Number(timings["total"].toFixed(1));
  const files = await writeDemoReport(out, results, writeFileAtomic);
  for (const f of Object.values(files)) say(rel(f));
  process.stdout.write(`\ndemo done in ${timings["total"].toFixed(1)} s; open ${rel(files.html)}\n`);
}

main().catch((e) => {
  const msg = e instanceof StepError ? e.message : `step "${currentStep}": ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
  process.stderr.write(`demo failed at ${msg}\n`);
  process.exitCode = 1;
});
