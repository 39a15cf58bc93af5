import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng } from "@tersor/core";
import { native } from "@tersor/native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  Coverage,
  FacilityLocation,
  clusterSignatures,
  cosineSimilarity,
  dedupDocs,
  dedupSpilled,
  mergeSelectShards,
  readSelectShard,
  selectShard,
  writeSelectShard,
  parseMemory,
  exactKeys,
  gopherFailures,
  hashedFeatures,
  kdeEntropy,
  lazyGreedy,
  mergeSignatureShards,
  mergeSignatureShardsSpilled,
  minhashShard,
  readSignatureShard,
  writeSignatureShard,
  writeMinhashShardStream,
  naiveGreedy,
  ngramOverlap,
  optimalParams,
  readAllDocs,
  resolveBudget,
  rs2Schedule,
  runSelect,
  selectRandom,
  stochasticGreedy,
  type SelectDoc,
} from "../src/index.js";

// The published DSIR fixtures live beside the checkout (../shared/data); a clone elsewhere skips that test.
const DSIR_TOY = process.env["TERSOR_DSIR_TOY_DIR"] ?? join(__dirname, "../../../../shared/data/dsir-toy");
const HAVE_DSIR_TOY = existsSync(join(DSIR_TOY, "toy_pile_data.jsonl"));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-select-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const WORDS = "whale sea ship captain harpoon ocean deck sail storm crew island harbour rope mast wind wave tide moon star compass".split(" ");
function text(rng: Rng, words: number): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(rng.nextF64() * WORDS.length)]! + Math.floor(rng.nextF64() * 30)).join(" ");
}
function docs(texts: string[]): SelectDoc[] {
  return texts.map((t, i) => ({ index: i, id: `d${i}`, text: t, domain: "", record: { id: `d${i}`, text: t } }));
}

/** A planted-duplicate corpus: distinct base texts, windows of one long text, and near copies with small edits. */
function planted(): { texts: string[]; groups: number[] } {
  const rng = new Rng(42);
  const texts: string[] = [];
  const groups: number[] = [];
  for (let g = 0; g < 20; g++) {
    const base = text(rng, 200);
    texts.push(base);
    groups.push(g);
    const w = base.split(" ");
    // Near copy: two words replaced.
    const edit = [...w];
    edit[50] = "EDITED";
    edit[150] = "CHANGED";
    texts.push(edit.join(" "));
    groups.push(g);
    // Overlapping window: the first 190 words (Jaccard of 5-gram shingles ~0.95).
    texts.push(w.slice(0, 190).join(" "));
    groups.push(g);
  }
  return { texts, groups };
}

