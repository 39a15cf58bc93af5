/**
 * Checkpoint I/O: a checkpoint written from a trainable model's flat parameters loads back with
 * loadModel (Hugging Face names, GPT-2's fused and transposed Conv1D layout, tied heads left out)
 * and gives exactly the logits of the runtime fed the same canonical weights; the tokenizer.json
 * loads as the byte-level tokenizer, and through @huggingface/tokenizers too.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng, openSafetensors } from "@tersor/core";
import { type NativeTrainable, type TrainableParameter, type TransformerConfig, native } from "@tersor/native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  HfTokenizer,
  type TrainArchitecture,
  type TrainerState,
  hfConfigJson,
  isByteLevelTokenizerJson,
  loadModel,
  loadOptimizer,
  loadParams,
  readTrainerState,
  transformerConfigOf,
  writeCheckpoint,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-train-ckpt-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Shapes of the canonical weights (packages/native/src/binding/transformer.ts). */
function shapeOf(name: string, c: TransformerConfig): number[] {
  const C = c.hidden;
  if (name === "embed" || name === "lmHead") return [c.vocabSize, C];
  if (name === "posEmbed") return [c.maxPositions, C];
  if (name.startsWith("finalNorm")) return [C];
  const part = name.split(".")[2]!;
  const kind = name.split(".")[3]!;
  const out: Record<string, number> = { attnNorm: C, mlpNorm: C, q: c.heads * c.headDim, k: c.kvHeads * c.headDim, v: c.kvHeads * c.headDim, o: C, gate: c.intermediate, up: c.intermediate, down: C };
  const inp: Record<string, number> = { q: C, k: C, v: C, o: c.heads * c.headDim, gate: C, up: C, down: c.intermediate };
  if (kind === "bias" || part === "attnNorm" || part === "mlpNorm") return [out[part]!];
  return [out[part]!, inp[part]!];
}

/** A stand-in for the native trainable: flat buffers laid out in the runtime's weight order. */
function fakeTrainable(c: TransformerConfig, seed: number): NativeTrainable {
  const names = native().createTransformer(c).missingWeights();
  let off = 0;
  const params: TrainableParameter[] = names.map((name) => {
    const shape = shapeOf(name, c);
    const size = shape.reduce((a, b) => a * b, 1);
    const p = { name, shape, offset: off, size, decay: shape.length === 2 && name !== "embed" };
    off += size;
    return p;
  });
  const rng = new Rng(seed);
  const values = rng.fillNormal(new Float32Array(off), 0, 0.3);
  for (const p of params) if (/Norm\.weight$/.test(p.name)) for (let i = 0; i < p.size; i++) values[p.offset + i] = 1 + 0.1 * values[p.offset + i]!;
  const m = rng.fillNormal(new Float32Array(off));
  const v = rng.fillNormal(new Float32Array(off)).map(Math.abs);
  const fail = () => {
    throw new Error("not part of the stand-in");
  };
  return {
    parameterCount: off,
    parameters: () => params,
    params: () => values,
    grads: () => new Float32Array(off),
    adamState: () => ({ m, v }),
    zeroGrad: () => {},
    step: fail,
    evaluate: fail,
    forwardLogits: fail,
    backwardLogits: fail,
    adamw: fail,
  };
}

const state: TrainerState = {
  format: "tersor-trainer-state",
  version: 1,
  step: 3,
  tokensSeen: 96,
  seed: 1,
  loader: { draws: 3, cursors: {}, fingerprint: {} },
  hyper: {},
  log: { steps: [], evals: [] },
};

const cases: Array<[string, TrainArchitecture, Record<string, unknown>]> = [
  ["llama with GQA, untied", "llama", { dim: 32, layers: 2, heads: 4, kvHeads: 2, contextLength: 16 }],
  ["llama tied", "llama", { dim: 32, layers: 1, heads: 2, contextLength: 16, tieEmbeddings: true }],
  ["qwen2 (q/k/v biases)", "qwen2", { dim: 32, layers: 1, heads: 4, kvHeads: 1, contextLength: 16 }],
  ["gpt2 (fused c_attn, Conv1D)", "gpt2", { dim: 32, layers: 2, heads: 4, contextLength: 16 }],
];

