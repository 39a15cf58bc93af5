/** Loading: config mapping, checkpoint errors, name prefixes, GGUF llama files, name resolvers. */
import { readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { GgufMetadata, Tensor, TersorError, writeGguf } from "@tersor/core";
import { afterAll, describe, expect, it } from "vitest";

import { SUPPORTED_MODEL_TYPES, loadModel, parseHfConfig, registerModelResolver } from "../src/index.js";
import { writeModelDir } from "./fixtures.js";
import { CONFIGS, QWEN3_DIR, editConfig, relError, runtimeOpts, tempDir, tokenSeq, writeArch } from "./helpers.js";
import { type LlamaLikeConfig, type Weights, randomWeights, referenceForward } from "./reference.js";

const tmp = tempDir("load");
afterAll(() => tmp.cleanup());

async function loadError(p: Promise<unknown>): Promise<TersorError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    return e as TersorError;
  }
  throw new Error("expected a TersorError");
}

describe("config.json mapping", () => {
  it("maps Llama: GQA, head_dim default, llama3 rope scaling, untied", () => {
    const t = parseHfConfig({ ...CONFIGS["llama"] }).transformer;
    expect(t).toMatchObject({ norm: "rmsnorm", normEps: 1e-5, vocabSize: 320, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 8 });
    expect(t).toMatchObject({ activation: "silu", gatedMlp: true, qkvBias: false, outBias: false, tieEmbeddings: false, learnedPositions: false, maxPositions: 128, slidingWindow: 0 });
    expect(t.rope).toEqual({ theta: 10000, style: "neox", rotaryDim: 8, scaling: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 16 });
  });

  it("accepts the legacy rope_scaling `type` key, attention_bias, explicit head_dim", () => {
    const spec = parseHfConfig({ ...CONFIGS["llama-linear"], rope_scaling: { type: "linear", factor: 2.5 } });
    expect(spec.transformer.rope).toMatchObject({ scaling: "linear", factor: 2.5, theta: 500 });
    expect(spec.transformer).toMatchObject({ headDim: 16, qkvBias: true, tieEmbeddings: true });
  });

  it("maps Mistral's sliding window, Qwen2's biases, GPT-2's layout", () => {
    expect(parseHfConfig(CONFIGS["mistral"]).transformer.slidingWindow).toBe(4);
    const q = parseHfConfig({ ...CONFIGS["qwen2"], sliding_window: 32, use_sliding_window: false }).transformer;
    expect(q).toMatchObject({ qkvBias: true, tieEmbeddings: true, slidingWindow: 0 });
    expect(q.rope!.theta).toBe(1000000);
    expect(parseHfConfig({ ...CONFIGS["qwen2"], sliding_window: 32, use_sliding_window: true, max_window_layers: 0 }).transformer.slidingWindow).toBe(32);
    const g = parseHfConfig({ architectures: ["GPT2LMHeadModel"], ...CONFIGS["gpt2"], activation_function: "gelu_new", bos_token_id: 50256, eos_token_id: 50256 });
    expect(g.transformer).toEqual({
      norm: "layernorm",
      normEps: 1e-5,
      vocabSize: 300,
      hidden: 32,
      intermediate: 128,
      layers: 2,
      heads: 4,
      kvHeads: 4,
      headDim: 8,
      activation: "gelu_tanh",
      gatedMlp: false,
      qkvBias: true,
      outBias: true,
      tieEmbeddings: true,
      learnedPositions: true,
      maxPositions: 64,
      slidingWindow: 0,
    });
    expect(g).toMatchObject({ architecture: "gpt2", bosTokenId: 50256, eosTokenIds: [50256] });
  });

  it("infers the model type from `architectures` and reads transformers-5 rope_parameters", () => {
    const { model_type: _, ...rest } = CONFIGS["qwen2"] as LlamaLikeConfig;
    const { rope_theta: __, ...noTheta } = rest;
    const spec = parseHfConfig({ ...noTheta, architectures: ["Qwen2ForCausalLM"], rope_parameters: { rope_type: "default", rope_theta: 5000 } });
    expect(spec.architecture).toBe("qwen2");
    expect(spec.transformer.rope!.theta).toBe(5000);
  });

  it("rejects unsupported architectures and fields with E_FORMAT naming them", () => {
    const bad = (json: object) => {
      try {
        parseHfConfig(json, "x/config.json");
      } catch (e) {
        expect(e).toBeInstanceOf(TersorError);
        expect((e as TersorError).code).toBe("E_FORMAT");
        return (e as TersorError).message;
      }
      throw new Error("no error");
    };
    const m = bad({ model_type: "bert", architectures: ["BertModel"], hidden_size: 8 });
    expect(m).toContain('"bert"');
    expect(m).toContain(SUPPORTED_MODEL_TYPES.join(", "));
    expect(bad({ architectures: ["T5ForConditionalGeneration"] })).toContain("T5ForConditionalGeneration");
    expect(bad({ ...CONFIGS["llama"], rope_scaling: { rope_type: "yarn", factor: 4 } })).toContain('"yarn"');
    expect(bad({ ...CONFIGS["llama"], rope_scaling: { rope_type: "llama3", factor: 4 } })).toContain("low_freq_factor");
    expect(bad({ ...CONFIGS["llama"], hidden_size: "32" })).toContain("hidden_size");
    expect(bad({ ...CONFIGS["llama"], num_key_value_heads: 3 })).toContain("num_key_value_heads");
    expect(bad({ ...CONFIGS["llama"], hidden_act: "relu2" })).toContain("relu2");
    expect(bad({ ...CONFIGS["gpt2"], activation_function: "relu" })).toContain("relu");
  });
});

