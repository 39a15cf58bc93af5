import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng, Tensor, isTersorError, writeSafetensors } from "@tersor/core";
import { loadModel } from "@tersor/model";
import { afterAll, describe, expect, it } from "vitest";

import { dequantizeTensor, quantizeTensor, rowBytes } from "../src/index.js";

const root = mkdtempSync(join(tmpdir(), "tersor-quant-hf-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const C = 256;
const F = 512;
const V = 64;
const LAYERS = 2;
const config = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: V,
  hidden_size: C,
  intermediate_size: F,
  num_hidden_layers: LAYERS,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  max_position_embeddings: 64,
  torch_dtype: "float32",
};

function gaussian(n: number, rng: Rng, scale: number, shift = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = shift + scale * rng.nextNormal();
  return x;
}

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe("Hugging Face directory with tersor-quantized safetensors", () => {
  it("loads <name>.qweight (+ lora_a/lora_b) under quantization_config and matches the dequantized float model", async () => {
    const rng = new Rng(5);
    const q: [string, Tensor][] = [];
    const f: [string, Tensor][] = [];
    const modules: Record<string, { scheme: string }> = {};
    const plain = (name: string, shape: number[], v: Float32Array) => {
      q.push([name, new Tensor("f32", shape, v)]);
      f.push([name, new Tensor("f32", shape, v)]);
    };
    let li = 0;
    const linear = async (stem: string, rows: number, cols: number) => {
      const scheme = ["q4_k", "int4-g128", "nf4", "q6_k"][li % 4]!;
      if (scheme !== "q4_k") modules[stem] = { scheme };
      const w = gaussian(rows * cols, rng, 1 / Math.sqrt(cols));
      const bytes = await quantizeTensor(w, rows, cols, scheme);
      q.push([stem + ".qweight", Tensor.fromBytes("u8", [rows, rowBytes(scheme, cols)], bytes)]);
      const deq = await dequantizeTensor(bytes, rows, cols, scheme);
      if (li % 3 === 0) {
        const rank = 3;
        const a = gaussian(rank * cols, rng, 0.05);
        const b = gaussian(rows * rank, rng, 0.05);
        q.push([stem + ".lora_a", new Tensor("f32", [rank, cols], a)]);
        q.push([stem + ".lora_b", new Tensor("f32", [rows, rank], b)]);
        for (let o = 0; o < rows; o++)
          for (let i = 0; i < cols; i++) {
            let t = deq[o * cols + i]!;
            for (let k = 0; k < rank; k++) t += b[o * rank + k]! * a[k * cols + i]!;
            deq[o * cols + i] = t;
          }
      }
      f.push([stem + ".weight", new Tensor("f32", [rows, cols], deq)]);
      li++;
    };
    plain("model.embed_tokens.weight", [V, C], gaussian(V * C, rng, 0.7));
    for (let l = 0; l < LAYERS; l++) {
      const p = `model.layers.${l}.`;
      plain(p + "input_layernorm.weight", [C], gaussian(C, rng, 0.1, 1));
      await linear(p + "self_attn.q_proj", C, C);
      await linear(p + "self_attn.k_proj", C / 2, C);
      await linear(p + "self_attn.v_proj", C / 2, C);
      await linear(p + "self_attn.o_proj", C, C);
      plain(p + "post_attention_layernorm.weight", [C], gaussian(C, rng, 0.1, 1));
      await linear(p + "mlp.gate_proj", F, C);
      await linear(p + "mlp.up_proj", F, C);
      await linear(p + "mlp.down_proj", C, F);
    }
    plain("model.norm.weight", [C], gaussian(C, rng, 0.1, 1));
    await linear("lm_head", V, C);

    const qdir = join(root, "quant");
    const fdir = join(root, "float");
    mkdirSync(qdir);
    mkdirSync(fdir);
    const qcfg = { ...config, quantization_config: { quant_method: "tersor", format_version: 1, scheme: "q4_k", modules } };
    writeFileSync(join(qdir, "config.json"), JSON.stringify(qcfg));
    writeFileSync(join(fdir, "config.json"), JSON.stringify(config));
    await writeSafetensors(join(qdir, "model.safetensors"), q);
    await writeSafetensors(join(fdir, "model.safetensors"), f);

    const qm = await loadModel(qdir);
    const fm = await loadModel(fdir);
    expect(qm.warnings.filter((w) => w.includes("unexpected"))).toEqual([]);
    const tokens = [3, 17, 49, 0, 22, 7, 31, 11, 5];
    expect(relError((await qm.forward(tokens)).data, (await fm.forward(tokens)).data)).toBeLessThanOrEqual(1e-4);

    // a wrong row size for the declared scheme is named
    const bad = join(root, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "config.json"), JSON.stringify({ ...qcfg, quantization_config: { ...qcfg.quantization_config, scheme: "q8_0", modules: {} } }));
    await writeSafetensors(join(bad, "model.safetensors"), q);
    try {
      await loadModel(bad);
      throw new Error("loaded");
    } catch (e) {
      expect(isTersorError(e)).toBe(true);
      expect((e as { code: string }).code).toBe("E_SHAPE");
    }
  });
});
