import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Tensor, isTersorError, openGguf, openSafetensorsDir, writeSafetensors, type GgufArray } from "@tersor/core";
import { type Model, loadModel } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { GGUF_SCHEMES, checkGgufScheme, exportGguf, permuteRopeRows, quantizeModel } from "../src/index.js";

const TINY = fileURLToPath(new URL("../../models/ref-tiny", import.meta.url));
const SMALL = fileURLToPath(new URL("../../models/ref-small", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "tersor-gguf-export-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tinyCfg = JSON.parse(readFileSync(join(TINY, "config.json"), "utf8")) as Record<string, number | boolean>;
const TEXT = "Four score and seven years ago — «naïve» café, 日本語, emoji 🙂.\n\tTabs and  spaces!";

/** Fails with the error's code, or null when `f` did not throw. */
async function codeOf(f: () => Promise<unknown>): Promise<string | null> {
  try {
    await f();
    return null;
  } catch (e) {
    if (!isTersorError(e)) throw e;
    return e.code;
  }
}

/** Files in `dir` (temp files of an atomic write included). */
const ls = (dir: string) => readdirSync(dir).sort();

// ---------------------------------------------------------------------------------------------
// An independent minimal GGUF reader (GGUF v3, little-endian), written from the spec: header, the
// key/value section, the tensor infos, the alignment and the aligned data offsets.
const TYPE_SIZES: Record<number, [number, number]> = { 0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 30: [1, 2] };
interface MiniTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number;
  size: number;
}
interface MiniGguf {
  version: number;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: MiniTensor[];
  alignment: number;
  dataStart: number;
}
function miniRead(buf: Buffer): MiniGguf {
  let p = 0;
  const u32 = () => ((p += 4), buf.readUInt32LE(p - 4));
  const u64 = () => ((p += 8), Number(buf.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    p += n;
    return buf.toString("utf8", p - n, p);
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 0: return buf.readUInt8(p++);
      case 1: return buf.readInt8(p++);
      case 2: return ((p += 2), buf.readUInt16LE(p - 2));
      case 3: return ((p += 2), buf.readInt16LE(p - 2));
      case 4: return u32();
      case 5: return ((p += 4), buf.readInt32LE(p - 4));
      case 6: return ((p += 4), buf.readFloatLE(p - 4));
      case 7: return buf.readUInt8(p++) !== 0;
      case 8: return str();
      case 9: {
        const it = u32();
        const n = u64();
        return { itemType: it, values: Array.from({ length: n }, () => scalar(it)) };
      }
      case 10: return u64();
      case 11: return ((p += 8), Number(buf.readBigInt64LE(p - 8)));
      case 12: return ((p += 8), buf.readDoubleLE(p - 8));
      default: throw new Error(`bad value type ${t}`);
    }
  };
  expect(buf.toString("latin1", 0, 4)).toBe("GGUF");
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nKv; i++) {
    const k = str();
    const t = u32();
    kv.set(k, { type: t, value: scalar(t) });
  }
  const tensors: MiniTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const dims = Array.from({ length: nd }, () => u64());
    const type = u32();
    const offset = u64();
    const [bs, ts] = TYPE_SIZES[type]!;
    tensors.push({ name, dims, type, offset, size: (dims.reduce((a, b) => a * b, 1) / bs) * ts });
  }
  const alignment = (kv.get("general.alignment")?.value as number | undefined) ?? 32;
  const dataStart = Math.ceil(p / alignment) * alignment;
  return { version, kv, tensors, alignment, dataStart };
}

/** GPT-2's bytes_to_unicode, from its definition (printable Latin-1 stand for themselves, the rest shift to U+0100…). */
function gpt2ByteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// ---------------------------------------------------------------------------------------------
const qdir = join(root, "tiny-q8_0");
const gguf = join(root, "tiny-q8_0.gguf");
let floatModel: Model;

