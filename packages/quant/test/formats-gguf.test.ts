import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { GgufMetadata, Rng, Tensor, writeGguf } from "@tersor/core";
import { loadModel } from "@tersor/model";
import { afterAll, describe, expect, it } from "vitest";

import { dequantizeTensor, quantizeTensor } from "../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "tersor-quant-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const C = 64;
const F = 96;
const V = 50;
const LAYERS = 2;
const HEADS = 4;
const KV = 2;
const D = C / HEADS;

function metadata(): GgufMetadata {
  return new GgufMetadata()
    .set("general.architecture", "string", "llama")
    .set("llama.context_length", "u32", 64)
    .set("llama.embedding_length", "u32", C)
    .set("llama.block_count", "u32", LAYERS)
    .set("llama.feed_forward_length", "u32", F)
    .set("llama.attention.head_count", "u32", HEADS)
    .set("llama.attention.head_count_kv", "u32", KV)
    .set("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5)
    .set("llama.rope.freq_base", "f32", 10000)
    .set("llama.rope.dimension_count", "u32", D);
}

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

describe("GGUF with ggml-quantized tensors", () => {
  it("loads Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/MXFP4 linears and matches the float model of the dequantized weights", async () => {
    const rng = new Rng(9);
    const schemes = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "mxfp4"];
    const quantTensors: [string, Tensor][] = [];
    const floatTensors: [string, Tensor][] = [];
    let si = 0;
    const plain = (name: string, shape: number[], v: Float32Array) => {
      quantTensors.push([name, new Tensor("f32", shape, v)]);
      floatTensors.push([name, new Tensor("f32", shape, v)]);
    };
    const linear = async (name: string, rows: number, cols: number) => {
      const scheme = schemes[si++ % schemes.length]!;
      const w = gaussian(rows * cols, rng, 1 / Math.sqrt(cols));
      const q = await quantizeTensor(w, rows, cols, scheme);
      quantTensors.push([name, Tensor.fromBytes(scheme as "q8_0", [rows, cols], q)]);
      floatTensors.push([name, new Tensor("f32", [rows, cols], await dequantizeTensor(q, rows, cols, scheme))]);
    };
    plain("token_embd.weight", [V, C], gaussian(V * C, rng, 0.7));
    for (let l = 0; l < LAYERS; l++) {
      const p = `blk.${l}.`;
      plain(p + "attn_norm.weight", [C], gaussian(C, rng, 0.1, 1));
      await linear(p + "attn_q.weight", C, C);
      await linear(p + "attn_k.weight", KV * D, C);
      await linear(p + "attn_v.weight", KV * D, C);
      await linear(p + "attn_output.weight", C, C);
      plain(p + "ffn_norm.weight", [C], gaussian(C, rng, 0.1, 1));
      await linear(p + "ffn_gate.weight", F, C);
      await linear(p + "ffn_up.weight", F, C);
      await linear(p + "ffn_down.weight", C, F);
    }
    plain("output_norm.weight", [C], gaussian(C, rng, 0.1, 1));
    await linear("output.weight", V, C);
    const qPath = join(dir, "quant.gguf");
    const fPath = join(dir, "float.gguf");
    await writeGguf(qPath, { metadata: metadata(), tensors: quantTensors });
    await writeGguf(fPath, { metadata: metadata(), tensors: floatTensors });

    const qm = await loadModel(qPath);
    const fm = await loadModel(fPath);
    expect(qm.warnings.filter((w) => w.includes("unexpected"))).toEqual([]);
    const tokens = [3, 17, 49, 0, 22, 7, 31, 11, 5];
    const a = await qm.forward(tokens);
    const b = await fm.forward(tokens);
    expect(relError(a.data, b.data)).toBeLessThanOrEqual(1e-4);
  });
});
