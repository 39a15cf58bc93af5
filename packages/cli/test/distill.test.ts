import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { threads: 1 });

let root: string;
let data: string;
let teacher: string;
let student: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tersor-cli-distill-"));
  const tr: string[] = [];
  for await (const d of corpus("moby").docs({ split: "train" })) tr.push(d.text);
  const lines = tr.join("\n").slice(0, 8000).match(/[\s\S]{1,500}/g)!.map((t, i) => JSON.stringify({ id: `doc${i}`, text: t }));
  data = join(root, "data.jsonl");
  await writeFile(data, lines.join("\n") + "\n");
  teacher = join(root, "teacher");
  await train({ model: { arch: "llama", dim: 32, layers: 2, heads: 2, contextLength: 64 }, data: [data], steps: 30, batchTokens: 512, lr: 3e-3, seed: 1, progress: "silent", out: teacher });
  student = join(root, "student.json");
  await writeFile(student, JSON.stringify({ arch: "llama", dim: 16, layers: 2, heads: 2, contextLength: 64 }));
}, 60_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("tersor distill", () => {
  it("cache writes top-k and sampled caches, reports bytes per token, and resumes", async () => {
    const top = await tersor("distill", "cache", teacher, "--data", data, "--mode", "topk:8", "--out", join(root, "top"), "--shard-docs", "4", "--json");
    expect(top.code, top.stderr).toBe(0);
    const t = JSON.parse(top.stdout) as { positions: number; bytesPerToken: number; rawBytesPerToken: number; denseF32BytesPerToken: number; shardsWritten: number };
    expect(t.rawBytesPerToken).toBe(8 * 6 + 4);
    expect(t.denseF32BytesPerToken).toBe(259 * 4);
    const s1 = await tersor("distill", "cache", teacher, "--data", data, "--mode", "sample:12", "--temperature", "1.5", "--out", join(root, "sample"), "--shard-docs", "4", "--json");
    expect(s1.code, s1.stderr).toBe(0);
    const s = JSON.parse(s1.stdout) as { positions: number; bytesPerToken: number; shardsWritten: number; shards: number };
    expect(s.positions).toBe(t.positions);
    expect(s.bytesPerToken).toBeLessThan(t.denseF32BytesPerToken / 10);
    expect(s.shardsWritten).toBe(s.shards);
    const again = await tersor("distill", "cache", teacher, "--data", data, "--mode", "sample:12", "--temperature", "1.5", "--out", join(root, "sample"), "--shard-docs", "4", "--json");
    expect(JSON.parse(again.stdout)).toMatchObject({ shardsWritten: 0, shardsSkipped: s.shards });
  });

  it("train from the cache and from the teacher, with the CE comparison", async () => {
    const r = await tersor("distill", "train", "--student", student, "--cache", join(root, "sample"), "--data", data, "--steps", "4", "--batch-tokens", "256", "--temperature", "1.5", "--compare-ce", "--eval-chars", "2000", "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, { bitsPerByte: number; ece: number }> & { source: string; steps: number };
    expect(j.source).toBe("cache");
    expect(Number.isFinite((j as unknown as { kdOverheadVsCe: number }).kdOverheadVsCe)).toBe(true);
    expect(j.steps).toBe(4);
    for (const k of ["student", "ce", "teacher"]) {
      expect(Number.isFinite(j[k]!.bitsPerByte)).toBe(true);
      expect(j[k]!.ece).toBeGreaterThanOrEqual(0);
    }
    const o = await tersor("distill", "train", "--student", student, "--teacher", teacher, "--data", data, "--steps", "2", "--batch-tokens", "256", "--loss", "wttm", "--temperature", "2");
    expect(o.code, o.stderr).toBe(0);
    expect(o.stdout).toMatch(/from the teacher/);
    expect(o.stdout).toMatch(/student .* bits\/byte/);
  });

  it("condense reports MMD² for k-means, herding and random; trim reports size saved and the bits-per-byte change", async () => {
    const c = await tersor("distill", "condense", teacher, "--data", data, "--size", "3", "--out", join(root, "cond"), "--json");
    expect(c.code, c.stderr).toBe(0);
    const cj = JSON.parse(c.stdout) as { mmd2: Record<string, number>; indices: Record<string, number[]> };
    for (const k of ["kmeans", "herding", "random"]) {
      expect(cj.mmd2[k]).toBeGreaterThanOrEqual(0);
      expect(new Set(cj.indices[k]).size).toBe(3);
    }
    const lines = (await readFile(join(root, "cond", "herding.jsonl"), "utf8")).trim().split("\n");
    expect(lines.length).toBe(3);
    const t = await tersor("distill", "trim", teacher, "--data", data, "--out", join(root, "trimmed"), "--json");
    expect(t.code, t.stderr).toBe(0);
    const tj = JSON.parse(t.stdout) as { vocabBefore: number; vocabAfter: number; bytesSaved: number; bitsPerByteBefore: number; bitsPerByteAfter: number | null };
    expect(tj.vocabBefore).toBe(259);
    expect(tj.vocabAfter).toBeLessThan(259);
    expect(tj.bytesSaved).toBeGreaterThan(0);
    if (tj.bitsPerByteAfter !== null) expect(tj.bitsPerByteAfter).toBeLessThanOrEqual(tj.bitsPerByteBefore + 1e-9);
    const cfg = JSON.parse(await readFile(join(root, "trimmed", "config.json"), "utf8")) as { vocab_size: number };
    expect(cfg.vocab_size).toBe(tj.vocabAfter);
  });

  it("bad input: temperature ≤ 0, vocabulary mismatch, a truncated cache, a bad mode", async () => {
    const t0 = await tersor("distill", "cache", teacher, "--data", data, "--mode", "topk:4", "--out", join(root, "t0"), "--temperature", "0");
    expect(t0.code).toBe(1);
    expect(t0.stderr).toMatch(/E_RANGE.*temperature/);
    const big = join(root, "student300.json");
    await writeFile(big, JSON.stringify({ arch: "llama", dim: 16, layers: 1, heads: 2, contextLength: 64, vocab: 300 }));
    const v = await tersor("distill", "train", "--student", big, "--cache", join(root, "top"), "--data", data, "--steps", "1", "--batch-tokens", "64");
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/E_SHAPE.*259 tokens.*student 300/);
    const shard = join(root, "top", "shard-00000.tkdc");
    const bytes = await readFile(shard);
    await truncate(shard, bytes.length - 10);
    const tr = await tersor("distill", "train", "--student", student, "--cache", join(root, "top"), "--data", data, "--steps", "1", "--batch-tokens", "64");
    expect(tr.code).toBe(1);
    expect(tr.stderr).toMatch(/E_FORMAT.*truncated/);
    const m = await tersor("distill", "cache", teacher, "--data", data, "--mode", "top:4", "--out", join(root, "m"));
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/topk:K or sample:K/);
  });
});
