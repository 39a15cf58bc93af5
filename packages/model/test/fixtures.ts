/**
 * Test fixtures: writes a Hugging Face model directory (config.json, model.safetensors or shards
 * with an index, tokenizer.json) with a minimal safetensors writer that shares no code with
 * @tersor/core's writer, so loading is checked against an independent producer.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import type { ReferenceConfig, Weights } from "./reference.js";

function f32ToF16Bits(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign; // test weights never need subnormals
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return h;
}

function f32ToBf16Bits(v: number): number {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export type FixtureDType = "F32" | "F16" | "BF16";

/** Encodes values as the given dtype; returns the bytes and the values as the file stores them (f64). */
export function encode(values: ArrayLike<number>, dtype: FixtureDType): { bytes: Uint8Array; stored: Float64Array } {
  const n = values.length;
  const stored = new Float64Array(n);
  if (dtype === "F32") {
    const f = Float32Array.from(values);
    stored.set(f);
    return { bytes: new Uint8Array(f.buffer), stored };
  }
  const u = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    u[i] = dtype === "F16" ? f32ToF16Bits(values[i]!) : f32ToBf16Bits(values[i]!);
    if (dtype === "BF16") stored[i] = new Float32Array(new Uint32Array([u[i]! << 16]).buffer)[0]!;
    else {
      const h = u[i]!;
      const e = (h >>> 10) & 0x1f;
      const m = h & 0x3ff;
      const s = h & 0x8000 ? -1 : 1;
      stored[i] = e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return { bytes: new Uint8Array(u.buffer), stored };
}

/** A minimal safetensors file: u64 header length, JSON header, data in the given order. */
export function safetensorsBytes(entries: [string, { shape: number[]; bytes: Uint8Array; dtype: FixtureDType }][], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header["__metadata__"] = metadata;
  let offset = 0;
  for (const [name, e] of entries) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  out.set(hb, 8);
  let p = 8 + hb.byteLength;
  for (const [, e] of entries) {
    out.set(e.bytes, p);
    p += e.bytes.byteLength;
  }
  return out;
}

/** The byte-level tokenizer.json (256 byte tokens via GPT-2's byte-to-unicode map, BPE without merges). */
export function byteTokenizerJson(): object {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const vocab: Record<string, number> = {};
  bs.forEach((b, i) => (vocab[String.fromCodePoint(cs[i]!)] = b));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(256, "<|bos|>"), special(257, "<|eos|>"), special(258, "<|pad|>")],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
}

/**
 * Writes a model directory. Returns the weights as stored (after rounding to `dtype`), which is
 * what the reference forward must use. `shards > 1` writes `model-0000i-of-0000n.safetensors` + index.
 */
export function writeModelDir(dir: string, cfg: ReferenceConfig, weights: Weights, opts: { dtype?: FixtureDType; shards?: number; omit?: string[] } = {}): Weights {
  const dtype = opts.dtype ?? "F32";
  const shards = opts.shards ?? 1;
  mkdirSync(dir, { recursive: true });
  const stored: Weights = new Map();
  const entries: [string, { shape: number[]; bytes: Uint8Array; dtype: FixtureDType }][] = [];
  for (const [name, w] of weights) {
    if (opts.omit?.includes(name)) continue;
    const e = encode(w.data, dtype);
    stored.set(name, { shape: w.shape, data: e.stored });
    entries.push([name, { shape: w.shape, bytes: e.bytes, dtype }]);
  }
  const hf = cfg.model_type === "gpt2" ? { architectures: ["GPT2LMHeadModel"] } : { architectures: [cfg.model_type === "qwen2" ? "Qwen2ForCausalLM" : cfg.model_type === "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"] };
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...hf, ...cfg, torch_dtype: dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16" }, null, 2));
  if (shards === 1) {
    writeFileSync(join(dir, "model.safetensors"), safetensorsBytes(entries, { format: "pt" }));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(entries.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = entries.slice(s * per, (s + 1) * per);
      for (const [name] of part) weightMap[name] = file;
      writeFileSync(join(dir, file), safetensorsBytes(part, { format: "pt" }));
    }
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  }
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|bos|>", eos_token: "<|eos|>", pad_token: "<|pad|>", model_max_length: 4096 }));
  return stored;
}