describe("dedup", () => {
  it("(b, r) optimiser reproduces datasketch's optimal_param", () => {
    expect(optimalParams(0.7, 256)).toEqual({ bands: 25, rows: 10 });
    expect(optimalParams(0.5, 200)).toEqual({ bands: 33, rows: 6 });
    expect(optimalParams(0.8, 128)).toEqual({ bands: 9, rows: 13 });
  });

  it("clusters a planted-duplicate corpus exactly and keeps the lowest id", async () => {
    const { texts, groups } = planted();
    const r = await dedupDocs(docs(texts));
    expect(r.kept).toBe(20);
    for (let i = 0; i < texts.length; i++) {
      const first = groups.indexOf(groups[i]!);
      expect(r.decisions[i]!.cluster).toBe(r.decisions[first]!.cluster);
      expect(r.decisions[i]!.keep).toBe(i === first);
    }
    expect(r.nearDuplicates).toBe(40);
    expect(r.clusterSizes).toEqual(Array(20).fill(3));
    expect(r.estimatedPrecision).toBeGreaterThan(0.9);
  });

  it("exact mode joins normalised copies only", async () => {
    const r = await dedupDocs(docs(["Hello, World!", "hello world", "hello there world"]), { mode: "exact" });
    expect(r.decisions.map((d) => d.reason)).toEqual(["kept", "exact-duplicate", "unique"]);
    expect(exactKeys(["a  b"])[0]).toBe(exactKeys(["A b"])[0]);
  });

  it("4 merged shards equal the single-process result", async () => {
    const { texts } = planted();
    const all = docs(texts);
    const single = await dedupDocs(all);
    const shards = [];
    for (let s = 0; s < 4; s++) shards.push(await minhashShard(all.filter((d) => d.index % 4 === s)));
    const m = mergeSignatureShards(shards.reverse());
    expect(m.indices).toEqual(all.map((d) => d.index));
    const merged = await clusterSignatures(m.keys, m.signatures, m.options);
    expect(merged.decisions).toEqual(single.decisions);
  });

  it("shard files merged through sorted runs under a tiny memory budget equal the single process", async () => {
    const { texts } = planted();
    // Exact copies too, so both sections of the runs are exercised.
    const all = docs([...texts, texts[5]!.toUpperCase(), texts[40]!]);
    for (const mode of ["minhash", "exact"] as const) {
      const single = await dedupDocs(all, { mode });
      const paths: string[] = [];
      for (let s = 0; s < 3; s++) {
        const shard = await minhashShard(all.filter((d) => d.index % 3 === s), { mode });
        shard.decontam = { target: "t", ngram: 13, overlap: shard.indices.map((i) => i % 7) };
        paths.push(join(dir, `merge-${mode}-${s}.jsonl`));
        await writeSignatureShard(paths[s]!, shard);
        // The file reads back as the shard it was written from.
        expect(await readSignatureShard(paths[s]!)).toEqual({ ...shard, format: "tersor-dedup-shard/1", options: { mode } });
        if (s === 0) {
          // Streaming a shard's documents in batches writes the same file as the in-memory shard.
          const plain = await minhashShard(all.filter((d) => d.index % 3 === s), { mode });
          await writeSignatureShard(join(dir, "plain.jsonl"), plain);
          expect(await writeMinhashShardStream(join(dir, "streamed.jsonl"), all.filter((d) => d.index % 3 === s), { mode })).toBe(plain.indices.length);
          expect(await readFile(join(dir, "streamed.jsonl"), "utf8")).toBe(await readFile(join(dir, "plain.jsonl"), "utf8"));
        }
      }
      const work = join(dir, `merge-spill-${mode}`);
      let runs = 0;
      const m = await mergeSignatureShardsSpilled(paths.reverse(), { memory: mode === "minhash" ? 2048 : 256, workDir: work, onProgress: () => runs++ });
      expect(runs).toBeGreaterThan(10);
      expect(Array.from(m.indices)).toEqual(all.map((d) => d.index));
      expect(Array.from(m.decontam!.overlap)).toEqual(all.map((d) => d.index % 7));
      expect(m.result.decisions).toEqual(single.decisions);
      expect(m.result.candidatePairs).toBe(single.candidatePairs);
      expect(m.result.estimatedPrecision).toBe(single.estimatedPrecision);
      expect(m.result.exactDuplicates).toBe(2);
      await expect(readdir(work)).rejects.toThrow();
    }
    // Repeated positions and mixed options are refused.
    const p0 = join(dir, "merge-minhash-0.jsonl");
    await expect(mergeSignatureShardsSpilled([p0, p0], { workDir: join(dir, "merge-dup") })).rejects.toThrow(/appears in two shards/);
    await expect(mergeSignatureShardsSpilled([p0, join(dir, "merge-exact-1.jsonl")])).rejects.toThrow(/different options/);
    await writeFile(join(dir, "not-a-shard.jsonl"), "{}\n");
    await expect(mergeSignatureShardsSpilled([join(dir, "not-a-shard.jsonl")])).rejects.toThrow(/not a dedup shard file/);
  });

  it("the spilled path (many sorted runs on disk) gives the in-memory clusters and removes its files", async () => {
    const { texts } = planted();
    // Exact copies too, so both sections of the runs are exercised.
    const all = docs([...texts, texts[3]!.toUpperCase(), texts[30]!]);
    for (const mode of ["minhash", "exact"] as const) {
      const single = await dedupDocs(all, { mode });
      const work = join(dir, `spill-${mode}`);
      let runs = 0;
      const r = await dedupSpilled(all, { minhash: { mode }, memory: 4096, workDir: work, onProgress: () => runs++ });
      expect(runs).toBeGreaterThan(10); // a 4 KiB budget forces a run every document or two
      expect(r.decisions).toEqual(single.decisions);
      expect(r.candidatePairs).toBe(single.candidatePairs);
      expect(r.estimatedPrecision).toBeCloseTo(single.estimatedPrecision, 12);
      expect(r.exactDuplicates).toBe(2);
      await expect(readdir(work)).rejects.toThrow(); // the work directory is gone
    }
    // A default temp directory is removed too, also when the input fails midway.
    async function* bad(): AsyncIterable<SelectDoc> {
      yield all[0]!;
      throw new Error("input broke");
    }
    const work = join(dir, "spill-bad");
    await expect(dedupSpilled(bad(), { memory: 1, workDir: work })).rejects.toThrow(/input broke/);
    await expect(readdir(work)).rejects.toThrow();
    expect(parseMemory("256MB")).toBe(256 * 1024 * 1024);
    expect(parseMemory("1.5KB")).toBe(1536);
    expect(() => parseMemory("lots")).toThrow(/memory budget/);
  });

  it("a spilled dedup killed midway resumes from its complete runs with the same result", async () => {
    const { execFile } = await import("node:child_process");
    const { texts } = planted();
    const corpusFile = join(dir, "planted.json");
    await writeFile(corpusFile, JSON.stringify(texts));
    const work = join(dir, "spill-resume");
    // A child process spills one run per document and is SIGKILLed after 25 documents.
    const script = `
      import { readFileSync } from "node:fs";
      import { dedupSpilled } from "@tersor/select";
      const texts = JSON.parse(readFileSync(${JSON.stringify(corpusFile)}, "utf8"));
      function* docs() { for (let i = 0; i < texts.length; i++) yield { index: i, id: "d" + i, text: texts[i], domain: "", record: {} }; }
      await dedupSpilled(docs(), { memory: 1, workDir: ${JSON.stringify(work)}, inputKey: "planted", onProgress: (n) => { if (n === 25) process.kill(process.pid, "SIGKILL"); } });
    `;
    const killed = await new Promise<string | null>((res) => execFile(process.execPath, ["--input-type=module", "-e", script], { cwd: join(__dirname, "../../..") }, (err) => res(err ? String((err as { signal?: string }).signal) : null)));
    expect(killed).toBe("SIGKILL");
    expect((await readdir(join(work, "tersor-dedup-run"))).filter((f) => f.startsWith("run-")).length).toBe(25);
    let first = -1;
    const resumed = await dedupSpilled(docs(texts), { memory: 1, workDir: work, inputKey: "planted", onProgress: (n) => { if (first < 0) first = n; } });
    expect(first).toBe(26); // the 25 spilled documents were skipped
    expect(resumed.decisions).toEqual((await dedupDocs(docs(texts))).decisions);
    await expect(readdir(work)).rejects.toThrow();
    // A work directory holding other files keeps them.
    const busy = join(dir, "busy");
    await mkdir(busy);
    await writeFile(join(busy, "user-file"), "mine");
    await dedupSpilled(docs(texts.slice(0, 6)), { memory: 1, workDir: busy });
    expect(await readdir(busy)).toEqual(["user-file"]);
  });

  it("decontamination finds shared 13-grams", async () => {
    const rng = new Rng(1);
    const target = text(rng, 40);
    const leaked = "intro words " + target.split(" ").slice(5, 20).join(" ") + " outro";
    const clean = text(rng, 40);
    const c = await ngramOverlap([leaked, clean], [target]);
    expect(c[0]).toBe(3); // 15 shared words → 3 shared 13-grams
    expect(c[1]).toBe(0);
    await expect(ngramOverlap([clean], [])).rejects.toThrow(/empty/);
  });
});

