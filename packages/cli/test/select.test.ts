import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng } from "@tersor/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { threads: 1 });

let dir: string;
let corpusPath: string;
const WORDS = "whale sea ship captain harpoon ocean deck sail storm crew island harbour rope mast wind wave".split(" ");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-cli-select-"));
  const rng = new Rng(4);
  const lines: string[] = [];
  let id = 0;
  for (let g = 0; g < 12; g++) {
    const w = Array.from({ length: 120 }, () => WORDS[Math.floor(rng.nextF64() * WORDS.length)]! + Math.floor(rng.nextF64() * 40));
    lines.push(JSON.stringify({ id: `doc-${id++}`, text: w.join(" "), domain: g % 2 ? "odd" : "even" }));
    const e = [...w];
    e[60] = "EDIT";
    lines.push(JSON.stringify({ id: `doc-${id++}`, text: e.join(" "), domain: g % 2 ? "odd" : "even" }));
  }
  corpusPath = join(dir, "corpus.jsonl");
  await writeFile(corpusPath, lines.join("\n") + "\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("tersor dedup", () => {
  it("drops the planted near copies and writes a sidecar and report", async () => {
    const out = join(dir, "kept.jsonl");
    const r = await tersor("dedup", corpusPath, "--out", out, "--json", "--report", join(dir, "dedup.html"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.documents).toBe(24);
    expect(s.kept).toBe(12);
    expect(s.near_duplicates).toBe(12);
    const kept = (await readFile(out, "utf8")).trim().split("\n").map((l) => JSON.parse(l).id);
    expect(kept).toEqual(Array.from({ length: 12 }, (_, g) => `doc-${2 * g}`));
    const side = (await readFile(join(dir, "kept.sidecar.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    expect(side[1]).toMatchObject({ id: "doc-1", keep: false, cluster: 0, reason: "near-duplicate" });
    expect(await readFile(join(dir, "dedup.html"), "utf8")).toContain("<svg");
  });

  it("a tiny --memory budget (many sorted runs) writes the same output and leaves no run files", async () => {
    const a = join(dir, "mem-default.jsonl");
    const b = join(dir, "mem-tiny.jsonl");
    expect((await tersor("dedup", corpusPath, "--out", a)).code).toBe(0);
    const r = await tersor("dedup", corpusPath, "--out", b, "--memory", "2KB", "--work-dir", join(dir, "work"));
    expect(r.code).toBe(0);
    expect(await readFile(b, "utf8")).toBe(await readFile(a, "utf8"));
    expect(await readFile(join(dir, "mem-tiny.sidecar.jsonl"), "utf8")).toBe(await readFile(join(dir, "mem-default.sidecar.jsonl"), "utf8"));
    expect((await readdir(dir)).filter((f) => f.includes("work"))).toEqual([]);
    const bad = await tersor("dedup", corpusPath, "--out", b, "--memory", "lots");
    expect(bad.stderr).toMatch(/memory budget/);
  });

  it("decontaminates against a target", async () => {
    const lines = (await readFile(corpusPath, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    const target = join(dir, "bench.jsonl");
    await writeFile(target, JSON.stringify({ text: lines[4].text.split(" ").slice(10, 30).join(" ") }) + "\n");
    const r = await tersor("dedup", corpusPath, "--out", join(dir, "clean.jsonl"), "--decontaminate", target, "--json");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.contaminated).toBe(2); // doc-4 and its near copy doc-5 share the 13-grams
    expect(s.written).toBe(11);
  });

  it("4 shards merged equal the single-process result (minhash, exact with decontamination)", async () => {
    const lines = (await readFile(corpusPath, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    const target = join(dir, "bench-shards.jsonl");
    await writeFile(target, JSON.stringify({ text: lines[6].text.split(" ").slice(10, 30).join(" ") }) + "\n");
    for (const extra of [[], ["--mode", "exact", "--decontaminate", target]]) {
      const tag = extra.length ? "exact" : "minhash";
      const single = join(dir, `single-${tag}.jsonl`);
      expect((await tersor("dedup", corpusPath, ...extra, "--out", single)).code).toBe(0);
      const sigs = [0, 1, 2, 3].map((s) => join(dir, `sig-${tag}-${s}.json`));
      const runs = await Promise.all(sigs.map((p, s) => tersor("dedup", corpusPath, ...extra, "--shard", `${s}/4`, "--signatures", p)));
      for (const r of runs) expect(r.code).toBe(0);
      const merged = join(dir, `merged-${tag}.jsonl`);
      const m = await tersor("dedup", "merge", ...sigs, "--input", corpusPath, "--out", merged, "--json");
      expect(m.stderr).toBe("");
      expect(await readFile(merged, "utf8")).toBe(await readFile(single, "utf8"));
      expect(await readFile(join(dir, `merged-${tag}.sidecar.jsonl`), "utf8")).toBe(await readFile(join(dir, `single-${tag}.sidecar.jsonl`), "utf8"));
      if (tag === "exact") expect(JSON.parse(m.stdout).contaminated).toBe(2); // doc-6 and its near copy doc-7 (edited at word 60) share the 13-grams
    }
  });

  it("dedup merge under a tiny --memory budget (many sorted runs) equals the single-process result and leaves no run files", async () => {
    const lines = (await readFile(corpusPath, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    // Exact copies too (one case-changed), so the exact-key section of the runs is exercised.
    const withCopies = join(dir, "corpus-copies.jsonl");
    await writeFile(withCopies, [...lines, { ...lines[3], id: "copy-3", text: lines[3].text.toUpperCase() }, { ...lines[8], id: "copy-8" }].map((l) => JSON.stringify(l)).join("\n") + "\n");
    const target = join(dir, "bench-mem.jsonl");
    await writeFile(target, JSON.stringify({ text: lines[10].text.split(" ").slice(10, 30).join(" ") }) + "\n");
    const cases: [string, string[]][] = [["minhash", ["--decontaminate", target]], ["exact", ["--mode", "exact"]]];
    for (const [tag, extra] of cases) {
      const single = join(dir, `mem-single-${tag}.jsonl`);
      const s = await tersor("dedup", withCopies, ...extra, "--out", single, "--json");
      expect(s.code).toBe(0);
      const sigs = [0, 1, 2, 3].map((i) => join(dir, `mem-sig-${tag}-${i}.jsonl`));
      const runs = await Promise.all(sigs.map((p, i) => tersor("dedup", withCopies, ...extra, "--shard", `${i}/4`, "--signatures", p)));
      for (const r of runs) expect(r.code).toBe(0);
      const merged = join(dir, `mem-merged-${tag}.jsonl`);
      const work = join(dir, `mem-merge-work-${tag}`);
      const m = await tersor("dedup", "merge", ...sigs.reverse(), "--input", withCopies, "--out", merged, "--memory", "1KB", "--work-dir", work, "--json");
      expect(m.stderr).toBe("");
      expect(m.code).toBe(0);
      expect(await readFile(merged, "utf8")).toBe(await readFile(single, "utf8"));
      expect(await readFile(join(dir, `mem-merged-${tag}.sidecar.jsonl`), "utf8")).toBe(await readFile(join(dir, `mem-single-${tag}.sidecar.jsonl`), "utf8"));
      // The same summary as one process: clusters, candidate pairs and precision from signatures read back from disk.
      const { written: _w, contaminated: _c, ...ms } = JSON.parse(m.stdout);
      const { written: _w2, contaminated: _c2, ...ss } = JSON.parse(s.stdout);
      expect(ms).toEqual(ss);
      expect(JSON.parse(m.stdout).written).toBe(JSON.parse(s.stdout).written);
      expect(ss.exact_duplicates).toBe(2);
      if (tag === "minhash") expect(JSON.parse(m.stdout).contaminated).toBe(2); // doc-10 and its near copy doc-11
      await expect(readdir(work)).rejects.toThrow(); // no run files, no work directory
      expect((await readdir(dir)).filter((f) => f.includes("dedup-work"))).toEqual([]);
    }
    // A missing shard is a clear error, and leaves no output and no run files behind.
    const sigs = [0, 1, 2].map((i) => join(dir, `mem-sig-minhash-${i}.jsonl`));
    const bad = await tersor("dedup", "merge", ...sigs, "--input", withCopies, "--out", join(dir, "mem-bad.jsonl"), "--memory", "1KB");
    expect(bad.stderr).toMatch(/missing or extra shards/);
    await expect(readFile(join(dir, "mem-bad.jsonl"), "utf8")).rejects.toThrow();
    expect((await readdir(dir)).filter((f) => f.includes("dedup-work"))).toEqual([]);
    const twice = await tersor("dedup", "merge", sigs[0]!, sigs[0]!, "--input", withCopies, "--out", join(dir, "mem-bad.jsonl"));
    expect(twice.stderr).toMatch(/appears in two shards/);
  });
});

describe("tersor select", () => {
  it("random selection: 4 merged shards equal the single-process result", async () => {
    const single = join(dir, "sel.jsonl");
    const r = await tersor("select", corpusPath, "--method", "random", "--budget", "25%", "--seed", "3", "--out", single, "--report", join(dir, "sel.html"));
    expect(r.code).toBe(0);
    expect((await readFile(single, "utf8")).trim().split("\n").length).toBe(6);
    const files = [0, 1, 2, 3].map((s) => join(dir, `scores-${s}.jsonl`));
    const runs = await Promise.all(files.map((p, s) => tersor("select", corpusPath, "--method", "random", "--seed", "3", "--shard", `${s}/4`, "--scores", p)));
    for (const r of runs) expect(r.code).toBe(0);
    const merged = join(dir, "sel-merged.jsonl");
    expect((await tersor("select", "merge", ...files, "--input", corpusPath, "--budget", "25%", "--out", merged)).code).toBe(0);
    expect(await readFile(merged, "utf8")).toBe(await readFile(single, "utf8"));
    expect(await readFile(join(dir, "sel-merged.sidecar.jsonl"), "utf8")).toBe(await readFile(join(dir, "sel.sidecar.jsonl"), "utf8"));
    const rep = JSON.parse(await readFile(join(dir, "sel.json"), "utf8"));
    expect(rep.summary.kde_entropy_selected).toBeGreaterThan(0);
  });

  it("DSIR and stratified: 4 merged shards equal the single-process result; whole-pool methods refuse --shard", async () => {
    const lines = (await readFile(corpusPath, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    const target = join(dir, "dsir-target.jsonl");
    await writeFile(target, [2, 7, 11].map((i) => JSON.stringify({ text: lines[i].text })).join("\n") + "\n");
    for (const [method, extra] of [["dsir", ["--target", target]], ["stratified", []]] as const) {
      const single = join(dir, `${method}.jsonl`);
      expect((await tersor("select", corpusPath, "--method", method, ...extra, "--budget", "8", "--seed", "5", "--out", single)).code).toBe(0);
      const files = [0, 1, 2, 3].map((s) => join(dir, `${method}-shard-${s}.jsonl`));
      const runs = await Promise.all(files.map((p, s) => tersor("select", corpusPath, "--method", method, ...extra, "--seed", "5", "--shard", `${s}/4`, "--scores", p)));
      for (const r of runs) expect(r.stderr).toBe("");
      const merged = join(dir, `${method}-merged.jsonl`);
      const m = await tersor("select", "merge", ...files.reverse(), "--input", corpusPath, "--budget", "8", "--out", merged);
      expect(m.stderr).toBe("");
      expect(await readFile(merged, "utf8")).toBe(await readFile(single, "utf8"));
      expect(await readFile(join(dir, `${method}-merged.sidecar.jsonl`), "utf8")).toBe(await readFile(join(dir, `${method}.sidecar.jsonl`), "utf8"));
    }
    const r = await tersor("select", corpusPath, "--method", "kcenter", "--shard", "0/4", "--scores", join(dir, "k.jsonl"));
    expect(r.stderr).toMatch(/not supported for --method kcenter/);
    const three = await tersor("select", "merge", join(dir, "dsir-shard-0.jsonl"), "--input", corpusPath, "--budget", "2", "--out", join(dir, "m3.jsonl"));
    expect(three.stderr).toMatch(/missing or extra shards/);
  });

  it("bad input gives clear errors", async () => {
    const bad = join(dir, "bad.jsonl");
    await writeFile(bad, '{"text":"a b c"}\n{oops\n');
    const r1 = await tersor("select", bad, "--budget", "1", "--out", join(dir, "x.jsonl"));
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/bad\.jsonl:2/);
    const r2 = await tersor("select", bad, "--budget", "1", "--on-bad-line", "skip", "--out", join(dir, "x.jsonl"));
    expect(r2.code).toBe(0);
    expect(r2.stderr).toMatch(/skipped line 2/);
    const r3 = await tersor("select", corpusPath, "--budget", "1000", "--out", join(dir, "y.jsonl"));
    expect(r3.stderr).toMatch(/larger than the corpus/);
    const r4 = await tersor("select", corpusPath, "--text-field", "body", "--budget", "1", "--out", join(dir, "y.jsonl"));
    expect(r4.stderr).toMatch(/no string field "body"/);
    const empty = join(dir, "empty.jsonl");
    await writeFile(empty, "");
    const r5 = await tersor("select", corpusPath, "--method", "zipfit", "--target", empty, "--budget", "2", "--out", join(dir, "z.jsonl"));
    expect(r5.stderr).toMatch(/target .* is empty/);
  });
});
