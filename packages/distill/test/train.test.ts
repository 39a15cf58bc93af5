import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { BYTE_EOS, type TrainResult, loadDomains, train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CacheTeacher, dataFingerprint, distillTrain, writeTeacherCache } from "../src/index.js";

// distillTrain's checks and its online-teacher path, with a small teacher trained here (the end-to-end
// comparison with the bundled ref-small is in ref-small.test.ts).
const CTX = 64;
let root: string;
let data: { name: string; texts: string[]; validationTexts: string[] }[];
let teacherRun: TrainResult;
let teacher: CacheTeacher;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tersor-distill-train-"));
  const c = corpus("moby");
  const tr: string[] = [];
  const te: string[] = [];
  for await (const d of c.docs({ split: "train" })) tr.push(d.text);
  for await (const d of c.docs({ split: "test" })) te.push(d.text);
  const texts = tr.join("\n").slice(0, 6000).match(/[\s\S]{1,2000}/g)!;
  data = [{ name: "moby", texts, validationTexts: [te.join("\n").slice(0, 1000)] }];
  teacherRun = await train({ model: { arch: "llama", dim: 64, layers: 4, heads: 4, contextLength: CTX }, data, steps: 20, batchTokens: 512, lr: 3e-3, seed: 1, progress: "silent" });
  teacher = { vocabSize: 259, maxLength: CTX, prefixToken: BYTE_EOS, forward: async (t) => ({ data: await teacherRun.model.forwardLogits(t, 1, t.length) }) };
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("distillTrain", () => {
  it("refuses a vocabulary mismatch, a cache over other data, two teacher sources and temperature ≤ 0", async () => {
    const domains = await loadDomains(data);
    const sections = [{ name: "moby", firstDoc: 0, docCount: domains[0]!.train.starts.length - 1 }];
    await writeTeacherCache(teacher, domains[0]!.train, { dir: join(root, "sample"), mode: "sample", k: 12, seed: 5, meta: { fingerprint: dataFingerprint(domains) }, sections, progress: "silent" });
    const common = { model: { arch: "llama" as const, dim: 16, layers: 1, heads: 2, contextLength: CTX }, data, steps: 1, batchTokens: 64, progress: "silent" as const };
    await expect(distillTrain({ ...common, model: { ...common.model, vocab: 300 }, teacher })).rejects.toMatchObject({ code: "E_SHAPE", message: expect.stringMatching(/teacher has 259 tokens, the student 300/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), data: [{ name: "moby", texts: ["other text"] }] })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/not written over this training data/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), teacher })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(distillTrain({ ...common, teacher, temperature: 0 })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/temperature/) });
    await expect(distillTrain({ ...common, cache: join(root, "sample"), loss: "rkl" })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/forward KL/) });
    // The online teacher path runs.
    const r = await distillTrain({ ...common, teacher, loss: "gkd:0.5", temperature: 2, alpha: 0.7 });
    expect(r.distill).toEqual({ loss: "gkd:0.5", temperature: 2, alpha: 0.7, source: "teacher", path: "loss-hook" });
    expect(Number.isFinite(r.steps[0]!.loss)).toBe(true);
  });

  it("forward KL from a sampled cache through the trainer's sparse targets equals the fused loss hook", async () => {
    const common = { model: { arch: "llama" as const, dim: 16, layers: 1, heads: 2, contextLength: CTX }, data, steps: 3, batchTokens: 128, lr: 3e-3, seed: 4, progress: "silent" as const };
    const a = await distillTrain({ ...common, cache: join(root, "sample"), loss: "fkl", alpha: 0.6 });
    const b = await distillTrain({ ...common, cache: join(root, "sample"), loss: "fkl", alpha: 0.6, sparseFastPath: false });
    expect(a.distill.path).toBe("sparse-targets");
    expect(b.distill.path).toBe("loss-hook");
    a.steps.forEach((s, i) => expect(s.loss).toBeCloseTo(b.steps[i]!.loss, 4));
  });
});
