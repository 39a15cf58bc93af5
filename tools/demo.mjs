#!/usr/bin/env node
// `npm run demo`: tersor's main job on the bundled default data, end to end, as far as the project
// has grown. Today: build a small Llama-shaped model on the fly, write it as a Hugging Face
// safetensors directory and as a GGUF file, inspect both with `tersor inspect`, and measure the
// linear-algebra kernels against OpenBLAS in the same run. Outputs go to out/demo/.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { Rng, Tensor, writeGguf, writeSafetensors } from "@tersor/core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "out", "demo");
const cli = join(root, "packages", "cli", "dist", "bin.js");

function section(title) {
  process.stdout.write(`\n=== ${title} ===\n`);
}

function tersor(args) {
  process.stdout.write(`$ tersor ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: "inherit", cwd: root });
  if (r.status !== 0) throw new Error(`tersor ${args.join(" ")} exited with ${r.status}`);
}

// A small Llama-architecture model: 4 layers, width 256, GQA 8 query / 2 key-value heads,
// byte-level vocabulary (256 bytes + BOS/EOS/PAD). Weights ~ N(0, 0.02²) from tersor's seeded RNG.
const config = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 259,
  hidden_size: 256,
  intermediate_size: 704,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 2048,
  tie_word_embeddings: true,
  torch_dtype: "float16",
};

function buildModel(seed) {
  const rng = new Rng(seed);
  const C = config.hidden_size;
  const F = config.intermediate_size;
  const d = C / config.num_attention_heads;
  const kv = config.num_key_value_heads * d;
  const tensors = [];
  const matrix = (name, rows, cols) => tensors.push([name, new Tensor("f32", [rows, cols], rng.fillNormal(new Float32Array(rows * cols), 0, 0.02)).to("f16")]);
  const norm = (name) => tensors.push([name, new Tensor("f32", [C], new Float32Array(C).fill(1))]);
  matrix("model.embed_tokens.weight", config.vocab_size, C);
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    norm(p + "input_layernorm.weight");
    matrix(p + "self_attn.q_proj.weight", C, C);
    matrix(p + "self_attn.k_proj.weight", kv, C);
    matrix(p + "self_attn.v_proj.weight", kv, C);
    matrix(p + "self_attn.o_proj.weight", C, C);
    norm(p + "post_attention_layernorm.weight");
    matrix(p + "mlp.gate_proj.weight", F, C);
    matrix(p + "mlp.up_proj.weight", F, C);
    matrix(p + "mlp.down_proj.weight", C, F);
  }
  norm("model.norm.weight");
  return tensors;
}

// GGUF names and metadata keys of llama.cpp's `llama` architecture.
function ggufName(hf) {
  return hf
    .replace("model.embed_tokens.weight", "token_embd.weight")
    .replace("model.norm.weight", "output_norm.weight")
    .replace(/^model\.layers\.(\d+)\./, "blk.$1.")
    .replace("input_layernorm", "attn_norm")
    .replace("self_attn.q_proj", "attn_q")
    .replace("self_attn.k_proj", "attn_k")
    .replace("self_attn.v_proj", "attn_v")
    .replace("self_attn.o_proj", "attn_output")
    .replace("post_attention_layernorm", "ffn_norm")
    .replace("mlp.gate_proj", "ffn_gate")
    .replace("mlp.up_proj", "ffn_up")
    .replace("mlp.down_proj", "ffn_down");
}

async function main() {
  mkdirSync(out, { recursive: true });
  section("1. A model, written as Hugging Face safetensors and as GGUF");
  const tensors = buildModel(2026);
  const params = tensors.reduce((a, [, t]) => a + t.numel, 0);
  const hfDir = join(out, "tiny-llama");
  mkdirSync(hfDir, { recursive: true });
  writeFileSync(join(hfDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  await writeSafetensors(join(hfDir, "model.safetensors"), tensors, { format: "pt", producer: "tersor demo" });
  const gguf = join(out, "tiny-llama.gguf");
  await writeGguf(gguf, {
    metadata: {
      "general.architecture": "llama",
      "general.name": "tersor demo tiny llama",
      "llama.context_length": config.max_position_embeddings,
      "llama.embedding_length": config.hidden_size,
      "llama.block_count": config.num_hidden_layers,
      "llama.feed_forward_length": config.intermediate_size,
      "llama.attention.head_count": config.num_attention_heads,
      "llama.attention.head_count_kv": config.num_key_value_heads,
      "llama.attention.layer_norm_rms_epsilon": config.rms_norm_eps,
      "llama.rope.freq_base": { type: "f32", value: config.rope_theta },
    },
    tensors: tensors.map(([name, t]) => [ggufName(name), t]),
  });
  process.stdout.write(`${params.toLocaleString("en-US")} parameters → ${relative(root, hfDir)}/ and ${relative(root, gguf)}\n`);

  section("2. tersor inspect");
  tersor(["inspect", relative(root, hfDir)]);
  tersor(["inspect", relative(root, gguf)]);

  section("3. tersor bench linalg (ours vs a named baseline, same run; ratio > 1 means we are faster)");
  tersor(["bench", "linalg", ...(process.env["CI"] ? ["--quick"] : [])]);
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