describe("set functions", () => {
  it("greedy set cover on {1..6} picks C first and needs 3 sets", () => {
    const f = new Coverage([[1, 2, 3], [4, 5, 6], [1, 2, 4, 5]]);
    const g = naiveGreedy(f, 3);
    expect(g.order[0]).toBe(2);
    expect(g.order.length).toBe(3);
    expect(lazyGreedy(f, 3).order).toEqual(g.order);
    const n = native().selectGreedySetCover(Uint32Array.from([1, 2, 3, 4, 5, 6, 1, 2, 4, 5]), Uint32Array.from([0, 3, 6, 10]), 10);
    expect(Array.from(n)).toEqual(g.order);
  });

  it("marginal gain equals f(S ∪ {j}) − f(S), and lazy = naive", () => {
    const rng = new Rng(3);
    const n = 40;
    const data = Float64Array.from({ length: n * 5 }, () => rng.nextF64());
    const sim = cosineSimilarity(data, n, 5);
    const f = new FacilityLocation(sim, n);
    const S = [3, 17, 25];
    const fs = f.fresh();
    for (const j of S) fs.add(j);
    for (const j of [0, 5, 39]) {
      const fsj = f.fresh();
      for (const s of [...S, j]) fsj.add(s);
      expect(fs.gain(j)).toBeCloseTo(fsj.value() - fs.value(), 12);
    }
    const naive = naiveGreedy(f, 10);
    const lazy = lazyGreedy(f, 10);
    expect(lazy.order).toEqual(naive.order);
    expect(lazy.evaluations).toBeLessThan(naive.evaluations);
    const sto = stochasticGreedy(f, 10, 0.1, 7);
    expect(new Set(sto.order).size).toBe(10);
    const val = (order: number[]) => {
      const g = f.fresh();
      for (const j of order) g.add(j);
      return g.value();
    };
    expect(val(sto.order)).toBeGreaterThan(0.9 * val(naive.order));
  });
});

