import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng, Tensor, encodeNpy, writeSafetensors } from "@tersor/core";
import { saveByteTokenizer } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { BIN, type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { threads: 1 });

/** A tiny Llama-shaped model with the byte tokenizer, written as a Hugging Face directory. */
async function writeTinyLlama(out: string): Promise<void> {
  const C = 32;
  const F = 64;
  const kv = 16;
  const cfg = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 259,
    hidden_size: C,
    intermediate_size: F,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 64,
    tie_word_embeddings: true,
  };
  const rng = new Rng(3);
  const t: [string, Tensor][] = [];
  const mat = (name: string, r: number, c: number, std = 0.15) => t.push([name, new Tensor("f32", [r, c], rng.fillNormal(new Float32Array(r * c), 0, std))]);
  const ones = (name: string) => t.push([name, new Tensor("f32", [C], new Float32Array(C).fill(1))]);
  mat("model.embed_tokens.weight", 259, C, 0.5);
  for (let l = 0; l < 2; l++) {
    const q = `model.layers.${l}.`;
    ones(q + "input_layernorm.weight");
    mat(q + "self_attn.q_proj.weight", C, C);
    mat(q + "self_attn.k_proj.weight", kv, C);
    mat(q + "self_attn.v_proj.weight", kv, C);
    mat(q + "self_attn.o_proj.weight", C, C);
    ones(q + "post_attention_layernorm.weight");
    mat(q + "mlp.gate_proj.weight", F, C);
    mat(q + "mlp.up_proj.weight", F, C);
    mat(q + "mlp.down_proj.weight", C, F);
  }
  ones("model.norm.weight");
  await writeFile(join(out, "config.json"), JSON.stringify(cfg));
  await writeSafetensors(join(out, "model.safetensors"), t, { format: "pt" });
  await saveByteTokenizer(out);
}

let dir: string;
const p = (name: string) => join(dir, name);
const TRUTH = -0.5 * Math.log(1 - 0.81);

beforeAll(async () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with \`npx tsc -b tsconfig.json\``);
  dir = await mkdtemp(join(tmpdir(), "tersor-measure-"));
  const r = new Rng(3);
  const n = 2000;
  const x = new Float64Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = r.nextNormal();
    y[i] = 0.9 * x[i]! + Math.sqrt(0.19) * r.nextNormal();
  }
  await writeFile(p("x.npy"), encodeNpy(new Tensor("f64", [n], x)));
  await writeFile(p("y.npy"), encodeNpy(new Tensor("f32", [n, 1], y)));
  await writeFile(p("short.json"), JSON.stringify([[1], [2], [3]]));
  await writeFile(p("pred.json"), JSON.stringify([0.25, 0.25, 0.75, 0.75]));
  await writeFile(p("labels.jsonl"), "0\n0\n1\n1\n");
  await writeFile(p("bad-pred.json"), JSON.stringify([0.25, 1.5, 0.75, 0.75]));
  await writeFile(p("multi.npy"), encodeNpy(new Tensor("f64", [3, 2], Float64Array.from([0.9, 0.1, 0.6, 0.4, 0.3, 0.7]))));
  await writeFile(p("multi-labels.npy"), encodeNpy(new Tensor("i64", [3], BigInt64Array.from([0n, 1n, 1n]))));
  await writeFile(p("symbols.jsonl"), ['{"vector": [0, 1]}', '{"vector": [0, 1]}', '{"vector": [1, 1]}', '{"vector": [2, 0]}'].join("\n") + "\n");
  await writeFile(p("truncated.npy"), encodeNpy(new Tensor("f32", [4], new Float32Array(4))).subarray(0, 70));
  await writeTinyLlama(dir);
  await writeFile(p("docs.jsonl"), ["The quick brown fox jumps over the lazy dog.", "Compression represents intelligence linearly.", "zz"].map((text) => JSON.stringify({ text })).join("\n") + "\n");
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("tersor measure mi", () => {
  it("estimates I(X;Y) of a ρ = 0.9 Gaussian with SMILE from .npy files (f64 and f32, 1-D and n × 1)", async () => {
    const r = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("y.npy"), "--estimator", "smile", "--steps", "300", "--batch-size", "64", "--lr", "1e-3", "--ci", "0.95", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { nats: number; bits: number; samples: number; ci: { lo: number; hi: number } };
    expect(j.samples).toBe(2000);
    expect(Math.abs(j.nats - TRUTH) / TRUTH).toBeLessThan(0.15);
    expect(j.bits).toBeCloseTo(j.nats / Math.LN2, 12);
    expect(j.ci.lo).toBeLessThan(j.nats);
    expect(j.ci.hi).toBeGreaterThan(j.nats);
  });

  it("KSG (algorithm 1 with a subsampling interval, algorithm 2) from the information module", async () => {
    const r = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("y.npy"), "--estimator", "ksg1", "--ci", "0.9", "--json");
    expect(r.stderr).toBe("");
    const j = JSON.parse(r.stdout) as { nats: number; k: number; ci: { lo: number; hi: number; level: number } };
    expect(j.k).toBe(3);
    expect(Math.abs(j.nats - TRUTH) / TRUTH).toBeLessThan(0.1);
    expect(j.ci.level).toBe(0.9);
    expect(j.ci.lo).toBeLessThan(j.ci.hi);
    const t = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("y.npy"), "--estimator", "ksg2", "--k", "5");
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^estimator\s+ksg2 \(Kraskov–Stögbauer–Grassberger algorithm 2, k = 5\)/m);
  });

  it("prints a table; InfoNCE states its log N ceiling", async () => {
    const r = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("y.npy"), "--estimator", "infonce", "--steps", "100", "--batch-size", "16", "--hidden", "32");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^estimator\s+infonce \(neural bound, concat critic 32, 100 steps, batch 16\)/m);
    expect(r.stdout).toMatch(/I\(X;Y\)\s+[\d.]+ nats = [\d.]+ bits/);
    expect(r.stdout).toContain(`InfoNCE cannot exceed log N = ${Math.log(16).toFixed(4)}`);
  });

  it("rejects unpaired samples, unknown estimators and malformed files", async () => {
    const unpaired = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("short.json"), "--estimator", "mine");
    expect(unpaired.code).toBe(1);
    expect(unpaired.stderr).toMatch(/E_SHAPE.*paired/);
    const unknown = await tersor("measure", "mi", "--x", p("x.npy"), "--y", p("y.npy"), "--estimator", "dv");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/E_RANGE/);
    const truncated = await tersor("measure", "mi", "--x", p("truncated.npy"), "--y", p("y.npy"), "--estimator", "mine");
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(/E_FORMAT: .*truncated/);
  });
});

