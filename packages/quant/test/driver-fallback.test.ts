/**
 * `fallback: "f16" | "bf16" | "f32"`: linears whose rows no block of the scheme fits stay in float
 * (ref-small's down_proj: rows of 688 = 16·43 fit neither a 256-element K-quant block nor a 32-element
 * one), in the HF output as plain tensors of that dtype and in the GGUF as F16 / BF16 / F32 tensors.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { isTersorError, openGguf, openSafetensorsDir } from "@tersor/core";
import { corpus } from "@tersor/corpora";
import { type Model, loadModel } from "@tersor/model";
import { afterAll, describe, expect, it } from "vitest";

import { exportGguf, quantizeModel, type QuantizeModelReport } from "../src/index.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const REF_SMALL = resolve(HERE, "../../models/ref-small");
const root = mkdtempSync(join(tmpdir(), "tersor-quant-fallback-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const LAYERS = 8;
const downNames = Array.from({ length: LAYERS }, (_, l) => `model.layers.${l}.mlp.down_proj`);

async function text(split: "train" | "test", chars: number): Promise<string> {
  let s = "";
  for await (const d of corpus("sotu").docs({ split })) {
    s += d.text;
    if (s.length >= chars) break;
  }
  return s.slice(0, chars);
}

async function run(out: string, options: Parameters<typeof quantizeModel>[4]): Promise<QuantizeModelReport> {
  const m = await loadModel(REF_SMALL, { progress: "silent" });
  const ids = m.encode(await text("train", 2000));
  const seqs = [ids.slice(0, 64), ids.slice(64, 128)];
  return await quantizeModel(m, REF_SMALL, seqs, out, { progress: "silent", ...options });
}

/** Bits per byte of `model` on `ids` (windows of the model's maximum length; the first token of each is context only). */
async function bitsPerByte(model: Model, ids: number[], bytes: number): Promise<number> {
  const W = model.maxLength;
  const V = model.vocabSize;
  let nats = 0;
  for (let s = 0; s + 1 < ids.length; s += W - 1) {
    const win = ids.slice(s, s + W);
    const lg = (await model.forward(win)).data as Float32Array;
    for (let t = 0; t + 1 < win.length; t++) {
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, lg[t * V + v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(lg[t * V + v]! - m);
      nats += m + Math.log(z) - lg[t * V + win[t + 1]!]!;
    }
  }
  return nats / Math.LN2 / bytes;
}

/** The source weight rounded to `dtype` by Tensor.to (the definition of keeping it in that float type). */
async function rounded(name: string, dtype: "f16" | "bf16"): Promise<Float32Array> {
  const src = await openSafetensorsDir(REF_SMALL);
  try {
    return (await src.read(`${name}.weight`)).to("f32").to(dtype).to("f32").data as Float32Array;
  } finally {
    await src.close();
  }
}

describe("quantizeModel: float fallback (f16 / bf16 / f32) for linears no block fits", () => {
  it("q4_k with fallback f16 on ref-small: the HF dir and its GGUF load, down_proj is f16 in both, and bits per byte stay within 1% of the float model", async () => {
    const out = join(root, "q4k-f16");
    const r = await run(out, { scheme: "q4_k", method: "rtn", fallback: "f16" });
    // The report: down_proj at 16 bits, every other linear q4_k (4.5 bits); the total is the weighted mean.
    expect(r.linears).toHaveLength(7 * LAYERS);
    let bits = 0;
    let weights = 0;
    for (const x of r.linears) {
      const down = x.name.endsWith("mlp.down_proj");
      expect(x.scheme, x.name).toBe(down ? "f16" : "q4_k");
      expect(x.bitsPerWeight, x.name).toBe(down ? 16 : 4.5);
      if (down) expect(x.adapterRank).toBe(0);
      bits += x.bitsPerWeight * x.rows * x.cols;
      weights += x.rows * x.cols;
    }
    expect(r.bitsPerWeight).toBeCloseTo(bits / weights, 10);
    // config.json: down_proj listed as not converted (not as a quantized module).
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(cfg.quantization_config.scheme).toBe("q4_k");
    expect(cfg.quantization_config.modules_to_not_convert).toEqual(downNames);
    expect(cfg.quantization_config.modules).toBeUndefined();
    // The safetensors: down_proj.weight F16 = the source rounded to f16, no qweight for it.
    const st = await openSafetensorsDir(out);
    try {
      for (const n of downNames) {
        expect(st.get(`${n}.qweight`)).toBeUndefined();
        expect(st.get(`${n}.weight`)!.dtype).toBe("F16");
      }
      expect(st.get("model.layers.0.mlp.up_proj.qweight")!.dtype).toBe("U8");
      const got = (await st.read(`${downNames[3]}.weight`)).to("f32").data as Float32Array;
      expect(got).toEqual(await rounded(downNames[3]!, "f16"));
    } finally {
      await st.close();
    }
    // GGUF of the directory: ffn_down F16, the other linears Q4_K.
    const gguf = join(root, "q4k-f16.gguf");
    const ex = await exportGguf(out, gguf, { progress: "silent" });
    expect(ex.tensors.find((t) => t.name === "blk.5.ffn_down.weight")!.type).toBe("f16");
    const g = await openGguf(gguf);
    try {
      for (let l = 0; l < LAYERS; l++) {
        expect(g.get(`blk.${l}.ffn_down.weight`)!.dtype).toBe("f16");
        expect(g.get(`blk.${l}.ffn_up.weight`)!.dtype).toBe("q4_k");
        expect(g.get(`blk.${l}.attn_q.weight`)!.dtype).toBe("q4_k");
      }
    } finally {
      await g.close();
    }
    // A directory claiming a quantized linear as not converted is refused.
    const bad = join(root, "q4k-f16-bad");
    cpSync(out, bad, { recursive: true });
    const badCfg = { ...cfg, quantization_config: { ...cfg.quantization_config, modules_to_not_convert: [...downNames, "model.layers.0.self_attn.q_proj"] } };
    writeFileSync(join(bad, "config.json"), JSON.stringify(badCfg));
    const e = await exportGguf(bad, join(root, "bad.gguf"), { progress: "silent" }).catch((x: unknown) => x);
    expect(isTersorError(e) && e.code === "E_FORMAT" && e.message.includes("modules_to_not_convert"), String(e)).toBe(true);
    // Both load and score within 1% of the float model.
    const testText = await text("test", 6000);
    const float = await loadModel(REF_SMALL, { progress: "silent" });
    const ids = float.encode(testText);
    const bytes = Buffer.byteLength(float.decode(ids.slice(1), { skipSpecialTokens: true }));
    const b0 = await bitsPerByte(float, ids, bytes);
    const bHf = await bitsPerByte(await loadModel(out, { progress: "silent" }), ids, bytes);
    const bGguf = await bitsPerByte(await loadModel(gguf, { progress: "silent" }), ids, bytes);
    expect(Math.abs(bHf - b0) / b0).toBeLessThan(0.01);
    expect(Math.abs(bGguf - b0) / b0).toBeLessThan(0.01);
    // The HF dir and the GGUF hold the same weights (permuted rope rows aside): the same function.
    expect(Math.abs(bGguf - bHf) / bHf).toBeLessThan(1e-3);
  }, 120_000);

  it("gptq with fallback f16 skips calibration for the float linears: down_proj is exactly the source in f16", async () => {
    const out = join(root, "gptq-f16");
    const r = await run(out, { scheme: "q4_k", method: "gptq", fallback: "f16" });
    for (const x of r.linears.filter((y) => y.name.endsWith("down_proj"))) {
      expect(x.scheme).toBe("f16");
      // No quantizer ran: its error is the f16 rounding's, the same as the "RTN" baseline's.
      expect(x.outputError).toBe(x.rtnOutputError);
      expect(x.weightMse).toBeLessThan(1e-9);
    }
    // GPTQ did run on the others (lower calibration output error than RTN on most of them).
    const q = r.linears.filter((y) => y.scheme === "q4_k");
    expect(q.filter((x) => x.outputError < x.rtnOutputError).length).toBeGreaterThan(q.length / 2);
    const st = await openSafetensorsDir(out);
    try {
      for (const n of [downNames[0]!, downNames[7]!]) expect((await st.read(`${n}.weight`)).to("f32").data).toEqual(await rounded(n, "f16"));
    } finally {
      await st.close();
    }
  }, 120_000);

  it("awq with fallback bf16: down_proj gets no scale (nor up_proj its row scale) and is the source in bf16; f32 keeps it exactly", async () => {
    const out = join(root, "awq-bf16");
    const r = await run(out, { scheme: "q4_k", method: "awq", awqAlpha: 0.5, fallback: "bf16" });
    expect(r.linears.find((x) => x.name === downNames[2])!.bitsPerWeight).toBe(16);
    const st = await openSafetensorsDir(out);
    try {
      expect(st.get(`${downNames[2]}.weight`)!.dtype).toBe("BF16");
      expect((await st.read(`${downNames[2]}.weight`)).to("f32").data).toEqual(await rounded(downNames[2]!, "bf16"));
    } finally {
      await st.close();
    }
    const out32 = join(root, "rtn-f32");
    const r32 = await run(out32, { scheme: "q8_0", method: "rtn", fallback: "f32" });
    expect(r32.linears.find((x) => x.name === downNames[0])!).toMatchObject({ scheme: "f32", bitsPerWeight: 32, weightMse: 0, outputError: 0 });
    const st32 = await openSafetensorsDir(out32);
    const src = await openSafetensorsDir(REF_SMALL);
    try {
      expect(st32.get(`${downNames[0]}.weight`)!.dtype).toBe("F32");
      expect((await st32.read(`${downNames[0]}.weight`)).data).toEqual((await src.read(`${downNames[0]}.weight`)).to("f32").data);
    } finally {
      await st32.close();
      await src.close();
    }
  }, 120_000);

  it("impossible combinations keep clear errors: a float type as the scheme, a block fallback that fits no better", async () => {
    const cases: [Parameters<typeof quantizeModel>[4], string, string][] = [
      [{ scheme: "f16", method: "rtn" }, "E_RANGE", "float type"],
      [{ scheme: "q4_k", method: "rtn", fallback: "q4_0" }, "E_SHAPE", "688"],
      [{ scheme: "q4_k", method: "rtn" }, "E_SHAPE", "fallback"],
    ];
    for (const [opts, code, msg] of cases) {
      const err = await run(join(root, `bad-${code}-${msg}`), opts).catch((e: unknown) => e);
      expect(isTersorError(err), String(err)).toBe(true);
      expect((err as { code: string }).code).toBe(code);
      expect(String((err as Error).message)).toContain(msg);
    }
  }, 60_000);
});