describe("information selectors", () => {
  it("KDE entropy is 0 for identical points and log N for far-apart ones", async () => {
    const N = 16;
    expect(await kdeEntropy({ data: new Float64Array(N * 3).fill(0.5), n: N, d: 3 }, 0.1)).toBeCloseTo(0, 12);
    const far = new Float64Array(N * 3);
    for (let i = 0; i < N; i++) far[i * 3] = i * 100;
    expect(await kdeEntropy({ data: far, n: N, d: 3 }, 0.1)).toBeCloseTo(Math.log(N), 10);
  });
});

describe("selectors", () => {
  it("DSIR reference fixtures: buckets and features", () => {
    expect(native().selectDsirBucket("alice", 10000)).toBe(6720);
    expect(native().selectDsirBucket("alice went", 10000)).toBe(114);
    expect(native().selectDsirFeatures("Alice went to the store", 10000, 2).length).toBe(9);
  });

  it.skipIf(!HAVE_DSIR_TOY)("DSIR on the toy data prefers target-like documents", async () => {
    const raw = await readAllDocs(join(DSIR_TOY, "toy_pile_data.jsonl"), { textField: "contents" });
    const target = (await readAllDocs(join(DSIR_TOY, "toy_target_data.jsonl"), { textField: "contents" })).map((d) => d.text);
    expect(raw.length).toBeGreaterThan(2);
    const r = await runSelect(raw, target, { method: "dsir", budget: 1, seed: 0 });
    // The target is the first pile document (a licence header); its importance weight is the highest.
    const w = r.scores as number[];
    expect(w.indexOf(Math.max(...w))).toBe(0);
  });

  it("random is seeded and shard-invariant; budgets are checked", () => {
    const ids = Array.from({ length: 100 }, (_, i) => `doc-${i}`);
    const a = selectRandom(ids, 10, 5).indices;
    expect(selectRandom(ids, 10, 5).indices).toEqual(a);
    expect(selectRandom(ids, 10, 6).indices).not.toEqual(a);
    expect(resolveBudget("10%", 200)).toBe(20);
    expect(() => resolveBudget(300, 200)).toThrow(/larger than the corpus/);
    const s = rs2Schedule(10, 4, 3, 1);
    expect(new Set([...s[0]!, ...s[1]!]).size).toBe(8);
  });

  it("ZIP-FIT and DSIR keep mostly spam for a spam target (SpamAssassin)", async () => {
    const spam = (await readAllDocs("corpus:email-spam:train")).slice(0, 60);
    const ham = (await readAllDocs("corpus:email-ham:train")).slice(0, 60);
    const target = (await readAllDocs("corpus:email-spam:test")).slice(0, 20).map((d) => d.text.slice(0, 2000));
    const pool = [...spam, ...ham].map((d, i) => ({ ...d, index: i, text: d.text.slice(0, 2000) }));
    for (const method of ["zipfit", "dsir"] as const) {
      const r = await runSelect(pool, target, { method, budget: 30, seed: 1 });
      const spamKept = r.kept.filter((i) => i < spam.length).length;
      expect(spamKept / r.kept.length).toBeGreaterThan(0.7);
    }
  });

  it("4 merged shards equal the single-process selection (random, stratified, DSIR, ZIP-FIT, gopher)", async () => {
    const spam = (await readAllDocs("corpus:email-spam:train")).slice(0, 24);
    const ham = (await readAllDocs("corpus:email-ham:train")).slice(0, 24);
    const target = (await readAllDocs("corpus:email-spam:test")).slice(0, 8).map((d) => d.text.slice(0, 1500));
    const pool = [...spam, ...ham].map((d, i) => ({ ...d, index: i, id: `${d.id}#${i}`, text: d.text.slice(0, 1500), domain: i < 24 ? "spam" : "ham" }));
    for (const method of ["random", "stratified", "dsir", "zipfit", "gopher"] as const) {
      const budget = method === "gopher" ? undefined : 12;
      const single = await runSelect(pool, target, { method, budget, seed: 7, level: 6 });
      const shards = [];
      for (let s = 3; s >= 0; s--) shards.push(await selectShard(pool.filter((d) => d.index % 4 === s), target, { method, seed: 7, level: 6 }));
      if (method === "dsir") {
        // Through a file, as the CLI does.
        await writeSelectShard(join(dir, "dsir-shard.jsonl"), shards[0]!);
        shards[0] = await readSelectShard(join(dir, "dsir-shard.jsonl"));
      }
      const m = mergeSelectShards(shards, budget);
      expect(m.docs.map((d) => d.index)).toEqual(pool.map((d) => d.index));
      expect(m.result.kept).toEqual(single.kept);
      expect(m.result.scores).toEqual(single.scores);
      expect(m.result.reasons).toEqual(single.reasons);
      if (method !== "gopher") expect(m.result.kept.length).toBe(12);
      else expect(m.result.details).toEqual(single.details);
    }
    await expect(selectShard(pool, null, { method: "kcenter" })).rejects.toThrow(/whole pool/);
    await expect(selectShard(pool, [], { method: "dsir" })).rejects.toThrow(/empty/);
    const a = await selectShard(pool.slice(0, 2), null, { method: "random", seed: 1 });
    const b = await selectShard(pool.slice(0, 2), null, { method: "random", seed: 2 });
    expect(() => mergeSelectShards([a, b], 1)).toThrow(/different/);
  });

  it("gopher rules count failures per rule", () => {
    expect(gopherFailures("too short")).toContain("word-count");
    const good = Array.from({ length: 80 }, (_, i) => ["the", "whale", "swam", "across", "quiet", "waters", "today"][i % 7]).join(" ");
    expect(gopherFailures(good).filter((r) => r !== "top-bigram")).toEqual([]);
    expect(gopherFailures("# # # # ".repeat(20) + good)).toContain("symbol-ratio");
  });

  it("hashed features feed k-center and facility location selections", async () => {
    const rng = new Rng(9);
    const d = docs(Array.from({ length: 30 }, () => text(rng, 30)));
    for (const method of ["kcenter", "quests", "facility-location", "coverage"] as const) {
      const r = await runSelect(d, null, { method, budget: 5 });
      expect(r.kept.length).toBe(5);
    }
    expect(hashedFeatures(["a b"], 16).d).toBe(16);
  });
});

