import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TersorError } from "@tersor/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { TeacherCache, type CacheTeacher, parseCacheMode, writeTeacherCache } from "../src/index.js";

/**
 * A deterministic long-tailed teacher: after token `t`, logits_j = −1.1·log(1 + ((j − 7t) mod V)),
 * a Zipf distribution rotated by the previous token. Counts its forward calls.
 */
function zipfTeacher(V: number, maxLength = 64, failAfter = Infinity): CacheTeacher & { calls: number; dist(prev: number): Float64Array } {
  const t = {
    vocabSize: V,
    maxLength,
    prefixToken: 1,
    calls: 0,
    dist(prev: number): Float64Array {
      const p = new Float64Array(V);
      let z = 0;
      for (let j = 0; j < V; j++) z += p[j] = Math.exp(-1.1 * Math.log(1 + ((((j - 7 * prev) % V) + V) % V)));
      for (let j = 0; j < V; j++) p[j]! /= z;
      return p;
    },
    async forward(tokens: Int32Array) {
      if (++t.calls > failAfter) throw new TersorError("E_IO", "teacher went away");
      if (tokens.length > maxLength) throw new TersorError("E_RANGE", `too long: ${tokens.length}`);
      const data = new Float32Array(tokens.length * V);
      tokens.forEach((tok, i) => {
        for (let j = 0; j < V; j++) data[i * V + j] = -1.1 * Math.log(1 + ((((j - 7 * tok) % V) + V) % V));
      });
      return { data };
    },
  };
  return t;
}

