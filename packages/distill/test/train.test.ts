import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { BYTE_EOS, type TrainResult, loadDomains, train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CacheTeacher, byteStream, dataFingerprint, distillTrain, evaluateLm, writeTeacherCache } from "../src/index.js";

// End to end on real text (Moby Dick): a teacher trained here (the bundled ref-small may not be
// built in this checkout), its caches, and a student about half its size trained for the same
// steps from the same seed with CE only, with KD from a random-sampling cache (K = 12), and with
// KD from the full distribution (a top-k cache with k = the vocabulary: exact).
const CTX = 64;
let root: string;
let data: { name: string; texts: string[]; validationTexts: string[] }[];
let testText: string;
let teacherRun: TrainResult;
let teacher: CacheTeacher;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tersor-distill-train-"));
  const c = corpus("moby");
  const tr: string[] = [];
  const te: string[] = [];
  for await (const d of c.docs({ split: "train" })) tr.push(d.text);
  for await (const d of c.docs({ split: "test" })) te.push(d.text);
  const texts = tr.join("\n").slice(0, 20000).match(/[\s\S]{1,2000}/g)!;
  testText = te.join("\n").slice(0, 6000);
  data = [{ name: "moby", texts, validationTexts: [testText.slice(0, 1000)] }];
  teacherRun = await train({ model: { arch: "llama", dim: 64, layers: 4, heads: 4, contextLength: CTX }, data, steps: 250, batchTokens: 512, lr: 3e-3, seed: 1, progress: "silent" });
  teacher = { vocabSize: 259, maxLength: CTX, prefixToken: BYTE_EOS, forward: async (t) => ({ data: await teacherRun.model.forwardLogits(t, 1, t.length) }) };
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("distillation end to end", () => {
  it("KD from the cache beats CE alone, and sampling K = 12 is close to full-logit KD at a fraction of the bytes", async () => {
    const domains = await loadDomains(data);
    const meta = { fingerprint: dataFingerprint(domains) };
    const sections = [{ name: "moby", firstDoc: 0, docCount: domains[0]!.train.starts.length - 1 }];
    const sample = await writeTeacherCache(teacher, domains[0]!.train, { dir: join(root, "sample"), mode: "sample", k: 12, seed: 5, meta, sections, progress: "silent" });
    const full = await writeTeacherCache(teacher, domains[0]!.train, { dir: join(root, "full"), mode: "topk", k: 259, meta, sections, progress: "silent" });
    expect(sample.manifest.bytesPerToken! / full.manifest.bytesPerToken!).toBeLessThan(0.05);

    const student = { arch: "llama" as const, dim: 48, layers: 4, heads: 4, contextLength: CTX };
    const common = { model: student, data, steps: 120, batchTokens: 512, lr: 3e-3, seed: 2, progress: "silent" as const };
    const ce = await train(common);
    expect(ce.parameterCount / teacherRun.parameterCount).toBeLessThan(0.6);
    const kdSample = await distillTrain({ ...common, cache: join(root, "sample"), loss: "fkl", alpha: 0.5 });
    const kdFull = await distillTrain({ ...common, cache: join(root, "full"), loss: "fkl", alpha: 0.5 });
    const stream = byteStream([testText]);
    const ev = (r: TrainResult) => evaluateLm((x, b, l) => r.model.forwardLogits(x, b, l), 259, stream, CTX);
    const [t, c, s, f] = [await ev(teacherRun), await ev(ce), await ev(kdSample), await ev(kdFull)];
    expect(t.bitsPerByte).toBeLessThan(c.bitsPerByte);
    expect(s.bitsPerByte).toBeLessThan(c.bitsPerByte);
    expect(f.bitsPerByte).toBeLessThan(c.bitsPerByte);
    expect(Math.abs(s.bitsPerByte - f.bitsPerByte)).toBeLessThan(0.06);
    for (const e of [t, c, s, f]) {
      expect(e.ece).toBeGreaterThanOrEqual(0);
      expect(e.ece).toBeLessThan(0.2);
      // Non-overlapping windows of CTX + 1 tokens: all but each window's first token are predicted.
      expect(e.tokens).toBe(stream.tokens.length - Math.ceil(stream.tokens.length / (CTX + 1)));
    }
  }, 150_000);

  it("refuses a vocabulary mismatch, a cache over other data, two teacher sources and temperature ≤ 0", async () => {
    const common = { model: { arch: "llama" as const, dim: 16, layers: 1, heads: 2, contextLength: CTX }, data, steps: 1, batchTokens: 64, progress: "silent" as const };
    await expect(distillTrain({ ...common, model: { ...common.model, vocab: 300 }, teacher })).rejects.toMatchObject({ code: "E_SHAPE", message: expect.stringMatching(/teacher has 259 tokens, the student 300/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), data: [{ name: "moby", texts: ["other text"] }] })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/not written over this training data/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), teacher })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(distillTrain({ ...common, teacher, temperature: 0 })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/temperature/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), loss: "rkl" })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/forward KL/) });
    // The online teacher path runs.
    const r = await distillTrain({ ...common, teacher, loss: "gkd:0.5", temperature: 2, alpha: 0.7 });
    expect(r.distill).toEqual({ loss: "gkd:0.5", temperature: 2, alpha: 0.7, source: "teacher" });
    expect(Number.isFinite(r.steps[0]!.loss)).toBe(true);
  });
});
