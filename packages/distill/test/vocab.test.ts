import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { openSafetensorsDir } from "@tersor/core";
import { corpus } from "@tersor/corpora";
import { BYTE_BOS, BYTE_EOS, BYTE_PAD, train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { byteStream, chooseVocabulary, evaluateLm, remapTokens, restrictLogits, tokenCounts, trimCheckpoint } from "../src/index.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tersor-vocab-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("vocabulary trimming", () => {
  it("keeps the corpus's tokens, slices embeddings and head, and bits per byte can only drop on kept text", async () => {
    const tr: string[] = [];
    for await (const d of corpus("moby").docs({ split: "train" })) tr.push(d.text);
    const texts = tr.join("\n").slice(0, 6000).match(/[\s\S]{1,1000}/g)!;
    const dir = join(root, "model");
    const run = await train({ model: { arch: "llama", dim: 32, layers: 1, heads: 2, contextLength: 64 }, data: [{ name: "m", texts }], steps: 15, batchTokens: 512, lr: 3e-3, seed: 1, progress: "silent", out: dir });
    const stream = byteStream(texts);
    const counts = tokenCounts([stream.tokens], 259);
    const trim = chooseVocabulary(counts, { always: [BYTE_BOS, BYTE_EOS, BYTE_PAD] });
    const used = Array.from(counts).filter((c) => c > 0).length;
    expect(trim.kept.length).toBe(used + 2); // EOS is used; BOS and PAD are added
    expect(trim.kept.length).toBeLessThan(259);
    const out = join(root, "trimmed");
    const r = await trimCheckpoint(dir, out, trim);
    expect(r.vocabAfter).toBe(trim.kept.length);
    expect(r.bytesAfter).toBeLessThan(r.bytesBefore);
    expect(JSON.parse(await readFile(join(out, "config.json"), "utf8")).vocab_size).toBe(trim.kept.length);
    const a = await openSafetensorsDir(dir);
    const b = await openSafetensorsDir(out);
    const e0 = (await a.read("model.embed_tokens.weight")).data as Float32Array;
    const e1 = (await b.read("model.embed_tokens.weight")).data as Float32Array;
    const C = 32;
    trim.kept.forEach((id, i) => expect(Array.from(e1.subarray(i * C, (i + 1) * C))).toEqual(Array.from(e0.subarray(id * C, (id + 1) * C))));
    await a.close();
    await b.close();
    // bits per byte before and after trimming, on text made of kept tokens.
    const full = await evaluateLm((x, bt, l) => run.model.forwardLogits(x, bt, l), 259, stream, 64);
    const remapped = { tokens: remapTokens(stream.tokens, trim) };
    const back = (x: Int32Array) => Int32Array.from(x, (t) => trim.kept[t]!);
    const trimmed = await evaluateLm(async (x, bt, l) => restrictLogits(await run.model.forwardLogits(back(x), bt, l), 259, trim), trim.kept.length, remapped, 64, { isByte: (t) => trim.kept[t]! < 256 });
    expect(trimmed.tokens).toBe(full.tokens);
    expect(trimmed.bytes).toBe(full.bytes);
    expect(trimmed.loss).toBeLessThanOrEqual(full.loss + 1e-12);
    expect(trimmed.bitsPerByte).toBeLessThanOrEqual(full.bitsPerByte + 1e-12);
    expect(() => remapTokens([0], chooseVocabulary(counts, { minCount: 1e9, always: [BYTE_EOS] }))).toThrow(/trimmed/);
    expect(() => tokenCounts([[300]], 259)).toThrow(/vocabulary/);
  }, 60_000);
});
