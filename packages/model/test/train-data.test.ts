/** The training data loader, weights, schedules and options: everything of train() that needs no native trainer. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  BYTE_EOS,
  PackedLoader,
  byteUnigramBitsPerByte,
  defaultIntermediate,
  expandGlob,
  learningRate,
  loadDomains,
  normaliseWeights,
  parseTrainOptions,
  transformerConfigOf,
  validationWindows,
  type DomainData,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-train-data-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const texts = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix} document number ${i}, with some text.`);

async function domains(): Promise<DomainData[]> {
  return await loadDomains([
    { name: "a", texts: texts("alpha", 20), validationTexts: ["alpha validation"] },
    { name: "b", texts: texts("beta", 7) },
    { name: "c", texts: ["gamma"] },
  ]);
}

describe("token streams", () => {
  it("tokenises texts as UTF-8 bytes with EOS after each document", async () => {
    const [d] = await loadDomains([{ name: "x", texts: ["hé", "", "z"], validationTexts: ["v"] }]);
    expect(Array.from(d!.train.tokens)).toEqual([0x68, 0xc3, 0xa9, BYTE_EOS, BYTE_EOS, 0x7a, BYTE_EOS]);
    expect(Array.from(d!.train.starts)).toEqual([0, 4, 5, 7]);
    expect(d!.train.bytes).toBe(4);
    expect(Array.from(d!.validation.tokens)).toEqual([0x76, BYTE_EOS]);
  });

  it("reads JSONL files and globs, splitting documents by the corpora's id hash", async () => {
    const recs = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: `doc-${i}`, body: `text ${i}` }));
    await writeFile(join(dir, "part-1.jsonl"), recs.slice(0, 100).join("\n") + "\n");
    await writeFile(join(dir, "part-2.jsonl"), recs.slice(100).join("\n") + "\n");
    expect(await expandGlob(join(dir, "part-*.jsonl"))).toEqual([join(dir, "part-1.jsonl"), join(dir, "part-2.jsonl")]);
    const [d] = await loadDomains([{ name: "j", source: join(dir, "part-?.jsonl"), textField: "body" }]);
    const nTrain = d!.train.starts.length - 1;
    const nVal = d!.validation.starts.length - 1;
    // 90 % / 5 % / 5 % in expectation; the test split is never read.
    expect(nTrain).toBeGreaterThan(160);
    expect(nVal).toBeGreaterThan(0);
    expect(nTrain + nVal).toBeLessThan(200);
    await expect(loadDomains([{ source: join(dir, "part-1.jsonl"), textField: "nope" }])).rejects.toThrow(/no string field "nope"/);
    await expect(expandGlob(join(dir, "none-*.jsonl"))).rejects.toThrow(/no file matches/);
  });

  it("rejects empty data, duplicate names and unknown domains", async () => {
    await expect(loadDomains([{ name: "e", texts: [""] }])).rejects.toThrow(/no training text/);
    await expect(loadDomains([{ name: "e", texts: ["x"] }, { name: "e", texts: ["y"] }])).rejects.toThrow(/two sources are named "e"/);
    await expect(loadDomains([{ name: "e", texts: ["xy"] }], ["f"])).rejects.toThrow(/unknown domain/);
    await expect(loadDomains(["corpus:nope"])).rejects.toThrow(/unknown corpus/);
  });
});

describe("weights", () => {
  it("normalises by name or by position and rejects bad weights", () => {
    expect(Array.from(normaliseWeights({ a: 1, c: 3 }, ["a", "b", "c"]))).toEqual([0.25, 0, 0.75]);
    expect(Array.from(normaliseWeights([2, 2], ["a", "b"]))).toEqual([0.5, 0.5]);
    expect(Array.from(normaliseWeights(undefined, ["a", "b"]))).toEqual([0.5, 0.5]);
    expect(() => normaliseWeights({ a: 0, b: 0 }, ["a", "b"])).toThrow(/sum to a positive value/);
    expect(() => normaliseWeights({ a: -1, b: 2 }, ["a", "b"])).toThrow(/non-negative/);
    expect(() => normaliseWeights({ z: 1 }, ["a", "b"])).toThrow(/unknown domain "z"/);
    expect(() => normaliseWeights([1], ["a", "b"])).toThrow(/1 values for 2 domains/);
  });
});

describe("packed loader", () => {
  it("packs every training token exactly once per epoch, in windows of seqLen + 1", async () => {
    const ds = await domains();
    const T = 16;
    const L = new PackedLoader(ds, T, 7);
    const a = ds[0]!.train;
    const windows = Math.floor(a.tokens.length / (T + 1));
    const seen: number[] = [];
    const w = new Int32Array(T + 1);
    for (let i = 0; i < windows; i++) {
      L.fill(0, w);
      seen.push(...w);
    }
    // Within the first epoch the windows are the documents in a shuffled order, concatenated:
    // parse them back, each document used once.
    const docs: number[][] = [];
    for (let i = 0; i + 1 < a.starts.length; i++) docs.push(Array.from(a.tokens.subarray(a.starts[i]!, a.starts[i + 1]!)));
    const used = new Set<number>();
    let p = 0;
    while (p < seen.length) {
      const k = docs.findIndex((d, i) => !used.has(i) && d.every((t, j) => p + j >= seen.length || seen[p + j] === t));
      expect(k).toBeGreaterThanOrEqual(0);
      used.add(k);
      p += docs[k]!.length;
    }
    expect(used.size).toBeGreaterThan(docs.length - 3);
    // The order is shuffled, not the original one.
    expect(seen.slice(0, docs[0]!.length)).not.toEqual(docs[0]);
    expect(L.state().cursors["a"]!.epoch).toBe(0);
  });

  it("is deterministic under a seed and wraps a tiny domain across epochs", async () => {
    const ds = await domains();
    const w = normaliseWeights(undefined, ["a", "b", "c"]);
    const b1 = new PackedLoader(ds, 8, 3).next(6, w);
    const b2 = new PackedLoader(ds, 8, 3).next(6, w);
    const b3 = new PackedLoader(ds, 8, 4).next(6, w);
    expect(b1).toEqual(b2);
    expect(b1.domains.join() === b3.domains.join() && b1.tokens.join() === b3.tokens.join()).toBe(false);
    // "gamma" + EOS = 6 tokens, read as 9-token windows: the stream repeats.
    const L = new PackedLoader(ds, 8, 3);
    const win = new Int32Array(9);
    L.fill(2, win);
    const g = [..."gamma"].map((c) => c.charCodeAt(0));
    expect(Array.from(win)).toEqual([...g, BYTE_EOS, ...g.slice(0, 3)]);
    expect(L.state().cursors["c"]).toEqual({ epoch: 1, docPos: 0, offset: 3 });
    // Targets are the inputs shifted by one.
    for (let b = 0; b < 6; b++) for (let t = 0; t + 1 < 8; t++) expect(b1.targets[b * 8 + t]).toBe(b1.tokens[b * 8 + t + 1]);
  });

  it("draws domains in proportion to the weights", async () => {
    const ds = await domains();
    const w = normaliseWeights({ a: 0.6, b: 0.3, c: 0.1 }, ["a", "b", "c"]);
    const L = new PackedLoader(ds, 4, 11);
    const n = 20000;
    const counts = [0, 0, 0];
    for (let i = 0; i < n; i++) counts[L.sampleDomain(w)]!++;
    // Binomial standard errors: sqrt(p(1-p)/n) ≤ 0.0035; allow 5 of them.
    expect(Math.abs(counts[0]! / n - 0.6)).toBeLessThan(0.0175);
    expect(Math.abs(counts[1]! / n - 0.3)).toBeLessThan(0.0165);
    expect(Math.abs(counts[2]! / n - 0.1)).toBeLessThan(0.0107);
    // A zero weight is never drawn.
    const z = normaliseWeights({ a: 1, b: 0, c: 1 }, ["a", "b", "c"]);
    for (let i = 0; i < 2000; i++) expect(L.sampleDomain(z)).not.toBe(1);
  });

  it("restores its state exactly", async () => {
    const ds = await domains();
    const w = normaliseWeights({ a: 2, b: 1, c: 1 }, ["a", "b", "c"]);
    const A = new PackedLoader(ds, 8, 5);
    for (let i = 0; i < 13; i++) A.next(3, w);
    const s = JSON.parse(JSON.stringify(A.state()));
    const B = new PackedLoader(ds, 8, 5);
    B.restore(s);
    for (let i = 0; i < 9; i++) expect(B.next(3, w)).toEqual(A.next(3, w));
    const other = await loadDomains([{ name: "a", texts: ["different"] }, { name: "b", texts: ["x y"] }, { name: "c", texts: ["gamma"] }]);
    expect(() => new PackedLoader(other, 8, 5).restore(s)).toThrow(/cannot resume/);
  });

  it("cuts validation windows in order, keeping a short last one", async () => {
    const [d] = await loadDomains([{ name: "v", texts: ["x"], validationTexts: ["abcdefghij"] }]);
    // 11 tokens (10 bytes + EOS), seqLen 4: windows of 5 tokens at 0 and 5, then 1 token left (dropped).
    const w = validationWindows(d!, 4, 1000);
    expect(w.map((x) => x.length)).toEqual([5, 5]);
    expect(String.fromCharCode(...w[1]!)).toBe("fghij");
    expect(validationWindows(d!, 4, 6).map((x) => x.length)).toEqual([5, 3]);
    expect(validationWindows((await domains())[1]!, 4, 100)).toEqual([]);
  });
});

describe("schedules", () => {
  const s = { lr: 1, minLr: 0.1, warmup: 10, steps: 110 };
  it("warms up linearly from lr/warmup to lr", () => {
    expect(learningRate({ ...s, schedule: "cosine" }, 0)).toBeCloseTo(0.1, 12);
    expect(learningRate({ ...s, schedule: "cosine" }, 9)).toBeCloseTo(1, 12);
  });
  it("decays by the cosine, linear and constant definitions to minLr at the last step", () => {
    for (const step of [10, 35, 60, 85, 109]) {
      const p = (step - 10) / 99;
      expect(learningRate({ ...s, schedule: "cosine" }, step)).toBeCloseTo(0.1 + 0.45 * (1 + Math.cos(Math.PI * p)), 12);
      expect(learningRate({ ...s, schedule: "linear" }, step)).toBeCloseTo(1 - 0.9 * p, 12);
      expect(learningRate({ ...s, schedule: "constant" }, step)).toBe(1);
    }
    expect(learningRate({ ...s, schedule: "cosine" }, 109)).toBeCloseTo(0.1, 12);
    expect(() => learningRate({ ...s, schedule: "cosine" }, -1)).toThrow(/non-negative integer/);
  });
});

describe("options and shapes", () => {
  const base = { model: { dim: 32, layers: 1, heads: 4, contextLength: 16 }, data: [{ name: "a", texts: ["abc"] }], steps: 2, batchTokens: 32 };
  it("fills defaults", () => {
    const o = parseTrainOptions(base);
    expect(o.schedule).toBe("cosine");
    expect(o.gradAccum).toBe(1);
    expect(defaultIntermediate(256)).toBe(688);
    const c = transformerConfigOf({ arch: "llama", dim: 256, layers: 8, heads: 8, kvHeads: 4, contextLength: 256, tieEmbeddings: true });
    expect(c).toMatchObject({ hidden: 256, intermediate: 688, kvHeads: 4, headDim: 32, vocabSize: 259, tieEmbeddings: true, norm: "rmsnorm", gatedMlp: true });
    expect(transformerConfigOf({ arch: "gpt2", dim: 64, layers: 2, heads: 4, contextLength: 32 })).toMatchObject({ norm: "layernorm", intermediate: 256, tieEmbeddings: true, learnedPositions: true });
  });
  it("rejects bad shapes and options with the reason", () => {
    const shape = (m: Record<string, unknown>) => () => transformerConfigOf({ arch: "llama", dim: 32, layers: 1, heads: 4, contextLength: 16, ...m } as never);
    expect(shape({ heads: 5 })).toThrow(/heads 5 does not divide dim 32/);
    expect(shape({ kvHeads: 3 })).toThrow(/kvHeads 3 does not divide heads 4/);
    expect(shape({ vocab: 100 })).toThrow(/smaller than the byte-level/);
    expect(shape({ heads: 32 })).toThrow(/must be even/);
    expect(() => transformerConfigOf({ arch: "gpt2", dim: 32, layers: 1, heads: 4, kvHeads: 2, contextLength: 16 })).toThrow(/no grouped-query/);
    expect(() => parseTrainOptions({ ...base, data: [] })).toThrow(/at least one source/);
    expect(() => parseTrainOptions({ ...base, steps: 0 })).toThrow(/invalid training options/);
    expect(() => parseTrainOptions({ ...base, lr: -1 })).toThrow(/lr/);
    expect(() => parseTrainOptions({ ...base, resume: true })).toThrow(/needs `out`/);
    expect(() => parseTrainOptions({ ...base, bogus: 1 })).toThrow(/bogus/);
    expect(() => parseTrainOptions({ ...base, targets: () => ({}), lossGrad: () => ({}) })).toThrow(/either `targets` or `lossGrad`/);
  });
});

describe("byte-unigram baseline", () => {
  it("is the add-one-smoothed cross-entropy in bits per byte", () => {
    const enc = new TextEncoder();
    // Train "aab": counts a=3, b=2, others 1; total 256 + 3.
    const bpb = byteUnigramBitsPerByte([enc.encode("aab")], [enc.encode("ab")]);
    expect(bpb).toBeCloseTo(-(Math.log2(3 / 259) + Math.log2(2 / 259)) / 2, 12);
  });
});