describe("checkpoints", () => {
  it.each(cases)("%s: loadModel gives the logits of the same canonical weights", async (label, arch, shape) => {
    const config = transformerConfigOf({ arch, ...shape } as never);
    const fake = fakeTrainable(config, 17);
    const out = join(dir, label.replace(/\W+/g, "-"));
    await writeCheckpoint(out, { configJson: hfConfigJson(arch, config), arch, trainable: fake, state });
    expect((await readdir(out)).sort()).toEqual(["config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_state.json"]);

    const st = await openSafetensors(join(out, "model.safetensors"));
    const names = st.tensors.map((t) => t.name);
    await st.close();
    expect(names.includes("lm_head.weight")).toBe(!config.tieEmbeddings);
    if (arch === "gpt2") expect(names).toContain("transformer.h.1.attn.c_attn.weight");
    else expect(names).toContain("model.layers.0.self_attn.q_proj.weight");

    const model = await loadModel(out, { progress: "silent" });
    expect(model.architecture).toBe(arch);
    expect(model.tokenizer.kind).toBe("byte");
    expect(model.warnings).toEqual([]);
    const ref = native().createTransformer(config);
    for (const p of fake.parameters()) ref.setWeight(p.name, fake.params().slice(p.offset, p.offset + p.size), "f32", p.shape);
    const tokens = Int32Array.from([256, 72, 101, 108, 108, 111, 257, 1, 255]);
    const a = (await model.forward(Array.from(tokens))).toFloat32Array();
    const b = (await ref.forward(tokens)).logits!;
    expect(a.length).toBe(b.length);
    expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);

    // Parameters and AdamW moments read back bit for bit.
    const back = fakeTrainable(config, 99);
    await loadParams(out, arch, config, back);
    await loadOptimizer(out, back);
    expect(back.params()).toEqual(fake.params());
    expect(back.adamState().m).toEqual(fake.adamState().m);
    expect(back.adamState().v).toEqual(fake.adamState().v);
    expect((await readTrainerState(out))!.step).toBe(3);
  });

  it("writes the byte-level tokenizer.json that @huggingface/tokenizers loads with the same ids", async () => {
    const out = join(dir, "llama-with-GQA-untied");
    const json = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8"));
    expect(isByteLevelTokenizerJson(json)).toBe(true);
    const hf = new HfTokenizer(json, JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8")));
    const text = "Call me Ishmael. Ünïcödé ✓ \u0000\n";
    expect(hf.encode(text)).toEqual(Array.from(new TextEncoder().encode(text)));
    expect([hf.bosId, hf.eosId, hf.padId]).toEqual([256, 257, 258]);
    expect(hf.decode(hf.encode(text))).toBe(text);
    expect(isByteLevelTokenizerJson({ ...json, model: { ...json.model, merges: [["a", "b"]] } })).toBe(false);
  });

  it("replaces a checkpoint whole, keeps other files beside it, and never writes over a foreign folder", async () => {
    const config = transformerConfigOf({ arch: "llama", dim: 16, layers: 1, heads: 2, contextLength: 8 });
    const out = join(dir, "replace");
    await writeCheckpoint(out, { configJson: hfConfigJson("llama", config), arch: "llama", trainable: fakeTrainable(config, 1), state });
    await writeFile(join(out, "loss.svg"), "<svg/>");
    await writeCheckpoint(out, { configJson: hfConfigJson("llama", config), arch: "llama", trainable: fakeTrainable(config, 2), state: { ...state, step: 4 } });
    expect((await readTrainerState(out))!.step).toBe(4);
    expect(await readFile(join(out, "loss.svg"), "utf8")).toBe("<svg/>");
    expect((await readdir(dir)).filter((e) => e.startsWith(".replace"))).toEqual([]);

    const { checkOutDir } = await import("../src/train/checkpoint.js");
    const foreign = join(dir, "foreign");
    await mkdir(foreign);
    await writeFile(join(foreign, "notes.txt"), "mine");
    await expect(checkOutDir(foreign)).rejects.toThrow(/holds no checkpoint/);
    await expect(checkOutDir(out)).resolves.toBeUndefined();
  });
});