describe("loading errors", () => {
  it("config.json naming an unsupported architecture → E_FORMAT", async () => {
    const dir = join(tmp.dir, "bert");
    writeArch(dir, "qwen2");
    editConfig(dir, (c) => {
      c["model_type"] = "bert";
      c["architectures"] = ["BertForMaskedLM"];
    });
    const e = await loadError(loadModel(dir, runtimeOpts()));
    expect(e.code).toBe("E_FORMAT");
    expect(e.message).toMatch(/model_type "bert".*not supported.*llama, mistral, qwen2, gpt2/);
  });

  it("a missing tensor → E_FORMAT naming it", async () => {
    const dir = join(tmp.dir, "missing");
    writeArch(dir, "llama", { omit: ["model.layers.1.mlp.down_proj.weight"] });
    const e = await loadError(loadModel(dir, runtimeOpts()));
    expect(e.code).toBe("E_FORMAT");
    expect(e.message).toContain('missing tensor "model.layers.1.mlp.down_proj.weight"');
  });

  it("an untied model without lm_head → E_FORMAT", async () => {
    const dir = join(tmp.dir, "nohead");
    writeArch(dir, "mistral", { omit: ["lm_head.weight"] });
    const e = await loadError(loadModel(dir, runtimeOpts()));
    expect(e.code).toBe("E_FORMAT");
    expect(e.message).toContain('"lm_head.weight"');
  });

  it("a shape mismatch → E_SHAPE naming the tensor and both shapes", async () => {
    const dir = join(tmp.dir, "shape");
    const cfg = CONFIGS["qwen2"]!;
    const w = randomWeights(cfg, 3);
    w.set("model.layers.0.self_attn.k_proj.weight", { shape: [17, 32], data: new Float64Array(17 * 32) });
    writeModelDir(dir, cfg, w);
    const e = await loadError(loadModel(dir, runtimeOpts()));
    expect(e.code).toBe("E_SHAPE");
    expect(e.message).toContain('"model.layers.0.self_attn.k_proj.weight"');
    expect(e.message).toContain("[17, 32]");
    expect(e.message).toContain("[16, 32]");
  });

  it("a truncated safetensors file → E_FORMAT", async () => {
    const dir = join(tmp.dir, "truncated");
    writeArch(dir, "gpt2");
    const f = join(dir, "model.safetensors");
    truncateSync(f, statSync(f).size - 100);
    const e = await loadError(loadModel(dir, runtimeOpts()));
    expect(e.code).toBe("E_FORMAT");
    expect(e.message).toMatch(/truncated/);
  });

  it("a directory without config.json, a file that is no model, a name nobody resolves", async () => {
    const e1 = await loadError(loadModel(tmp.dir, runtimeOpts()));
    expect(e1.code).toBe("E_FORMAT");
    expect(e1.message).toContain("config.json");
    const f = join(tmp.dir, "notes.txt");
    writeFileSync(f, "hello");
    expect((await loadError(loadModel(f, runtimeOpts()))).code).toBe("E_FORMAT");
    const e3 = await loadError(loadModel("no-such-model-anywhere", runtimeOpts()));
    expect(e3.code).toBe("E_IO");
    expect(e3.message).toContain("no-such-model-anywhere");
  });
});