describe("bad input", () => {
  it("reports malformed lines with line numbers, or skips them", async () => {
    const p = join(dir, "bad.jsonl");
    await writeFile(p, '{"text":"ok one"}\n{not json\n{"text":"ok two"}\n');
    await expect(readAllDocs(p)).rejects.toThrow(/bad\.jsonl:2: invalid JSON/);
    const skipped: number[] = [];
    const d = await readAllDocs(p, { onBadLine: "skip", onSkip: (l: number) => skipped.push(l) });
    expect(d.map((x) => x.text)).toEqual(["ok one", "ok two"]);
    expect(skipped).toEqual([2]);
  });
  it("missing text field, empty target, budget larger than the corpus", async () => {
    const p = join(dir, "notext.jsonl");
    await writeFile(p, '{"text":"fine"}\n\n{"body":"x"}\n');
    await expect(readAllDocs(p)).rejects.toThrow(/notext\.jsonl:3 \(line 3\) has no string field "text"/);
    const d = docs(["a b c", "d e f"]);
    await expect(runSelect(d, [], { method: "zipfit", budget: 1 })).rejects.toThrow(/target is empty/);
    await expect(runSelect(d, null, { method: "random", budget: 5 })).rejects.toThrow(/larger than the corpus/);
  });
});

describe("GIO and RDS+", () => {
  it("GIO picks the candidates that cover the target and its KL estimate falls", async () => {
    const { gioSelect, rdsPlus } = await import("../src/index.js");
    // Target: two clusters around (0,0) and (10,10); candidates: near each cluster, plus far outliers.
    const rng = new Rng(2);
    const pt = (cx: number, cy: number) => [cx + rng.nextNormal() * 0.3, cy + rng.nextNormal() * 0.3];
    const target = [...Array.from({ length: 10 }, () => pt(0, 0)), ...Array.from({ length: 10 }, () => pt(10, 10))];
    const cand = [pt(50, -50), pt(0, 0), pt(-40, 40), pt(10, 10), pt(0, 0), pt(10, 10)];
    const V = (rows: number[][]) => ({ data: Float64Array.from(rows.flat()), n: rows.length, d: 2 });
    const g = gioSelect(V(cand), V(target), 4);
    // The first two picks cover both clusters (one near (0,0), one near (10,10)).
    const first2 = g.order.slice(0, 2);
    expect(first2.some((j) => j === 1 || j === 4) && first2.some((j) => j === 3 || j === 5)).toBe(true);
    expect(g.order.slice(0, 4).sort()).toEqual([1, 3, 4, 5]);
    expect(g.kl[1]!).toBeLessThan(g.kl[0]!);
    // RDS+: round-robin across two target tasks takes the best match of each in turn.
    const r = rdsPlus(V([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]]), V([[1, 0], [0, 1]]), ["a", "b"], 2);
    expect(r).toEqual([0, 1]);
  });
});

