import { TersorError } from "@tersor/core";
import { describe, expect, it } from "vitest";

import { checkVocab, kdLoss, parseLossSpec } from "../src/index.js";

const ln = Math.log;
const dense = (logits: number[]) => ({ kind: "dense" as const, logits: Float32Array.from(logits) });

function softmax(x: number[], T = 1): number[] {
  const m = Math.max(...x.map((v) => v / T));
  const e = x.map((v) => Math.exp(v / T - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

describe("KD losses (native fused kernel)", () => {
  const student = Float32Array.from([ln(0.1), ln(0.9)]);
  const teacher = dense([ln(0.9), ln(0.1)]);

  it("closed forms: student [0.1, 0.9] vs teacher [0.9, 0.1]", async () => {
    const f = await kdLoss(student, 1, 2, teacher, null, { loss: "fkl" });
    const r = await kdLoss(student, 1, 2, teacher, null, { loss: "rkl" });
    const j = await kdLoss(student, 1, 2, teacher, null, { loss: "gkd:0.5" });
    expect(f.loss).toBeCloseTo(0.8 * ln(9), 5);
    expect(f.loss).toBeCloseTo(1.75778, 5);
    expect(r.loss).toBeCloseTo(1.75778, 5);
    expect(j.loss).toBeCloseTo(0.368064, 5);
    expect((await kdLoss(student, 1, 2, teacher, null, { loss: "gkd:0" })).loss).toBeCloseTo(f.loss, 6);
    expect((await kdLoss(student, 1, 2, teacher, null, { loss: "gkd:1" })).loss).toBeCloseTo(r.loss, 6);
    expect((await kdLoss(student, 1, 2, teacher, null, { loss: "tv" })).loss).toBeCloseTo(0.8, 6);
  });

  it("identical student and teacher give zero loss", async () => {
    const x = Float32Array.from([0.3, -1.2, 2.0, 0.7, 0.1, -0.4]);
    for (const loss of ["fkl", "rkl", "gkd:0.3", "tv"]) {
      const r = await kdLoss(x, 2, 3, { kind: "dense", logits: x }, null, { loss, temperature: 2, grad: true });
      expect(Math.abs(r.loss)).toBeLessThan(1e-6);
      expect(Math.max(...Array.from(r.dlogits!, Math.abs))).toBeLessThan(1e-6);
    }
  });

  it("MixCE at eta 1 equals CE, and CE mixes in with its weight", async () => {
    const x = Float32Array.from([0.5, -0.2, 1.1, 0.0, 2.0, -1.0]);
    const labels = Int32Array.from([2, 0]);
    const ce = await kdLoss(x, 2, 3, null, labels, { loss: "ce" });
    const mix = await kdLoss(x, 2, 3, null, labels, { loss: "mixce:1" });
    expect(mix.loss).toBeCloseTo(ce.loss, 6);
    const ref = -ln(softmax([0.5, -0.2, 1.1])[2]!) - ln(softmax([0.0, 2.0, -1.0])[0]!);
    expect(ce.loss).toBeCloseTo(ref, 5);
    const t = dense([1, 0, -1, 0, 1, 0]);
    const both = await kdLoss(x, 2, 3, t, labels, { loss: "fkl", kdWeight: 0.3, ceWeight: 0.7 });
    expect(both.loss).toBeCloseTo(0.3 * both.kd + 0.7 * ref, 5);
    expect(both.ce).toBeCloseTo(ref, 5);
  });

  it("forward-KL gradient is T·(q − p) by definition, scaled", async () => {
    const z = [0.2, -0.5, 1.5, 0.3];
    const t = [1.0, 0.0, -1.0, 2.0];
    const T = 2;
    const r = await kdLoss(Float32Array.from(z), 1, 4, dense(t), null, { loss: "fkl", temperature: T, grad: true, scale: 0.5 });
    const q = softmax(z, T);
    const p = softmax(t, T);
    q.forEach((qj, j) => expect(r.dlogits![j]).toBeCloseTo(0.5 * T * (qj - p[j]!), 6));
    const kl = p.reduce((a, pj, j) => a + pj * ln(pj / q[j]!), 0);
    expect(r.loss).toBeCloseTo(T * T * kl, 5);
  });

  it("sparse top-k teachers with a uniform tail and random-sampling weights", async () => {
    const z = Float32Array.from([0.2, -0.5, 1.5, 0.3]);
    // Teacher [0.5, 0.3, 0.1, 0.1] as top-2 with the remaining 0.2 spread uniformly.
    const top = { kind: "logprobs" as const, k: 2, ids: Int32Array.from([0, 1]), logprobs: Float32Array.from([ln(0.5), ln(0.3)]), tail: "uniform" as const };
    const full = dense([ln(0.5), ln(0.3), ln(0.1), ln(0.1)]);
    for (const loss of ["fkl", "rkl", "gkd:0.5", "tv", "wttm"]) {
      const a = await kdLoss(z, 1, 4, top, null, { loss, temperature: 1.5 });
      const b = await kdLoss(z, 1, 4, full, null, { loss, temperature: 1.5 });
      expect(a.loss).toBeCloseTo(b.loss, 5);
    }
    // Weights equal to p: forward KL up to the teacher's entropy (a constant).
    const w = { kind: "weights" as const, k: 4, ids: Int32Array.from([0, 1, 2, 3]), weights: Float32Array.from([0.5, 0.3, 0.1, 0.1]) };
    const a = await kdLoss(z, 1, 4, w, null, { loss: "fkl", grad: true });
    const b = await kdLoss(z, 1, 4, full, null, { loss: "fkl", grad: true });
    const H = -[0.5, 0.3, 0.1, 0.1].reduce((s, p) => s + p * ln(p), 0);
    expect(a.loss - H).toBeCloseTo(b.loss, 5);
    for (let j = 0; j < 4; j++) expect(a.dlogits![j]).toBeCloseTo(b.dlogits![j]!, 6);
  });

  it("bad input: vocabulary mismatch names both sizes, temperature ≤ 0, unknown loss, out-of-range ids", async () => {
    const z = new Float32Array(2 * 5);
    const err = await kdLoss(z, 2, 5, { kind: "dense", logits: new Float32Array(2 * 7) }, null, { loss: "fkl" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TersorError);
    expect((err as TersorError).code).toBe("E_SHAPE");
    expect((err as Error).message).toMatch(/7 tokens.*student 5/);
    expect(() => checkVocab(300, 259)).toThrow(/300.*259/);
    for (const temperature of [0, -1]) {
      await expect(kdLoss(z, 2, 5, { kind: "dense", logits: z }, null, { loss: "fkl", temperature })).rejects.toMatchObject({ code: "E_RANGE" });
    }
    expect(() => parseLossSpec("kl")).toThrow(/unknown loss/);
    expect(() => parseLossSpec("gkd:1.5")).toThrow(/β/);
    expect(parseLossSpec("gkd")).toEqual({ loss: "gkd", param: 0.5 });
    const bad = { kind: "logprobs" as const, k: 1, ids: Int32Array.from([9, 1]), logprobs: Float32Array.from([-0.1, -0.1]) };
    await expect(kdLoss(z, 2, 5, bad, null, { loss: "fkl" })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/teacher id 9/) });
    await expect(kdLoss(z, 2, 5, null, null, { loss: "ce" })).rejects.toMatchObject({ code: "E_SHAPE" });
  });
});