beforeAll(async () => {
  floatModel = await loadModel(TINY, { progress: "silent" });
  const ids = floatModel.encode(TEXT.repeat(4));
  const seqs = [ids.slice(0, 48), ids.slice(48, 96)];
  await quantizeModel(floatModel, TINY, seqs, qdir, { scheme: "q8_0", method: "rtn", progress: "silent" });
  floatModel = await loadModel(TINY, { progress: "silent" }); // the driver overwrote the runtime's linears
  await exportGguf(qdir, gguf, { progress: "silent" });
}, 60_000);

describe("GGUF export of a quantized llama model (ref-tiny, q8_0 RTN)", () => {
  it("writes every llama.cpp metadata key with its GGUF type and value", async () => {
    const g = await openGguf(gguf);
    try {
      const md = g.metadata;
      const C = tinyCfg["hidden_size"] as number;
      const H = tinyCfg["num_attention_heads"] as number;
      const want: [string, string, unknown][] = [
        ["general.architecture", "string", "llama"],
        ["general.name", "string", "tiny-q8_0"],
        ["general.file_type", "u32", 7], // LLAMA_FTYPE_MOSTLY_Q8_0
        ["general.quantization_version", "u32", 2],
        ["llama.context_length", "u32", tinyCfg["max_position_embeddings"]],
        ["llama.embedding_length", "u32", C],
        ["llama.block_count", "u32", tinyCfg["num_hidden_layers"]],
        ["llama.feed_forward_length", "u32", tinyCfg["intermediate_size"]],
        ["llama.attention.head_count", "u32", H],
        ["llama.attention.head_count_kv", "u32", tinyCfg["num_key_value_heads"]],
        ["llama.rope.freq_base", "f32", tinyCfg["rope_theta"]],
        ["llama.rope.dimension_count", "u32", C / H],
        ["llama.vocab_size", "u32", 259],
        ["tokenizer.ggml.model", "string", "gpt2"],
        ["tokenizer.ggml.bos_token_id", "u32", 256],
        ["tokenizer.ggml.eos_token_id", "u32", 257],
        ["tokenizer.ggml.padding_token_id", "u32", 258],
        ["tokenizer.ggml.add_bos_token", "bool", false],
      ];
      for (const [k, type, value] of want) {
        expect(md.type(k), k).toBe(type);
        expect(md.get(k), k).toBe(value);
      }
      expect(md.type("llama.attention.layer_norm_rms_epsilon")).toBe("f32");
      expect(md.get("llama.attention.layer_norm_rms_epsilon")).toBeCloseTo(tinyCfg["rms_norm_eps"] as number, 12);
      const tokens = md.get("tokenizer.ggml.tokens") as GgufArray;
      const types = md.get("tokenizer.ggml.token_type") as GgufArray;
      const merges = md.get("tokenizer.ggml.merges") as GgufArray;
      expect(tokens.itemType).toBe("string");
      expect(types.itemType).toBe("i32");
      expect(merges.itemType).toBe("string");
      expect(merges.values.length).toBe(0);
      expect(tokens.values.length).toBe(259);
      // Byte tokens are GPT-2's byte-to-unicode characters (NORMAL = 1), the specials CONTROL (= 3).
      expect([...(tokens.values as string[])].slice(0, 256)).toEqual(gpt2ByteChars());
      expect(tokens.values[0x20]).toBe("Ġ");
      expect(tokens.values[0x41]).toBe("A");
      expect([...(tokens.values as string[])].slice(256)).toEqual(["<|bos|>", "<|eos|>", "<|pad|>"]);
      expect([...(types.values as Int32Array)].slice(0, 256).every((t) => t === 1)).toBe(true);
      expect([...(types.values as Int32Array)].slice(256)).toEqual([3, 3, 3]);
    } finally {
      await g.close();
    }
  });

  it("names, shapes and ggml types of every tensor follow llama.cpp (untied: output.weight present)", async () => {
    const g = await openGguf(gguf);
    try {
      const C = tinyCfg["hidden_size"] as number;
      const F = tinyCfg["intermediate_size"] as number;
      const kv = (tinyCfg["num_key_value_heads"] as number) * (C / (tinyCfg["num_attention_heads"] as number));
      const want: [string, number[], string][] = [["token_embd.weight", [259, C], "f32"]];
      for (let l = 0; l < (tinyCfg["num_hidden_layers"] as number); l++) {
        want.push(
          [`blk.${l}.attn_norm.weight`, [C], "f32"],
          [`blk.${l}.attn_q.weight`, [C, C], "q8_0"],
          [`blk.${l}.attn_k.weight`, [kv, C], "q8_0"],
          [`blk.${l}.attn_v.weight`, [kv, C], "q8_0"],
          [`blk.${l}.attn_output.weight`, [C, C], "q8_0"],
          [`blk.${l}.ffn_gate.weight`, [F, C], "q8_0"],
          [`blk.${l}.ffn_up.weight`, [F, C], "q8_0"],
          [`blk.${l}.ffn_down.weight`, [C, F], "q8_0"],
          [`blk.${l}.ffn_norm.weight`, [C], "f32"],
        );
      }
      want.push(["output_norm.weight", [C], "f32"], ["output.weight", [259, C], "f32"]);
      expect(g.tensors.map((t) => t.name).sort()).toEqual(want.map((w) => w[0]).sort());
      for (const [name, shape, type] of want) {
        expect(g.get(name)!.shape, name).toEqual(shape);
        expect(g.get(name)!.dtype, name).toBe(type);
      }
    } finally {
      await g.close();
    }
  });

  it("an independent minimal reader agrees with core's reader: header, metadata, tensor infos, aligned offsets, bytes", async () => {
    const buf = readFileSync(gguf);
    const mini = miniRead(buf);
    const g = await openGguf(gguf);
    try {
      expect(mini.version).toBe(3);
      expect(mini.alignment).toBe(g.alignment);
      expect(mini.dataStart).toBe(g.dataOffset);
      expect([...mini.kv.keys()]).toEqual([...g.metadata.keys()]);
      const typeIds = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
      for (const [k, e] of mini.kv) {
        expect(typeIds[e.type], k).toBe(g.metadata.type(k));
        const v = g.metadata.get(k);
        if (e.type === 9) {
          const a = e.value as { itemType: number; values: unknown[] };
          expect(typeIds[a.itemType], k).toBe((v as GgufArray).itemType);
          expect(a.values, k).toEqual([...((v as GgufArray).values as Iterable<unknown>)]);
        } else expect(e.value, k).toBe(v);
      }
      expect(mini.tensors.map((t) => t.name)).toEqual(g.tensors.map((t) => t.name));
      let end = 0;
      for (const t of mini.tensors) {
        const info = g.get(t.name)!;
        expect(t.dims, t.name).toEqual([...info.shape].reverse()); // ne0 (the row length) first
        expect(t.offset % mini.alignment, t.name).toBe(0);
        expect(t.offset, t.name).toBeGreaterThanOrEqual(end); // in order, no overlap
        expect(mini.dataStart + t.offset, t.name).toBe(info.byteOffset);
        expect(t.size, t.name).toBe(info.byteLength);
        const mine = buf.subarray(mini.dataStart + t.offset, mini.dataStart + t.offset + t.size);
        expect(Buffer.compare(mine, Buffer.from(await g.readBytes(t.name))), t.name).toBe(0);
        end = t.offset + t.size;
      }
      expect(buf.byteLength).toBeGreaterThanOrEqual(mini.dataStart + end);
      expect(buf.byteLength - (mini.dataStart + end)).toBeLessThan(mini.alignment);
    } finally {
      await g.close();
    }
  });

  it("Q and K rows follow llama.cpp's permute() (whole quantized rows move); every other linear is the HF checkpoint's bytes", async () => {
    const st = await openSafetensorsDir(qdir);
    const g = await openGguf(gguf);
    try {
      const H = tinyCfg["num_attention_heads"] as number;
      const KV = tinyCfg["num_key_value_heads"] as number;
      const d = (tinyCfg["hidden_size"] as number) / H;
      for (let l = 0; l < (tinyCfg["num_hidden_layers"] as number); l++) {
        for (const [hf, gg, heads] of [["q_proj", "attn_q", H], ["k_proj", "attn_k", KV]] as const) {
          const src = await st.readBytes(`model.layers.${l}.self_attn.${hf}.qweight`);
          const out = await g.readBytes(`blk.${l}.${gg}.weight`);
          const rb = src.byteLength / (heads * d);
          // permute(): reshape (heads, 2, d/2, ·), swap axes 1 and 2 → GGUF row h·d + 2j + s is HF row h·d + s·d/2 + j.
          for (let h = 0; h < heads; h++)
            for (let j = 0; j < d / 2; j++)
              for (let s = 0; s < 2; s++) {
                const a = out.subarray((h * d + 2 * j + s) * rb, (h * d + 2 * j + s + 1) * rb);
                const b = src.subarray((h * d + s * (d / 2) + j) * rb, (h * d + s * (d / 2) + j + 1) * rb);
                expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).toBe(0);
              }
        }
        for (const [hf, gg] of [["self_attn.v_proj", "attn_v"], ["self_attn.o_proj", "attn_output"], ["mlp.gate_proj", "ffn_gate"], ["mlp.up_proj", "ffn_up"], ["mlp.down_proj", "ffn_down"]]) {
          const a = await st.readBytes(`model.layers.${l}.${hf}.qweight`);
          expect(Buffer.compare(Buffer.from(await g.readBytes(`blk.${l}.${gg}.weight`)), Buffer.from(a)), hf).toBe(0);
        }
      }
    } finally {
      await st.close();
      await g.close();
    }
  });

  it("loadModel(gguf) gives the logits of the HF quantized directory within 1e-5, and of the float model within the q8_0 tolerance", async () => {
    const fromGguf = await loadModel(gguf, { progress: "silent" });
    const fromDir = await loadModel(qdir, { progress: "silent" });
    expect(fromGguf.config.rope).toMatchObject({ style: "interleaved" });
    expect(fromGguf.warnings).toEqual([]);
    const ids = fromDir.encode(TEXT);
    const a = (await fromGguf.forward(ids)).data;
    const b = (await fromDir.forward(ids)).data;
    const f = (await floatModel.forward(ids)).data;
    expect(a.length).toBe(ids.length * 259);
    // Same weights, RoPE pairs in another order: only the summation order of q·k differs.
    expect(maxDiff(a, b)).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(b)));
    // q8_0 (8-bit, 1/254 of a 32-block's range per step): logits move by well under 2% of their range, but they do move.
    const dq = maxDiff(a, f);
    expect(dq).toBeGreaterThan(0);
    expect(dq).toBeLessThan(0.02 * maxAbs(f));
  });

  it("the tokenizer read back from the GGUF encodes and decodes text to the same ids as the original", async () => {
    const m = await loadModel(gguf, { progress: "silent" });
    expect(m.tokenizer.kind).toBe("byte");
    expect(m.eosTokenIds).toEqual([257]);
    const ids = m.encode(TEXT);
    expect(ids).toEqual(floatModel.encode(TEXT));
    expect(ids).toEqual([...Buffer.from(TEXT, "utf8")]);
    expect(m.decode(ids)).toBe(TEXT);
    expect(m.decode([256, ...ids, 257], { skipSpecialTokens: false })).toBe(floatModel.decode([256, ...ids, 257], { skipSpecialTokens: false }));
  });
});

