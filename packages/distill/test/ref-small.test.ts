import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { BYTE_EOS, type Model, type TrainResult, loadDomains, loadModel, resolveModelPath, train } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CacheTeacher, byteStream, dataFingerprint, distillTrain, evaluateLm, writeTeacherCache } from "../src/index.js";

// The bundled ref-small (5.9M parameters, trained on the bundled corpora) as the teacher, a student
// of half its size (4 of its 8 layers' shape), the same steps and seed with and without KD. Skipped
// when this install does not hold ref-small's weights.
const HAVE = await resolveModelPath("ref-small").then(
  () => true,
  () => false,
);
const SEQ = 64;
let root: string;
let model: Model;
let teacher: CacheTeacher;
let data: { name: string; texts: string[] }[];
let testText: string;

beforeAll(async () => {
  if (!HAVE) return;
  root = await mkdtemp(join(tmpdir(), "tersor-distill-ref-"));
  model = await loadModel("ref-small");
  teacher = { vocabSize: model.vocabSize, maxLength: model.maxLength, prefixToken: BYTE_EOS, forward: (t) => model.forward(t) };
  const tr: string[] = [];
  const te: string[] = [];
  for await (const d of corpus("moby").docs({ split: "train" })) tr.push(d.text);
  for await (const d of corpus("moby").docs({ split: "test" })) te.push(d.text);
  data = [{ name: "moby", texts: tr.join("\n").slice(0, 8000).match(/[\s\S]{1,1000}/g)! }];
  testText = te.join("\n").slice(0, 3000);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(!HAVE)("distillation from the bundled ref-small", () => {
  it("a half-size student reaches lower test bits per byte with KD from a sample:12 cache than with CE alone, close to full-logit KD", async () => {
    const domains = await loadDomains(data);
    const meta = { fingerprint: dataFingerprint(domains) };
    const sections = [{ name: "moby", firstDoc: 0, docCount: domains[0]!.train.starts.length - 1 }];
    const s = await writeTeacherCache(teacher, domains[0]!.train, { dir: join(root, "s"), mode: "sample", k: 12, seed: 1, meta, sections, progress: "silent" });
    const f = await writeTeacherCache(teacher, domains[0]!.train, { dir: join(root, "f"), mode: "topk", k: model.vocabSize, meta, sections, progress: "silent" });
    expect(s.manifest.bytesPerToken! / f.manifest.bytesPerToken!).toBeLessThan(0.05);
    const student = { arch: "llama" as const, dim: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 688, contextLength: 256, tieEmbeddings: true };
    const common = { model: student, data, steps: 30, batchTokens: 512, seqLen: SEQ, lr: 3e-3, seed: 7, progress: "silent" as const };
    const ce = await train(common);
    expect(ce.parameterCount / model.parameterCount).toBeGreaterThan(0.45);
    expect(ce.parameterCount / model.parameterCount).toBeLessThan(0.55);
    const kdS = await distillTrain({ ...common, cache: join(root, "s"), loss: "fkl", alpha: 0.5 });
    const kdF = await distillTrain({ ...common, cache: join(root, "f"), loss: "fkl", alpha: 0.5 });
    const stream = byteStream([testText]);
    const ev = (r: TrainResult) => evaluateLm((x, b, l) => r.model.forwardLogits(x, b, l), 259, stream, SEQ);
    const [c, ks, kf] = [await ev(ce), await ev(kdS), await ev(kdF)];
    expect(ks.bitsPerByte).toBeLessThan(c.bitsPerByte);
    expect(Math.abs(ks.bitsPerByte - kf.bitsPerByte)).toBeLessThan(0.1);
    process.stdout.write(`ref-small KD: CE ${c.bitsPerByte.toFixed(4)}, sample:12 ${ks.bitsPerByte.toFixed(4)}, full ${kf.bitsPerByte.toFixed(4)} bits/byte\n`);
  }, 180_000);
});