describe("tersor measure spectrum", () => {
  it("per-layer effective rank, von Neumann entropy and coding rate of a model's hidden states", async () => {
    const r = await tersor("measure", "spectrum", dir, "--data", p("docs.jsonl"), "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { tokens: number; hidden: number; layers: { layer: number; effectiveRank: number; vonNeumannEntropy: number; codingRate: number }[] };
    expect(j.tokens).toBe(44 + 45 + 2);
    expect(j.hidden).toBe(32);
    expect(j.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of j.layers) {
      expect(l.effectiveRank).toBeGreaterThan(1);
      expect(l.effectiveRank).toBeLessThanOrEqual(32);
      expect(l.vonNeumannEntropy).toBeCloseTo(Math.log(l.effectiveRank), 10);
      expect(l.codingRate).toBeGreaterThan(0);
    }
    const bad = await tersor("measure", "spectrum", dir, "--data", p("docs.jsonl"), "--max-docs", "0");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/E_RANGE: --max-docs/);
  });
});

describe("tersor measure entropy", () => {
  it("Kozachenko–Leonenko entropy of a standard normal sample", async () => {
    const r = await tersor("measure", "entropy", "--x", p("x.npy"), "--estimator", "kl", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { nats: number };
    expect(j.nats).toBeCloseTo(0.5 * Math.log(2 * Math.PI * Math.E), 1);
  });

  it("plug-in entropy of distinct rows of a JSONL file, and its Miller–Madow correction", async () => {
    const r = await tersor("measure", "entropy", "--x", p("symbols.jsonl"), "--estimator", "discrete", "--json");
    expect(r.code).toBe(0);
    const plugIn = -(0.5 * Math.log(0.5) + 2 * 0.25 * Math.log(0.25));
    expect((JSON.parse(r.stdout) as { nats: number }).nats).toBeCloseTo(plugIn, 12);
    const mm = await tersor("measure", "entropy", "--x", p("symbols.jsonl"), "--estimator", "discrete", "--miller-madow", "--json");
    expect((JSON.parse(mm.stdout) as { nats: number }).nats).toBeCloseTo(plugIn + (3 - 1) / (2 * 4), 12);
  });
});

describe("tersor measure calibration", () => {
  it("ECE of the textbook example is 0.25, with a PNG reliability diagram", async () => {
    const png = p("rel.png");
    const r = await tersor("measure", "calibration", "--pred", p("pred.json"), "--labels", p("labels.jsonl"), "--bins", "2", "--plot", png, "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { ece: number; mce: number; brier: number; bins: { count: number }[] };
    expect(j.ece).toBeCloseTo(0.25, 12);
    expect(j.mce).toBeCloseTo(0.25, 12);
    expect(j.brier).toBeCloseTo(0.0625, 12);
    expect(j.bins.map((b) => b.count)).toEqual([2, 2]);
    const bytes = await readFile(png);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });

  it("multiclass predictions and labels from .npy, equal-mass bins, a table", async () => {
    const r = await tersor("measure", "calibration", "--pred", p("multi.npy"), "--labels", p("multi-labels.npy"), "--bins", "3", "--equal-mass");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/3 samples, multiclass \(2 classes\), 3 equal-mass bins/);
    expect(r.stdout).toMatch(/ECE\s+MCE\s+RMSCE\s+Brier\s+NLL\s+accuracy/);
  });

  it("rejects bins < 1, probabilities outside [0, 1] and mismatched lengths", async () => {
    const bins = await tersor("measure", "calibration", "--pred", p("pred.json"), "--labels", p("labels.jsonl"), "--bins", "0");
    expect(bins.code).toBe(1);
    expect(bins.stderr).toMatch(/E_RANGE: --bins/);
    const prob = await tersor("measure", "calibration", "--pred", p("bad-pred.json"), "--labels", p("labels.jsonl"));
    expect(prob.code).toBe(1);
    expect(prob.stderr).toMatch(/E_RANGE: .*outside \[0, 1\]/);
    const len = await tersor("measure", "calibration", "--pred", p("pred.json"), "--labels", p("multi-labels.npy"));
    expect(len.code).toBe(1);
    expect(len.stderr).toMatch(/E_SHAPE/);
  });
});

describe("tersor measure --help", () => {
  it("lists the subcommands", async () => {
    const r = await tersor("measure", "--help");
    expect(r.code).toBe(0);
    for (const c of ["mi", "entropy", "spectrum", "calibration"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, "m"));
  });
});