describe("GGUF export of a float model", () => {
  it("tied embeddings (ref-small): no output.weight; RTN q8_0 linears with an f16 fallback for rows of 688; logits match", async () => {
    const out = join(root, "small.gguf");
    const r = await exportGguf(SMALL, out, { type: "q8_0", fallbackType: "f16", progress: "silent" });
    const g = await openGguf(out);
    try {
      expect(g.get("output.weight")).toBeUndefined();
      expect(g.get("blk.0.attn_q.weight")!.dtype).toBe("q8_0");
      expect(g.get("blk.0.ffn_down.weight")!.dtype).toBe("f16"); // 688 is no multiple of 32
      expect(g.get("token_embd.weight")!.dtype).toBe("f32");
      expect(g.metadata.get("general.file_type")).toBe(7);
    } finally {
      await g.close();
    }
    expect(r.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!.type).toBe("f16");
    const a = await loadModel(out, { progress: "silent" });
    const b = await loadModel(SMALL, { progress: "silent" });
    expect(a.config.tieEmbeddings).toBe(true);
    const ids = b.encode(TEXT.slice(0, 40));
    const la = (await a.forward(ids)).data;
    const lb = (await b.forward(ids)).data;
    expect(maxDiff(la, lb)).toBeLessThan(0.02 * maxAbs(lb));
  }, 60_000);

  it("K-quant (q6_k on ref-small, f16 fallback for rows of 688) and bf16 exports: ggml types, file types, logits within their tolerance", async () => {
    const b = await loadModel(SMALL, { progress: "silent" });
    const ids = b.encode(TEXT.slice(0, 40));
    const lb = (await b.forward(ids)).data;
    for (const [type, fileType, tol] of [["q6_k", 18, 0.02], ["bf16", 32, 0.02]] as const) {
      const out = join(root, `small-${type}.gguf`);
      await exportGguf(SMALL, out, { type, fallbackType: "f16", progress: "silent" });
      const g = await openGguf(out);
      try {
        expect(g.metadata.get("general.file_type")).toBe(fileType);
        expect(g.get("blk.3.attn_v.weight")!.dtype).toBe(type);
        expect(g.get("blk.3.ffn_down.weight")!.dtype).toBe(type === "bf16" ? "bf16" : "f16");
        expect(g.get("token_embd.weight")!.dtype).toBe(type === "bf16" ? "bf16" : "f32");
        expect(g.get("output_norm.weight")!.dtype).toBe("f32");
      } finally {
        await g.close();
      }
      const la = (await (await loadModel(out, { progress: "silent" })).forward(ids)).data;
      const d = maxDiff(la, lb);
      expect(d, type).toBeGreaterThan(0);
      expect(d, type).toBeLessThan(tol * maxAbs(lb));
    }
  }, 60_000);

  it("f32 export of ref-tiny reproduces the float logits within 1e-5", async () => {
    const out = join(root, "tiny-f32.gguf");
    const r = await exportGguf(TINY, out, { progress: "silent" });
    expect(r.fileType).toBe(0);
    expect(r.tensors.every((t) => t.type === "f32")).toBe(true);
    const m = await loadModel(out, { progress: "silent" });
    const ids = m.encode(TEXT);
    const a = (await m.forward(ids)).data;
    const b = (await floatModel.forward(ids)).data;
    expect(maxDiff(a, b)).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(b)));
  });

  it("permuteRopeRows is llama.cpp's permute() on rows (hand-computed order) and checks its shape", () => {
    // 2 heads of d = 4, rows of 3 bytes: row r holds [r, r, r].
    const rows = 8;
    const src = new Uint8Array(rows * 3).map((_, i) => Math.floor(i / 3));
    const out = permuteRopeRows(src, rows, 3, 2);
    // Per head [0 1 | 2 3] (rotate-half pairs 0↔2, 1↔3) → [0 2 1 3].
    expect([...out].filter((_, i) => i % 3 === 0)).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(() => permuteRopeRows(src, rows, 3, 3)).toThrow(/heads/);
  });
});