describe("NovelSelect and model-based methods", () => {
  it("NovelSelect spreads over clusters and NovelSum grows with diversity", async () => {
    const { novelSelect, novelSum } = await import("../src/index.js");
    const rng = new Rng(8);
    const rows: number[][] = [];
    const centres = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    for (let c = 0; c < 3; c++) for (let i = 0; i < 8; i++) rows.push(centres[c]!.map((x) => x + rng.nextNormal() * 0.05));
    const v = { data: Float64Array.from(rows.flat()), n: rows.length, d: 3 };
    const picked = novelSelect(v, 3);
    expect(new Set(picked.map((i) => Math.floor(i / 8))).size).toBe(3);
    expect(novelSum(v, picked)).toBeGreaterThan(novelSum(v, [0, 1, 2]));
  });

  it("embeds with the bundled ref-small model and filters by perplexity", async () => {
    const { existsSync } = await import("node:fs");
    // The bundled reference model (packages/models/ref-small) is produced by tools/train-reference-models.mjs.
    if (!existsSync(join(__dirname, "../../models/ref-small/model.safetensors"))) return;
    const texts = [
      "The President spoke to the Congress about the state of the Union and the economy.",
      "qzx vvkp jjrw xqqz plmk wvtz kkqj zzxv",
      "Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.",
      "8#@!x ]]{{ ~~%% ^^&& zq9 ((()) ##",
    ];
    const r = await runSelect(docs(texts), null, { method: "perplexity", budget: 2, maxTokens: 64 });
    expect(r.kept).toEqual([0, 2]);
    // 4 shards merged (through a file) = one process.
    const all = docs(texts);
    const shards = [];
    for (let s = 0; s < 4; s++) shards.push(await selectShard(all.filter((d) => d.index % 4 === s), null, { method: "perplexity", maxTokens: 64 }));
    await writeSelectShard(join(dir, "ppl-shard.jsonl"), shards[1]!);
    shards[1] = await readSelectShard(join(dir, "ppl-shard.jsonl"));
    const m = mergeSelectShards(shards, 2);
    expect(m.result.kept).toEqual(r.kept);
    expect(m.result.scores).toEqual(r.scores);
    expect(m.result.reasons).toEqual(r.reasons);
    const e = await runSelect(docs(texts), null, { method: "kcenter", budget: 2, embed: "ref-small", maxTokens: 32 });
    expect(e.kept.length).toBe(2);
  });
});

