/**
 * Native logits against the independent f64 reference forward, for every architecture, stored as
 * f32, f16, bf16 and in shards.
 */
import { afterAll, describe, expect, it } from "vitest";

import { loadModel } from "../src/index.js";
import type { FixtureDType } from "./fixtures.js";
import { ARCHES, editConfig, relError, runtimeOpts, tempDir, tokenSeq, writeArch } from "./helpers.js";
import { referenceForward } from "./reference.js";

const tmp = tempDir("forward");
afterAll(() => tmp.cleanup());

const CASES: { dtype: FixtureDType; shards: number }[] = [
  { dtype: "F32", shards: 1 },
  { dtype: "F16", shards: 1 },
  { dtype: "BF16", shards: 1 },
  { dtype: "F32", shards: 3 },
];

describe.each(ARCHES)("%s: logits match the reference forward", (arch) => {
  it.each(CASES)("$dtype, $shards shard(s)", async ({ dtype, shards }) => {
    const dir = `${tmp.dir}/${arch}-${dtype}-${shards}`;
    const { cfg, stored } = writeArch(dir, arch, { dtype, shards });
    if (arch === "llama-linear") editConfig(dir, (c) => ((c["rope_scaling"] as Record<string, unknown>)["type"] = "linear", delete (c["rope_scaling"] as Record<string, unknown>)["rope_type"]));
    const model = await loadModel(dir, runtimeOpts());
    expect(model.warnings).toEqual([]);
    expect(model.architecture).toBe(cfg.model_type);
    const tokens = tokenSeq(11, model.vocabSize, arch.length);
    const logits = await model.forward(tokens);
    expect(logits.shape).toEqual([tokens.length, model.vocabSize]);
    const ref = referenceForward(cfg, stored, tokens);
    expect(relError(logits.data, ref)).toBeLessThan(1e-4);
    // Parameter count: every stored tensor's elements (the fixtures store each weight once).
    let params = 0;
    for (const w of stored.values()) params += w.shape.reduce((a, b) => a * b, 1);
    expect(model.parameterCount).toBe(params);
  });
});

describe("weights are handed over in their stored precision unless a dtype is asked for", () => {
  it("an f32 checkpoint loaded with dtype bf16 equals the bf16-rounded checkpoint", async () => {
    const a = `${tmp.dir}/cast-f32`;
    const b = `${tmp.dir}/cast-bf16`;
    writeArch(a, "qwen2", { dtype: "F32" });
    writeArch(b, "qwen2", { dtype: "BF16" });
    const tokens = tokenSeq(6, 300);
    const la = await (await loadModel(a, { ...runtimeOpts(), dtype: "bf16" })).forward(tokens);
    const lb = await (await loadModel(b, runtimeOpts())).forward(tokens);
    expect(relError(la.data, lb.data)).toBeLessThan(1e-6);
  });
});