describe("checkpoint variants", () => {
  it("unexpected tensors become warnings; names without the model. prefix load", async () => {
    const cfg = CONFIGS["llama"]!;
    const w = randomWeights(cfg, 5);
    const bare: Weights = new Map([...w].map(([k, v]) => [k.replace(/^model\./, ""), v]));
    bare.set("score.weight", { shape: [2, 32], data: new Float64Array(64) });
    const dir = join(tmp.dir, "bare");
    const stored = writeModelDir(dir, cfg, bare);
    const model = await loadModel(dir, runtimeOpts());
    expect(model.warnings).toHaveLength(1);
    expect(model.warnings[0]).toContain('unexpected tensor "score.weight"');
    const tokens = tokenSeq(6, 320);
    const withPrefix: Weights = new Map([...stored].map(([k, v]) => [k === "lm_head.weight" ? k : `model.${k}`, v]));
    expect(relError((await model.forward(tokens)).data, referenceForward(cfg, withPrefix, tokens))).toBeLessThan(1e-4);
  });

  it("GPT-2 checkpoints with transformer.h.N.attn.bias buffers and a stored lm_head load without warnings", async () => {
    const cfg = CONFIGS["gpt2"]!;
    const w = randomWeights(cfg, 5);
    w.set("transformer.h.0.attn.bias", { shape: [1, 1, 4, 4], data: new Float64Array(16).fill(1) });
    w.set("lm_head.weight", w.get("transformer.wte.weight")!);
    const dir = join(tmp.dir, "gpt2-buffers");
    const stored = writeModelDir(dir, cfg, w);
    const model = await loadModel(dir, runtimeOpts());
    expect(model.warnings).toEqual([]);
    const tokens = tokenSeq(6, 300);
    expect(relError((await model.forward(tokens)).data, referenceForward(cfg, stored, tokens))).toBeLessThan(1e-4);
  });

  it("loads the tokenizer named by the tokenizer option", async () => {
    const dir = join(tmp.dir, "tok-option");
    writeArch(dir, "qwen2");
    const model = await loadModel(dir, { ...runtimeOpts(), tokenizer: QWEN3_DIR });
    expect(model.tokenizer.kind).toBe("huggingface");
    expect(model.encode("Hello world")).toEqual([9707, 1879]);
    expect(model.warnings.some((w) => w.includes("151669 tokens"))).toBe(true);
  });
});

/** llama.cpp's convert_hf_to_gguf permutation of Q/K rows: per head, (half, pair) → (pair, half). */
function permuteRows(data: ArrayLike<number>, heads: number, rows: number, cols: number): Float64Array {
  const d = rows / heads;
  const out = new Float64Array(rows * cols);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < d / 2; j++)
      for (let r = 0; r < 2; r++) {
        const src = h * d + r * (d / 2) + j;
        const dst = h * d + 2 * j + r;
        for (let c = 0; c < cols; c++) out[dst * cols + c] = data[src * cols + c]!;
      }
  return out;
}

async function writeLlamaGguf(path: string, cfg: LlamaLikeConfig, w: Weights, dtype: "f32" | "f16"): Promise<Weights> {
  const C = cfg.hidden_size;
  const d = C / cfg.num_attention_heads;
  const stored: Weights = new Map();
  const tensors: [string, Tensor][] = [];
  const put = (gguf: string, hf: string, permuteHeads?: number) => {
    const src = w.get(hf)!;
    const [rows, cols] = src.shape.length === 2 ? (src.shape as [number, number]) : [src.shape[0]!, 1];
    const vals = permuteHeads ? permuteRows(src.data, permuteHeads, rows, cols) : Float64Array.from(src.data);
    const t = Tensor.f32(vals, src.shape).to(dtype);
    tensors.push([gguf, t]);
    // The reference gets the values as stored, in Hugging Face's (unpermuted) row order.
    stored.set(hf, { shape: src.shape, data: Float64Array.from(Tensor.f32(Float64Array.from(src.data), src.shape).to(dtype).toFloat32Array()) });
  };
  put("token_embd.weight", "model.embed_tokens.weight");
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    put(`blk.${l}.attn_norm.weight`, p + "input_layernorm.weight");
    put(`blk.${l}.attn_q.weight`, p + "self_attn.q_proj.weight", cfg.num_attention_heads);
    put(`blk.${l}.attn_k.weight`, p + "self_attn.k_proj.weight", cfg.num_key_value_heads);
    put(`blk.${l}.attn_v.weight`, p + "self_attn.v_proj.weight");
    put(`blk.${l}.attn_output.weight`, p + "self_attn.o_proj.weight");
    put(`blk.${l}.ffn_norm.weight`, p + "post_attention_layernorm.weight");
    put(`blk.${l}.ffn_gate.weight`, p + "mlp.gate_proj.weight");
    put(`blk.${l}.ffn_up.weight`, p + "mlp.up_proj.weight");
    put(`blk.${l}.ffn_down.weight`, p + "mlp.down_proj.weight");
  }
  put("output_norm.weight", "model.norm.weight");
  if (!cfg.tie_word_embeddings) put("output.weight", "lm_head.weight");
  const md = new GgufMetadata()
    .set("general.architecture", "string", "llama")
    .set("llama.context_length", "u32", cfg.max_position_embeddings)
    .set("llama.embedding_length", "u32", C)
    .set("llama.block_count", "u32", cfg.num_hidden_layers)
    .set("llama.feed_forward_length", "u32", cfg.intermediate_size)
    .set("llama.attention.head_count", "u32", cfg.num_attention_heads)
    .set("llama.attention.head_count_kv", "u32", cfg.num_key_value_heads)
    .set("llama.attention.layer_norm_rms_epsilon", "f32", cfg.rms_norm_eps)
    .set("llama.rope.freq_base", "f32", cfg.rope_theta)
    .set("llama.rope.dimension_count", "u32", d)
    .set("tokenizer.ggml.bos_token_id", "u32", 1)
    .set("tokenizer.ggml.eos_token_id", "u32", 2);
  await writeGguf(path, { metadata: md, tensors });
  return stored;
}

