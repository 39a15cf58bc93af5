// A small real proxy swarm on the bundled corpora (tiny models, tiny token budgets), its resume
// without duplicates, a fit on its tables, the proposed mixture against stratified sampling, and an
// online mixer driving the trainer through its weights callback.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { AioliController, DoReMi, OnlineDataMixing, aioliMixer, doremiMixer, odmMixer, fitMixture, onlineWeightsCallback, readRunTables, runSwarm, trainOnMixture, uniformMixture } from "../src/index.js";

const SOURCES = ["corpus:sotu", "corpus:moby", "corpus:wordnet", "corpus:email-ham"];
const TRAIN = { proxy: "ref-tiny-shape", tokens: 24 * 1024, batchTokens: 1024, lr: 1e-2, evalTokens: 2048, seed: 1, threads: 1 } as const;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-mix-swarm-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("proxy swarm", () => {
  it("runs, is interrupted, resumes without duplicating runs, and its fit beats stratified on the target domain", async () => {
    const out = join(dir, "swarm");
    const opts = { ...TRAIN, sources: SOURCES, runs: 10, out };
    let calls = 0;
    const first = await runSwarm({ ...opts, shouldStop: () => calls++ >= 4 });
    expect(first.trained).toBe(4);
    expect(first.completed).toBe(4);
    const partial = await readFile(first.lossesPath, "utf8");
    const second = await runSwarm(opts);
    expect(second.skipped).toBe(4);
    expect(second.trained).toBe(6);
    expect(second.runsPerHour).toBeGreaterThan(0);
    const t = await readRunTables(second.mixturesPath, second.lossesPath);
    expect(t.ids).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    expect(t.domains).toEqual(["sotu", "moby", "wordnet", "email-ham"]);
    // The first four rows are unchanged by the resume.
    expect((await readFile(second.lossesPath, "utf8")).startsWith(partial)).toBe(true);
    // Another settings in the same folder is refused.
    await expect(runSwarm({ ...opts, seed: 2 })).rejects.toThrow(/different swarm/);

    const [lin] = await fitMixture("regmix", t, "sotu", { models: ["linear"], samples: 20000, topK: 50 });
    const w = t.domains.map((d) => lin!.mixture[d]!);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    const proposed = await trainOnMixture(SOURCES, w, TRAIN);
    const strat = await trainOnMixture(SOURCES, uniformMixture(t.domains).weights, TRAIN);
    expect(proposed.perDomain["sotu"]!).toBeLessThanOrEqual(strat.perDomain["sotu"]!);
  }, 300_000);

  it("rejects unknown domains and bad settings before training", async () => {
    await expect(runSwarm({ ...TRAIN, sources: ["corpus:sotu", "corpus:nope"], runs: 2, out: join(dir, "x") })).rejects.toThrow(/unknown domain "corpus:nope"/);
    await expect(runSwarm({ ...TRAIN, sources: ["corpus:sotu", "corpus:moby"], runs: 0, out: join(dir, "x") })).rejects.toThrow(/runs must be/);
    await expect(runSwarm({ ...TRAIN, proxy: "huge", sources: ["corpus:sotu", "corpus:moby"], runs: 1, out: join(dir, "x") })).rejects.toThrow(/unknown proxy/);
  });
});

describe("online mixing through the trainer", () => {
  it("DoReMi drives the weights callback from per-domain validation losses", async () => {
    const domains = ["sotu", "wordnet"];
    const d = new DoReMi([0, 0], { eta: 0.5, smoothing: 0.05 }); // reference 0: the excess is the loss itself
    const { callback, history } = onlineWeightsCallback(domains, doremiMixer(d));
    const r = await train({
      model: { arch: "llama", dim: 16, layers: 1, heads: 2, contextLength: 32 },
      data: ["corpus:sotu", "corpus:wordnet"],
      weightsCallback: callback,
      steps: 8,
      batchTokens: 256,
      evalEvery: 2,
      evalTokens: 512,
      seed: 3,
      progress: "silent",
      threads: 1,
    });
    expect(history).toHaveLength(8);
    // Evaluations after steps 0 (the untrained model), 2, 4 and 6 each feed one update, before steps 1, 3, 5 and 7.
    expect(d.steps).toBe(4);
    expect(history[1]!.weights).toEqual(history[0]!.weights);
    expect(history[2]!.weights).not.toEqual(history[1]!.weights);
    for (const h of history) {
      expect(h.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      for (const v of h.weights) expect(v).toBeGreaterThanOrEqual(0.05 / 2 - 1e-15);
    }
    // Every step's batch was drawn with the callback's weights: the log counts sequences per domain.
    expect(r.steps.every((s) => s.domainCounts["sotu"]! + s.domainCounts["wordnet"]! > 0)).toBe(true);
  }, 120_000);

  it("ODM and Aioli drive the trainer deterministically", async () => {
    const run = async (kind: "odm" | "aioli") => {
      const domains = ["sotu", "wordnet"];
      const mixer = kind === "odm" ? odmMixer(new OnlineDataMixing(2, { seed: 4 })) : aioliMixer(new AioliController(2, { sweepSteps: 1, exploitSteps: 1 }));
      const { callback, history } = onlineWeightsCallback(domains, mixer);
      await train({
        model: { arch: "llama", dim: 16, layers: 1, heads: 2, contextLength: 32 },
        data: ["corpus:sotu", "corpus:wordnet"],
        weightsCallback: callback,
        steps: 6,
        batchTokens: 256,
        evalEvery: 1,
        evalTokens: 256,
        seed: 3,
        progress: "silent",
        threads: 1,
      });
      return history.map((h) => h.weights);
    };
    for (const kind of ["odm", "aioli"] as const) {
      const a = await run(kind);
      expect(a).toHaveLength(6);
      for (const w of a) expect(w.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
      expect(await run(kind)).toEqual(a);
    }
    // Aioli sweeps the perturbed mixtures (1 - δ) p + δ e_j first: more weight on sotu, then on wordnet.
    const aioli = await run("aioli");
    expect(aioli[0]![0]!).toBeCloseTo(0.75, 12);
    expect(aioli[1]![1]!).toBeCloseTo(0.75, 12);
  }, 120_000);
});
