/**
 * train() end to end on the native trainer, with tiny models and tens of steps: memorisation,
 * a falling validation loss on a real corpus, exact resume, bad configs, a diverging run that keeps
 * its last checkpoint, and the domain mixture (fixed weights and a callback).
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { isTersorError } from "@tersor/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type TrainOptions, loadModel, readTrainerState, train } from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-train-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Exactly 200 bytes of English. */
const TEXT = (
  "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, " +
  "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery"
).slice(0, 200);

const tiny = { arch: "llama" as const, dim: 64, layers: 2, heads: 4, kvHeads: 2, contextLength: 256 };

/** Σ −log softmax(logits)[target] over the rows, and its gradient softmax − onehot. */
function crossEntropy(logits: Float32Array, targets: Int32Array): { loss: number; dlogits: Float32Array } {
  const V = logits.length / targets.length;
  const d = new Float32Array(logits.length);
  let loss = 0;
  for (let r = 0; r < targets.length; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    for (let j = 0; j < V; j++) d[r * V + j] = Math.exp(row[j]! - max) / z;
    d[r * V + targets[r]!]! -= 1;
    loss -= row[targets[r]!]! - max - Math.log(z);
  }
  return { loss, dlogits: d };
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isTersorError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a rejection");
}

describe("train", () => {
  it("memorises a 200-byte text to < 0.05 nats/token, and loadModel of its checkpoint gives the same logits", async () => {
    expect(new TextEncoder().encode(TEXT).length).toBe(200);
    const out = join(dir, "memorise");
    // seqLen 200: every window is the text followed by EOS, the text predicted from its start.
    const r = await train({
      model: tiny,
      data: [{ name: "text", texts: [TEXT] }],
      steps: 120,
      batchTokens: 400,
      seqLen: 200,
      lr: 1e-2,
      minLr: 1e-3,
      warmup: 10,
      weightDecay: 0,
      seed: 1,
      out,
      progress: "silent",
    });
    const last = r.steps[r.steps.length - 1]!;
    expect(r.steps[0]!.loss).toBeGreaterThan(4);
    expect(last.loss).toBeLessThan(0.05);
    expect(r.tokensSeen).toBe(120 * 400);

    const model = await loadModel(out, { progress: "silent" });
    expect(model.tokenizer.kind).toBe("byte");
    const ids = [...new TextEncoder().encode(TEXT)];
    const fromRuntime = (await model.forward(ids)).toFloat32Array();
    const fromTrainer = await r.model.forwardLogits(Int32Array.from(ids), 1, ids.length);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < fromRuntime.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(fromRuntime[i]! - fromTrainer[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(fromRuntime[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-4 * Math.max(1, maxAbs));
    // The runtime scores the memorised text as the trainer did.
    const lp = await model.logprobs(ids);
    const nll = -lp.reduce((a, b) => a + b, 0) / lp.length;
    expect(nll).toBeLessThan(0.05);
  });

  it.each(["gpt2", "qwen2"] as const)("trains a %s model whose checkpoint loads with the trainer's logits", async (arch) => {
    const out = join(dir, `arch-${arch}`);
    const r = await train({
      model: { arch, dim: 32, layers: 2, heads: 4, ...(arch === "qwen2" ? { kvHeads: 2 } : {}), contextLength: 64 },
      data: [{ name: "a", texts: ["hello world, hello whales. ".repeat(10)] }],
      steps: 20,
      batchTokens: 128,
      seqLen: 32,
      lr: 1e-2,
      seed: 1,
      out,
      progress: "silent",
    });
    expect(r.steps[19]!.loss).toBeLessThan(r.steps[0]!.loss - 2);
    const model = await loadModel(out, { progress: "silent" });
    expect(model.architecture).toBe(arch);
    const ids = [...new TextEncoder().encode("hello world, hello")];
    const a = (await model.forward(ids)).toFloat32Array();
    const b = await r.model.forwardLogits(Int32Array.from(ids), 1, ids.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4);
    // Training continues from the checkpoint's weights (a fresh optimizer): its first loss is the trained model's.
    const more = await train({ model: { fromCheckpoint: out }, data: [{ name: "a", texts: ["hello world, hello whales. ".repeat(10)] }], steps: 1, batchTokens: 128, seqLen: 32, seed: 1, progress: "silent" });
    expect(more.architecture).toBe(arch);
    expect(more.steps[0]!.loss).toBeLessThan(r.steps[0]!.loss - 2);
  });

  it("lowers the validation loss on a real corpus", async () => {
    const evals: number[] = [];
    const r = await train({
      model: { ...tiny, layers: 1 },
      data: ["corpus:moby"],
      steps: 30,
      batchTokens: 8 * 64,
      seqLen: 64,
      lr: 1e-2,
      warmup: 3,
      evalEvery: 15,
      evalTokens: 2048,
      seed: 2,
      progress: "silent",
      onEval: (e) => void evals.push(e.domains["moby"]!.loss),
    });
    expect(r.evals.map((e) => e.step)).toEqual([0, 15, 30]);
    expect(evals.length).toBe(3);
    // Untrained: about ln 259 ≈ 5.56 nats; trained: the byte-unigram entropy of English (≈ 3 nats) or below.
    expect(evals[0]).toBeGreaterThan(5);
    expect(evals[2]).toBeLessThan(evals[0]! - 1.5);
    const moby = r.evals[2]!.domains["moby"]!;
    expect(moby.tokens).toBe(2048);
    expect(moby.bitsPerByte).toBeCloseTo((moby.loss * moby.tokens) / Math.LN2 / moby.bytes, 10);
  });

  it("resumes from a checkpoint with bitwise the losses of an uninterrupted run (1 thread)", async () => {
    const base = (out: string): TrainOptions => ({
      model: tiny,
      data: [
        { name: "a", texts: [TEXT, TEXT.toUpperCase()] },
        { name: "b", texts: ["the quick brown fox jumps over the lazy dog. ".repeat(5)] },
      ],
      weights: { a: 2, b: 1 },
      steps: 10,
      batchTokens: 4 * 32,
      seqLen: 32,
      gradAccum: 2,
      lr: 5e-3,
      warmup: 2,
      seed: 3,
      threads: 1,
      checkpointEvery: 4,
      out,
      progress: "silent",
    });
    const whole = await train(base(join(dir, "whole")));
    const cut = join(dir, "cut");
    const first = await train({ ...base(cut), shouldStop: (s) => s === 6 });
    expect(first.step).toBe(6);
    expect((await readTrainerState(cut))!.step).toBe(6);
    const rest = await train({ ...base(cut), resume: true });
    expect(rest.step).toBe(10);
    expect(rest.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (let i = 0; i < 10; i++) {
      expect(Object.is(rest.steps[i]!.loss, whole.steps[i]!.loss)).toBe(true);
      expect(Object.is(rest.steps[i]!.gradNorm, whole.steps[i]!.gradNorm)).toBe(true);
      expect(rest.steps[i]!.domainCounts).toEqual(whole.steps[i]!.domainCounts);
    }
    expect(rest.model.params()).toEqual(whole.model.params());
    // A resume with other hyper-parameters is refused.
    const e = await rejection(train({ ...base(cut), lr: 1e-3, resume: true }));
    expect(e.message).toMatch(/cannot resume.*lr/);
  });

  it("trains the same through the targets and lossGrad hooks as with its own cross-entropy", async () => {
    const opts: TrainOptions = { model: tiny, data: [{ name: "a", texts: [TEXT] }], steps: 3, batchTokens: 64, seqLen: 32, seed: 6, threads: 1, progress: "silent" };
    const hard = await train(opts);
    const soft = await train({ ...opts, targets: (b) => ({ kind: "sparse", k: 1, ids: b.targets, weights: new Float32Array(b.targets.length).fill(1) }) });
    const custom = await train({ ...opts, lossGrad: (b, logits) => ({ ...crossEntropy(logits, b.targets), count: b.targets.length }) });
    for (let i = 0; i < 3; i++) {
      expect(soft.steps[i]!.loss).toBeCloseTo(hard.steps[i]!.loss, 4);
      expect(custom.steps[i]!.loss).toBeCloseTo(hard.steps[i]!.loss, 4);
      expect(custom.steps[i]!.gradNorm).toBeCloseTo(hard.steps[i]!.gradNorm, 3);
    }
  });

  it("rejects bad configs before any work", async () => {
    const good: TrainOptions = { model: tiny, data: [{ name: "a", texts: ["abc"] }], steps: 2, batchTokens: 64, seqLen: 32, progress: "silent" };
    const cases: Array<[Partial<TrainOptions>, RegExp]> = [
      [{ model: { ...tiny, heads: 3 } }, /heads 3 does not divide dim 64/],
      [{ model: { ...tiny, kvHeads: 3 } }, /kvHeads 3 does not divide heads 4/],
      [{ data: [{ name: "a", texts: [""] }] }, /no training text/],
      [{ data: [] }, /at least one source/],
      [{ weights: { a: 0 } }, /sum to a positive value/],
      [{ weights: { a: -1 } }, /weights/],
      [{ batchTokens: 48 }, /multiple of seqLen/],
      [{ seqLen: 512 }, /exceeds the model's context length/],
    ];
    for (const [patch, re] of cases) {
      const out = join(dir, "bad");
      const e = await rejection(train({ ...good, ...patch, out } as TrainOptions));
      expect(e.code).toBe("E_RANGE");
      expect(e.message).toMatch(re);
      expect(existsSync(out)).toBe(false);
    }
  });

  it("stops on a NaN loss naming the step and keeps the last good checkpoint", async () => {
    const out = join(dir, "nan");
    const e = await rejection(
      train({
        model: tiny,
        data: [{ name: "a", texts: [TEXT] }],
        steps: 8,
        batchTokens: 64,
        seqLen: 32,
        checkpointEvery: 2,
        seed: 4,
        out,
        progress: "silent",
        // A custom loss (cross-entropy through the logits) that turns to NaN at the 5th step.
        lossGrad: (b, logits) => {
          const { loss, dlogits } = crossEntropy(logits, b.targets);
          return { loss: b.step === 4 ? NaN : loss, count: b.targets.length, dlogits };
        },
      }),
    );
    expect(e.code).toBe("E_NATIVE");
    expect(e.message).toMatch(/step 5/);
    expect(e.message).toMatch(/last good checkpoint \(step 4\)/);
    expect((await readTrainerState(out))!.step).toBe(4);
    expect((await readdir(dir)).filter((f) => f.startsWith(".nan"))).toEqual([]);
    const model = await loadModel(out, { progress: "silent" });
    const lp = await model.logprobs([...new TextEncoder().encode(TEXT.slice(0, 40))]);
    expect(lp.every(Number.isFinite)).toBe(true);
  });

  it("samples domains by the weights, and a weights callback changes them mid-run", async () => {
    const data = [
      { name: "a", texts: ["aaaa ".repeat(40)] },
      { name: "b", texts: ["bbbb ".repeat(40)] },
    ];
    const opts = { model: { ...tiny, layers: 1, dim: 32, heads: 2, kvHeads: 1 }, data, batchTokens: 32 * 16, seqLen: 16, seed: 5, progress: "silent" as const };
    const fixed = await train({ ...opts, steps: 20, weights: { a: 0.75, b: 0.25 } });
    const na = fixed.steps.reduce((s, r) => s + r.domainCounts["a"]!, 0);
    // 640 draws with p = 0.75: standard error 0.017; allow 5.
    expect(Math.abs(na / 640 - 0.75)).toBeLessThan(0.085);

    const seen: Array<Record<string, number> | undefined> = [];
    const cb = await train({
      ...opts,
      steps: 8,
      evalEvery: 4,
      data: data.map((d) => ({ ...d, validationTexts: d.texts })),
      weightsCallback: (step, val) => {
        seen.push(val);
        return step < 4 ? { a: 1, b: 0 } : { a: 0, b: 1 };
      },
    });
    expect(cb.steps.slice(0, 4).every((s) => s.domainCounts["a"] === 32 && s.domainCounts["b"] === 0)).toBe(true);
    expect(cb.steps.slice(4).every((s) => s.domainCounts["a"] === 0 && s.domainCounts["b"] === 32)).toBe(true);
    // The callback sees the latest per-domain validation loss: from step 0's evaluation, then step 4's.
    expect(Object.keys(seen[0]!)).toEqual(["a", "b"]);
    expect(seen[4]).toEqual(Object.fromEntries(Object.entries(cb.evals[1]!.domains).map(([k, v]) => [k, v.loss])));
  });
});