describe("GGUF (llama architecture)", () => {
  const cfg: LlamaLikeConfig = { ...(CONFIGS["llama"] as LlamaLikeConfig), rope_scaling: null, rope_theta: 1000 };

  it.each(["f32", "f16"] as const)("%s tensors with llama.cpp's Q/K permutation run with interleaved RoPE and match the reference", async (dtype) => {
    const path = join(tmp.dir, `tiny-${dtype}.gguf`);
    const stored = await writeLlamaGguf(path, cfg, randomWeights(cfg, 21), dtype);
    const model = await loadModel(path, runtimeOpts());
    expect(model.source.format).toBe("gguf");
    expect(model.config.rope).toMatchObject({ style: "interleaved", theta: 1000, scaling: "none" });
    expect(model.config).toMatchObject({ heads: 4, kvHeads: 2, headDim: 8, layers: 2, intermediate: 48, maxPositions: 128, tieEmbeddings: false });
    expect(model.tokenizer.kind).toBe("byte");
    expect([model.eosTokenIds, model.prefixToken]).toEqual([[257], 256]); // not the GGUF's own ids 2 and 1
    expect(model.warnings.some((w) => w.includes("byte-level tokenizer"))).toBe(true);
    const tokens = tokenSeq(10, 320);
    const eps32 = Math.fround(cfg.rms_norm_eps);
    expect(relError((await model.forward(tokens)).data, referenceForward({ ...cfg, rms_norm_eps: eps32 }, stored, tokens))).toBeLessThan(1e-4);
  });

  it("rejects other GGUF architectures and quantized tensors", async () => {
    const other = join(tmp.dir, "other.gguf");
    await writeGguf(other, { metadata: { "general.architecture": "falcon" }, tensors: [] });
    const e = await loadError(loadModel(other, runtimeOpts()));
    expect(e.code).toBe("E_FORMAT");
    expect(e.message).toContain('"falcon"');

    const q = join(tmp.dir, "quant.gguf");
    const src = join(tmp.dir, "tiny-f32.gguf");
    expect(readFileSync(src).subarray(0, 4).toString()).toBe("GGUF");
    // ggml block types other than Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q2_K..Q6_K/MXFP4/NVFP4 are refused by name
    const tiny: LlamaLikeConfig = { ...cfg, hidden_size: 256, vocab_size: 8 };
    const md = {
      "general.architecture": "llama",
      "llama.context_length": 16,
      "llama.embedding_length": 256,
      "llama.block_count": 1,
      "llama.feed_forward_length": 32,
      "llama.attention.head_count": 4,
    };
    await writeGguf(q, { metadata: md, tensors: [["token_embd.weight", Tensor.fromBytes("iq2_xxs", [tiny.vocab_size, 256], new Uint8Array(8 * 66))]] });
    const e2 = await loadError(loadModel(q, runtimeOpts()));
    expect(e2.code).toBe("E_DTYPE");
    expect(e2.message).toContain("iq2_xxs");
  });
});

describe("model name resolvers", () => {
  it("resolves a bare name through a registered resolver", async () => {
    const dir = join(tmp.dir, "resolved");
    writeArch(dir, "gpt2");
    const unregister = registerModelResolver("test-catalogue", (name) => (name === "tiny-gpt2" ? dir : undefined));
    try {
      const model = await loadModel("tiny-gpt2", runtimeOpts());
      expect(model.source.path).toBe(dir);
      const e = await loadError(loadModel("tiny-unknown", runtimeOpts()));
      expect(e.code).toBe("E_IO");
      expect(e.message).toContain("test-catalogue");
    } finally {
      unregister();
    }
  });
});