/** `nDocs` documents of pseudo-random tokens with lengths 1 … 150 (some longer than the context). */
function makeDocs(nDocs: number, V: number): { tokens: Int32Array; starts: Uint32Array } {
  const starts = new Uint32Array(nDocs + 1);
  const toks: number[] = [];
  let s = 12345;
  for (let d = 0; d < nDocs; d++) {
    starts[d] = toks.length;
    const n = 1 + (d * 37) % 150;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      toks.push(s % V);
    }
  }
  starts[nDocs] = toks.length;
  return { tokens: Int32Array.from(toks), starts };
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tersor-distill-cache-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("teacher-logit cache", () => {
  const V = 300;

  it("top-k round trip: every (document, position) holds the teacher's top-k of that position", async () => {
    const docs = makeDocs(9, V);
    const teacher = zipfTeacher(V);
    const dir = join(root, "topk");
    const s = await writeTeacherCache(teacher, docs, { dir, mode: "topk", k: 8, shardDocs: 4, chunkPositions: 50, progress: "silent" });
    expect(s.manifest.complete).toBe(true);
    expect(s.manifest.shards.length).toBe(3);
    expect(s.manifest.positions).toBe(docs.tokens.length);
    expect(s.manifest.bytesPerToken).toBeGreaterThan(0);
    expect(s.manifest.rawBytesPerToken).toBe(8 * (2 + 4) + 4);
    const c = await TeacherCache.open(dir);
    try {
      for (const d of [0, 3, 4, 5, 8]) {
        const n = docs.starts[d + 1]! - docs.starts[d]!;
        expect(c.positionsOf(d)).toBe(n);
        const r = await c.read(d, 0, n);
        for (let p = 0; p < n; p++) {
          const prev = p === 0 ? teacher.prefixToken : docs.tokens[docs.starts[d]! + p - 1]!;
          const dist = teacher.dist(prev);
          const order = Array.from(dist.keys()).sort((a, b) => dist[b]! - dist[a]! || a - b);
          let kept = 0;
          for (let i = 0; i < 8; i++) {
            expect(r.ids[p * 8 + i]).toBe(order[i]);
            expect(r.values[p * 8 + i]).toBeCloseTo(Math.log(dist[order[i]!]!), 4);
            kept += dist[order[i]!]!;
          }
          expect(Math.exp(r.tailLogMass![p]!)).toBeCloseTo(1 - kept, 4);
        }
      }
      // A slice across chunk boundaries equals the same positions read whole.
      const whole = await c.read(4, 0, c.positionsOf(4));
      const part = await c.read(4, 45, 20);
      expect(Array.from(part.ids)).toEqual(Array.from(whole.ids.subarray(45 * 8, 65 * 8)));
      await expect(c.read(5, 0, c.positionsOf(5) + 1)).rejects.toMatchObject({ code: "E_RANGE" });
      await expect(c.read(99, 0, 1)).rejects.toMatchObject({ code: "E_RANGE" });
    } finally {
      await c.close();
    }
  });

  it("random sampling is unbiased (mean of the weights → the teacher) while renormalised top-k is biased", async () => {
    // 600 single-token documents: every position has the same teacher distribution (after the prefix token).
    const n = 600;
    const docs = { tokens: new Int32Array(n).fill(5), starts: Uint32Array.from({ length: n + 1 }, (_, i) => i) };
    const teacher = zipfTeacher(V);
    const p = teacher.dist(teacher.prefixToken);
    const K = 12;
    const dir = join(root, "sample");
    const s = await writeTeacherCache(teacher, docs, { dir, mode: "sample", k: K, seed: 3, compression: "brotli", shardDocs: 256, progress: "silent" });
    const topDir = join(root, "sample-topk");
    const t = await writeTeacherCache(teacher, docs, { dir: topDir, mode: "topk", k: K, shardDocs: 256, compression: "none", progress: "silent" });
    expect(s.manifest.bytesPerToken).toBeLessThan(t.manifest.bytesPerToken!);
    const c = await TeacherCache.open(dir);
    const est = new Float64Array(V);
    const sq = new Float64Array(V);
    for (let d = 0; d < n; d++) {
      const r = await c.read(d, 0, 1);
      const row = new Float64Array(V);
      for (let i = 0; i < K; i++) if (r.ids[i]! >= 0) row[r.ids[i]!]! += r.values[i]!;
      for (let j = 0; j < V; j++) {
        est[j]! += row[j]!;
        sq[j]! += row[j]! * row[j]!;
      }
    }
    await c.close();
    // Sampling from the teacher itself: id j is drawn Binomial(K·n, p_j) times in all, and the mean
    // weight is count_j / (K·n). z-scores under that null, and a chi-square over the ids with
    // expected count ≥ 5 (the rest pooled in one bin).
    let worstZ = 0;
    let chi2 = 0;
    let df = -1;
    let poolObs = 0;
    let poolExp = 0;
    for (let j = 0; j < V; j++) {
      const m = est[j]! / n;
      worstZ = Math.max(worstZ, Math.abs(m - p[j]!) / Math.sqrt((p[j]! * (1 - p[j]!)) / (K * n)));
      const obs = est[j]! * K;
      const exp = p[j]! * K * n;
      if (exp >= 5) {
        chi2 += (obs - exp) ** 2 / exp;
        df++;
      } else {
        poolObs += obs;
        poolExp += exp;
      }
    }
    if (poolExp > 0) {
      chi2 += (poolObs - poolExp) ** 2 / poolExp;
      df++;
    }
    expect(worstZ).toBeLessThan(4.5);
    expect(chi2).toBeLessThan(df + 6 * Math.sqrt(2 * df));
    // Total-variation distance of the averaged sample estimate vs top-k renormalised (zero tail).
    const tc = await TeacherCache.open(topDir);
    const r = await tc.read(0, 0, 1);
    await tc.close();
    let kept = 0;
    for (let i = 0; i < K; i++) kept += Math.exp(r.values[i]!);
    const topk = new Float64Array(V);
    for (let i = 0; i < K; i++) topk[r.ids[i]!] = Math.exp(r.values[i]!) / kept;
    let tvTop = 0;
    let tvSample = 0;
    for (let j = 0; j < V; j++) {
      tvTop += Math.abs(topk[j]! - p[j]!) / 2;
      tvSample += Math.abs(est[j]! / n - p[j]!) / 2;
    }
    expect(tvTop).toBeGreaterThan(0.3); // the dropped tail: a long-tailed teacher loses much of its mass
    expect(tvSample).toBeLessThan(tvTop / 3);
  });

  it("resumes after an interruption and produces the same cache", async () => {
    const docs = makeDocs(10, V);
    const full = join(root, "full");
    await writeTeacherCache(zipfTeacher(V), docs, { dir: full, mode: "sample", k: 6, seed: 9, shardDocs: 3, progress: "silent" });
    const dir = join(root, "resume");
    // Forward calls per shard of 3 documents: 3, 8, then it fails inside the third shard.
    await expect(writeTeacherCache(zipfTeacher(V, 64, 12), docs, { dir, mode: "sample", k: 6, seed: 9, shardDocs: 3, progress: "silent" })).rejects.toThrow(/teacher went away/);
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith(".tkdc")).length).toBe(2);
    expect(files.some((f) => f.endsWith(".tmp"))).toBe(false);
    await expect(TeacherCache.open(dir)).rejects.toMatchObject({ code: "E_FORMAT", message: expect.stringMatching(/incomplete/) });
    const s = await writeTeacherCache(zipfTeacher(V), docs, { dir, mode: "sample", k: 6, seed: 9, shardDocs: 3, progress: "silent" });
    expect(s.shardsSkipped).toBe(2);
    expect(s.shardsWritten).toBe(2);
    for (const f of s.manifest.shards.map((x) => x.file)) expect(Buffer.compare(await readFile(join(dir, f)), await readFile(join(full, f)))).toBe(0);
    // Other options over the same directory are refused.
    await expect(writeTeacherCache(zipfTeacher(V), docs, { dir, mode: "sample", k: 7, seed: 9, shardDocs: 3, progress: "silent" })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/k: 6 there, 7 now/) });
  });

  it("bad input: truncated shard (index checksum), corrupt index, temperature ≤ 0, tokens outside the vocabulary, bad modes", async () => {
    const docs = makeDocs(4, V);
    const dir = join(root, "trunc");
    await writeTeacherCache(zipfTeacher(V), docs, { dir, mode: "topk", k: 4, shardDocs: 2, progress: "silent" });
    const shard = join(dir, "shard-00001.tkdc");
    const bytes = await readFile(shard);
    await truncate(shard, bytes.length - 40);
    await expect(TeacherCache.open(dir)).rejects.toMatchObject({ code: "E_FORMAT", message: expect.stringMatching(/truncated/) });
    // Flip one byte inside the index: the checksum catches it.
    const bad = Buffer.from(bytes);
    const indexOffset = bad.readDoubleLE(bad.length - 32);
    bad[indexOffset + 2]! ^= 0x5a;
    await writeFile(shard, bad);
    await expect(TeacherCache.open(dir)).rejects.toMatchObject({ code: "E_FORMAT", message: expect.stringMatching(/index checksum/) });
    // A flipped payload byte: the chunk checksum catches it on read.
    const bad2 = Buffer.from(bytes);
    bad2[64 + 24 + 3]! ^= 0xff;
    await writeFile(shard, bad2);
    const c = await TeacherCache.open(dir);
    await expect(c.read(2, 0, 1)).rejects.toMatchObject({ code: "E_FORMAT", message: expect.stringMatching(/checksum/) });
    await c.close();
    for (const temperature of [0, -2]) {
      await expect(writeTeacherCache(zipfTeacher(V), docs, { dir: join(root, "t0"), mode: "topk", k: 4, temperature })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/temperature/) });
    }
    await expect(writeTeacherCache(zipfTeacher(100), docs, { dir: join(root, "v"), mode: "topk", k: 4 })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/vocabulary \[0, 100\)/) });
    expect(() => parseCacheMode("topk")).toThrow(/topk:K/);
    expect(parseCacheMode("sample:12")).toEqual({ mode: "sample", k: 12 });
  });
});