describe("GGUF export: bad input", () => {
  it("a scheme without a ggml type is an E_RANGE naming the schemes GGUF supports", () => {
    for (const s of ["nf4", "int4-g128", "fp8", "kmeans4"]) {
      let err: unknown;
      try {
        checkGgufScheme(s);
      } catch (e) {
        err = e;
      }
      expect(isTersorError(err) && err.code).toBe("E_RANGE");
      expect(String((err as Error).message)).toContain("q4_k");
      expect(String((err as Error).message)).toContain(s);
    }
    for (const s of GGUF_SCHEMES) expect(checkGgufScheme(s)).toBe(s);
  });

  it("a quantized directory whose scheme has no ggml type, adapters, an output directory, a foreign tokenizer, rows a block does not divide or NaN weights: clear errors, no file left", async () => {
    const work = join(root, "bad");
    mkdirSync(work);
    const out = join(work, "m.gguf");
    // nf4-quantized directory: rewrite the q8_0 one's config to claim nf4 (rejected before any write).
    const nf4 = join(root, "nf4dir");
    cpSync(qdir, nf4, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(nf4, "config.json"), "utf8"));
    cfg.quantization_config.scheme = "nf4";
    writeFileSync(join(nf4, "config.json"), JSON.stringify(cfg));
    expect(await codeOf(() => exportGguf(nf4, out, { progress: "silent" }))).toBe("E_RANGE");
    // An existing directory as the output path.
    expect(await codeOf(() => exportGguf(TINY, work, { progress: "silent" }))).toBe("E_IO");
    // Low-rank adapters.
    const lora = join(root, "loradir");
    cpSync(TINY, lora, { recursive: true });
    const st = await openSafetensorsDir(TINY);
    const tensors: [string, Tensor][] = [];
    for (const t of st.tensors) tensors.push([t.name, await st.read(t.name)]);
    await st.close();
    await writeSafetensors(join(lora, "model.safetensors"), [...tensors, ["model.layers.0.self_attn.q_proj.lora_a", new Tensor("f32", [2, 128], new Float32Array(256))], ["model.layers.0.self_attn.q_proj.lora_b", new Tensor("f32", [128, 2], new Float32Array(256))]]);
    expect(await codeOf(() => exportGguf(lora, out, { progress: "silent" }))).toBe("E_FORMAT");
    // A tokenizer other than the byte-level one.
    const tok = join(root, "tokdir");
    cpSync(TINY, tok, { recursive: true });
    const tj = JSON.parse(readFileSync(join(tok, "tokenizer.json"), "utf8"));
    tj.model.merges = [["Ġ", "t"]];
    writeFileSync(join(tok, "tokenizer.json"), JSON.stringify(tj));
    expect(await codeOf(() => exportGguf(tok, out, { progress: "silent" }))).toBe("E_FORMAT");
    // An architecture llama.cpp's llama graph does not run (Qwen2: its own GGUF architecture).
    const qwen = join(root, "qwendir");
    cpSync(TINY, qwen, { recursive: true });
    writeFileSync(join(qwen, "config.json"), JSON.stringify({ ...tinyCfg, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"] }));
    expect(await codeOf(() => exportGguf(qwen, out, { progress: "silent" }))).toBe("E_FORMAT");
    // q4_k on rows of 128 without a fallback.
    expect(await codeOf(() => exportGguf(TINY, out, { type: "q4_k", progress: "silent" }))).toBe("E_SHAPE");
    // A scheme name the options do not know.
    expect(await codeOf(() => exportGguf(TINY, out, { type: "nf4" as "q4_k", progress: "silent" }))).toBe("E_RANGE");
    // NaN in the last layer's down_proj: found while streaming, after the file was opened → aborted.
    const nan = join(root, "nandir");
    cpSync(TINY, nan, { recursive: true });
    const bad = tensors.map(([n, t]): [string, Tensor] => {
      if (n !== "model.layers.1.mlp.down_proj.weight") return [n, t];
      const d = Float32Array.from(t.data as Float32Array);
      d[7] = Number.NaN;
      return [n, new Tensor("f32", t.shape, d)];
    });
    await writeSafetensors(join(nan, "model.safetensors"), bad);
    expect(await codeOf(() => exportGguf(nan, out, { progress: "silent" }))).toBe("E_RANGE");
    expect(ls(work)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});

// Opt-in: llama.cpp itself, through node-llama-cpp's prebuilt binaries (not a dependency of tersor).
// Run with TERSOR_NODE_LLAMA_CPP=<a directory where `npm install node-llama-cpp` was run>.
const LLAMA_CPP = process.env["TERSOR_NODE_LLAMA_CPP"];
describe.skipIf(!LLAMA_CPP)("llama.cpp loads the export (opt-in: TERSOR_NODE_LLAMA_CPP)", () => {
  it("llama.cpp tokenizes to the byte ids and its next-token distribution matches loadModel's (f32 KV cache)", async () => {
    const out = join(root, "tiny-llama-cpp.gguf");
    await exportGguf(TINY, out, { progress: "silent" });
    const lib = await import(pathToFileURL(join(LLAMA_CPP!, "node_modules/node-llama-cpp/dist/index.js")).href);
    const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: lib.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: out });
    try {
      const ids: number[] = Array.from(model.tokenize(TEXT, false));
      expect(ids).toEqual([...Buffer.from(TEXT, "utf8")]);
      expect(model.detokenize(ids)).toBe(TEXT);
      const ctx = await model.createContext({ contextSize: 256, threads: 2, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
      const seq = ctx.getSequence();
      let probs: number[] | undefined;
      for await (const o of seq.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 })) {
        probs = Array.from({ length: 259 }, (_, i) => (o.probabilities as Map<number, number>).get(i) ?? 0);
        break;
      }
      await ctx.dispose();
      const logits = (await floatModel.forward(ids)).data.subarray((ids.length - 1) * 259);
      const mx = maxAbs(logits) + 1;
      const e = Array.from(logits, (v) => Math.exp(v - mx));
      const z = e.reduce((a, b) => a + b, 0);
      const tv = e.reduce((a, v, i) => a + Math.abs(v / z - probs![i]!) / 2, 0);
      expect(tv).toBeLessThan(1e-4);
    } finally {
      await model.dispose();
    }
    // Every block type (RTN from ref-small; rows of 688 in f16): llama.cpp reads the blocks as we do. It
    // multiplies with activations quantized to 8 bits (ggml's vec_dot_*_q8), so the match is approximate;
    // a misread block layout would give an unrelated distribution.
    const small = await loadModel(SMALL, { progress: "silent" });
    const ids = small.encode("The president said that the nation");
    for (const type of GGUF_SCHEMES.filter((t) => t !== "f32" && t !== "f16" && t !== "bf16")) {
      const out = join(root, `small-llama-cpp-${type}.gguf`);
      await exportGguf(SMALL, out, { type, fallbackType: "f16", progress: "silent" });
      const m = await llama.loadModel({ modelPath: out });
      try {
        const ctx = await m.createContext({ contextSize: 64, threads: 2, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
        let probs: number[] | undefined;
        for await (const o of ctx.getSequence().evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 })) {
          probs = Array.from({ length: 259 }, (_, i) => (o.probabilities as Map<number, number>).get(i) ?? 0);
          break;
        }
        await ctx.dispose();
        const logits = (await (await loadModel(out, { progress: "silent" })).forward(ids)).data.subarray((ids.length - 1) * 259);
        const mx = maxAbs(logits) + 1;
        const e = Array.from(logits, (v) => Math.exp(v - mx));
        const z = e.reduce((a, b) => a + b, 0);
        const tv = e.reduce((a, v, i) => a + Math.abs(v / z - probs![i]!) / 2, 0);
        expect(tv, type).toBeLessThan(1e-2);
      } finally {
        await m.dispose();
      }
    }
  }, 300_000);
});
