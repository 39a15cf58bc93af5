import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { GgufMetadata, Tensor, writeGguf, writeSafetensors } from "@tersor/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { BIN, type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args);

let dir: string;
let gguf: string;
let st: string;
let sharded: string;
const tokens = Array.from({ length: 100 }, (_, i) => `tok${i}`);

beforeAll(async () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with \`npx tsc -b tsconfig.json\``);
  dir = await mkdtemp(join(tmpdir(), "tersor-inspect-"));

  gguf = join(dir, "model.bin"); // not a .gguf extension: detection is by magic
  const md = new GgufMetadata()
    .set("general.architecture", "string", "llama")
    .set("general.name", "string", "tiny test")
    .set("llama.context_length", "u32", 2048)
    .set("general.size", "u64", 2n ** 64n - 1n)
    .set("general.offset", "i64", -5n)
    .set("llama.rope.freq_base", "f32", 10000)
    .set("tokenizer.ggml.tokens", "array", { itemType: "string", values: tokens })
    .set("tokenizer.ggml.small", "array", { itemType: "i32", values: [1, 2, 3] })
    .set("nested", "array", { itemType: "array", values: [{ itemType: "u8", values: [1, 2] }] });
  await writeGguf(gguf, {
    metadata: md,
    tensors: [
      ["token_embd.weight", Tensor.f32(Array.from({ length: 8 }, (_, i) => i), [2, 4])],
      ["blk.0.attn_q.weight", Tensor.fromBytes("q4_k", [2, 256], new Uint8Array(2 * 144))],
      ["blk.0.ffn.weight", Tensor.fromBytes("q8_0", [1, 64], new Uint8Array(2 * 34))],
    ],
  });

  st = join(dir, "weights.safetensors");
  await writeSafetensors(st, [["a.weight", Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3])], ["b.bias", new Tensor("bf16", [3])]], { format: "pt" });

  sharded = join(dir, "ckpt");
  await mkdir(sharded);
  await writeSafetensors(join(sharded, "model-00001-of-00002.safetensors"), { "l0.w": Tensor.f32([1, 2]) }, { format: "pt" });
  await writeSafetensors(join(sharded, "model-00002-of-00002.safetensors"), { "l1.w": new Tensor("i64", [2, 2]) }, { format: "pt" });
  await writeFile(
    join(sharded, "model.safetensors.index.json"),
    JSON.stringify({
      metadata: { total_size: 40 },
      weight_map: { "l0.w": "model-00001-of-00002.safetensors", "l1.w": "model-00002-of-00002.safetensors" },
    }),
  );
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("tersor inspect", () => {
  it("prints a GGUF file's tensors, quant types, metadata and totals", async () => {
    const r = await tersor("inspect", gguf);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("GGUF v3 (alignment 32)");
    expect(r.stdout).toMatch(/token_embd\.weight\s+f32\s+\[2, 4\]\s+8\s+32\s+-/);
    expect(r.stdout).toMatch(/blk\.0\.attn_q\.weight\s+q4_k\s+\[2, 256\]\s+512\s+288\s+q4_k \(4\.50 bpw\)/);
    expect(r.stdout).toMatch(/blk\.0\.ffn\.weight\s+q8_0\s+\[1, 64\]\s+64\s+68\s+q8_0 \(8\.50 bpw\)/);
    expect(r.stdout).toMatch(/tokenizer\.ggml\.tokens\s+array\[string\]\s+\[string × 100\]/);
    expect(r.stdout).toMatch(/tokenizer\.ggml\.small\s+array\[i32\]\s+\[1, 2, 3\]/);
    expect(r.stdout).toMatch(/general\.size\s+u64\s+18446744073709551615/);
    expect(r.stdout).toMatch(/general\.name\s+string\s+"tiny test"/);
    expect(r.stdout).toMatch(/nested\s+array\[array\[u8\]\]\s+\[\[1, 2\]\]/);
    expect(r.stdout).toContain("total: 3 tensors, 584 parameters, 388 bytes");
  });

  it("prints a GGUF file as one JSON document with bigints as strings and full arrays", async () => {
    const r = await tersor("inspect", "--json", gguf);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      format: string;
      version: number;
      tensors: Array<{ name: string; dtype: string; shape: number[]; dims: number[]; bytes: number; quant?: string }>;
      metadata: Record<string, { type: string; itemType?: string; value: unknown }>;
      totals: { tensors: number; params: number; bytes: number };
    };
    expect(doc.format).toBe("gguf");
    expect(doc.version).toBe(3);
    expect(doc.tensors.map((t) => t.name)).toEqual(["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn.weight"]);
    expect(doc.tensors[1]).toMatchObject({ dtype: "q4_k", quant: "q4_k", shape: [2, 256], dims: [256, 2], bytes: 288 });
    expect(doc.tensors[0]!.quant).toBeUndefined();
    expect(doc.metadata["general.size"]).toEqual({ type: "u64", value: "18446744073709551615" });
    expect(doc.metadata["general.offset"]).toEqual({ type: "i64", value: "-5" });
    expect(doc.metadata["llama.context_length"]).toEqual({ type: "u32", value: 2048 });
    expect(doc.metadata["tokenizer.ggml.tokens"]).toEqual({ type: "array", itemType: "string", value: tokens });
    expect(doc.metadata["nested"]).toEqual({ type: "array", itemType: "array", value: [[1, 2]] });
    expect(doc.totals).toEqual({ tensors: 3, params: 584, bytes: 388 });
  });

  it("prints a safetensors file", async () => {
    const r = await tersor("inspect", st);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("weights.safetensors: safetensors");
    expect(r.stdout).toMatch(/a\.weight\s+F32\s+\[2, 3\]\s+6\s+24/);
    expect(r.stdout).toMatch(/b\.bias\s+BF16\s+\[3\]\s+3\s+6/);
    expect(r.stdout).toMatch(/format\s+"pt"/);
    expect(r.stdout).toContain("total: 2 tensors, 9 parameters, 30 bytes");
    const j = await tersor("inspect", st, "--json");
    const doc = JSON.parse(j.stdout) as { format: string; metadata: unknown; tensors: Array<{ name: string; dtype: string }>; totals: unknown };
    expect(doc.format).toBe("safetensors");
    expect(doc.metadata).toEqual({ format: "pt" });
    expect(doc.tensors.map((t) => [t.name, t.dtype])).toEqual([["a.weight", "F32"], ["b.bias", "BF16"]]);
    expect(doc.totals).toEqual({ tensors: 2, params: 9, bytes: 30 });
  });

  it("prints a sharded checkpoint directory (or its index file)", async () => {
    const r = await tersor("inspect", sharded);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("safetensors checkpoint, 2 file(s)");
    expect(r.stdout).toMatch(/l1\.w\s+I64\s+\[2, 2\]\s+4\s+32\s+model-00002-of-00002\.safetensors/);
    expect(r.stdout).toContain('index metadata: {"total_size":40}');
    expect(r.stdout).toContain("total: 2 tensors, 6 parameters, 40 bytes");
    const j = await tersor("inspect", "--json", join(sharded, "model.safetensors.index.json"));
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.stdout) as { format: string; files: string[]; tensors: Array<{ name: string; file: string }>; indexMetadata: unknown };
    expect(doc.format).toBe("safetensors-dir");
    expect(doc.files).toEqual(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    expect(doc.tensors.find((t) => t.name === "l0.w")!.file).toBe("model-00001-of-00002.safetensors");
    expect(doc.indexMetadata).toEqual({ total_size: 40 });
  });

  it("reports bad input as a one-line TersorError with exit code 1", async () => {
    const text = join(dir, "notes.txt");
    await writeFile(text, "just some text, definitely not a model\n");
    let r = await tersor("inspect", text);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^tersor: E_FORMAT: .*notes\.txt: not a GGUF file .* not a safetensors file/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);

    const full = await readFile(st);
    const cut = join(dir, "cut.safetensors");
    await writeFile(cut, full.subarray(0, full.byteLength - 4));
    r = await tersor("inspect", cut);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tersor: E_FORMAT: .*beyond the .*data buffer/);

    const huge = Buffer.from(full);
    huge.writeBigUInt64LE(10n ** 12n, 0);
    const lie = join(dir, "lie.safetensors");
    await writeFile(lie, huge);
    r = await tersor("inspect", lie);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tersor: E_FORMAT: .*header length 1000000000000 exceeds/);

    const g = Buffer.from(await readFile(gguf));
    g.writeBigUInt64LE(1n << 40n, 8);
    const badGguf = join(dir, "bad.gguf");
    await writeFile(badGguf, g);
    r = await tersor("inspect", badGguf);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tersor: E_FORMAT: .*tensor count 1099511627776 cannot fit/);

    r = await tersor("inspect", join(dir, "missing.gguf"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tersor: E_IO: cannot open .*missing\.gguf/);

    const empty = join(dir, "empty-dir");
    await mkdir(empty);
    r = await tersor("inspect", empty);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tersor: E_FORMAT: .*no model\.safetensors/);
  });

  it("is listed in the help", async () => {
    const r = await tersor("--help");
    expect(r.stdout).toMatch(/inspect \[options\] <path>/);
  });
});