describe("streaming dedup", () => {
  it("spills signatures in batches and resumes an interrupted run with the same result", async () => {
    const { dedupStream } = await import("../src/index.js");
    const { readFile: rf, writeFile: wf } = await import("node:fs/promises");
    const { texts } = planted();
    const all = docs(texts);
    async function* stream() {
      yield* all;
    }
    const spill = join(dir, "spill.jsonl");
    const whole = await dedupDocs(all);
    const first = await dedupStream(stream(), "planted", { spillPath: spill, batchDocs: 7 });
    expect(first.decisions).toEqual(whole.decisions);
    // Interrupt: keep the header and two batches, plus a torn line.
    const lines = (await rf(spill, "utf8")).split("\n");
    await wf(spill, lines.slice(0, 3).join("\n") + "\n" + lines[3]!.slice(0, 20));
    const resumed = await dedupStream(stream(), "planted", { spillPath: spill, batchDocs: 7 });
    expect(resumed.decisions).toEqual(whole.decisions);
    const after = (await rf(spill, "utf8")).split("\n");
    expect(after.slice(0, 3)).toEqual(lines.slice(0, 3));
    expect(after.length).toBe(lines.length);
  });
});

describe("stratified, RS2 and Parquet output", () => {
  it("stratified quotas follow domain shares and RS2 gives fresh subsets per epoch", async () => {
    const d = docs(Array.from({ length: 40 }, (_, i) => `doc ${i}`)).map((x, i) => ({ ...x, domain: i < 30 ? "a" : "b" }));
    const r = await runSelect(d, null, { method: "stratified", budget: 8 });
    expect(r.details["quota"]).toEqual({ a: 6, b: 2 });
    expect(r.kept.filter((i) => i < 30).length).toBe(6);
    const s = await runSelect(d, null, { method: "rs2", budget: 10, epochs: 4, seed: 2 });
    const sched = s.details["schedule"] as number[][];
    expect(sched.length).toBe(4);
    expect(new Set(sched.flat()).size).toBe(40);
  });

  it("writes Parquet that reads back", async () => {
    const { writeRecords } = await import("../src/index.js");
    const { readParquet } = await import("@tersor/core");
    const p = join(dir, "out.parquet");
    await writeRecords(p, [{ id: "a", text: "x", n: 1 }, { id: "b", text: "y", n: 2, extra: true }]);
    const rows = [];
    for await (const r of readParquet(p)) rows.push(r);
    expect(rows.map((r) => r["text"])).toEqual(["x", "y"]);
    expect(rows[1]!["extra"]).toBe(true);
  });
});
