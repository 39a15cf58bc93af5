/**
 * Seeded mutation fuzzing of the safetensors and GGUF readers: every mutated file must either open
 * and read, or fail with a TersorError. Any other exception (RangeError, TypeError, out-of-memory,
 * a hang) fails the test.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { GgufMetadata, Tensor, TersorError, openGguf, openSafetensors, readJsonl, writeGguf, writeSafetensors } from "../src/index.js";
import { Rng } from "../src/rng.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-fuzz-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Field {
  pos: number;
  size: 4 | 8;
}

/** A GGUF file assembled by hand, recording where every count and length field is. */
function handGguf(): { bytes: Buffer; fields: Field[]; headerEnd: number } {
  const parts: Buffer[] = [];
  const fields: Field[] = [];
  let len = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    len += b.byteLength;
  };
  const u32 = (v: number, field = false) => {
    if (field) fields.push({ pos: len, size: 4 });
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    push(b);
  };
  const u64 = (v: bigint, field = false) => {
    if (field) fields.push({ pos: len, size: 8 });
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    u64(BigInt(b.byteLength), true);
    push(b);
  };
  const kv = (k: string, type: number, write: () => void) => {
    str(k);
    u32(type, true);
    write();
  };
  const tensors = [
    { name: "tok_embd.weight", dims: [8, 4], type: 0, size: 128 },
    { name: "blk.0.attn_q.weight", dims: [64, 2], type: 2, size: 72 },
    { name: "blk.0.ffn_down.weight", dims: [256], type: 12, size: 144 },
    { name: "norm", dims: [8], type: 1, size: 16 },
    { name: "q8.3d", dims: [32, 2, 1], type: 8, size: 68 },
  ];
  push(Buffer.from("GGUF", "latin1"));
  u32(3, true);
  u64(BigInt(tensors.length), true);
  u64(8n, true);
  kv("general.architecture", 8, () => str("llama"));
  kv("general.alignment", 4, () => u32(32, true));
  kv("llama.context_length", 4, () => u32(4096));
  kv("llama.rope.freq_base", 6, () => push(Buffer.from(new Float32Array([10000]).buffer)));
  kv("general.file_type", 10, () => u64(7n));
  kv("tokenizer.ggml.tokens", 9, () => {
    u32(8, true);
    u64(5n, true);
    for (const t of ["<s>", "</s>", "a", "bb", "ccc"]) str(t);
  });
  kv("tokenizer.ggml.scores", 9, () => {
    u32(6, true);
    u64(5n, true);
    push(Buffer.from(new Float32Array([0, 1, 2, 3, 4]).buffer));
  });
  kv("nested", 9, () => {
    u32(9, true);
    u64(2n, true);
    u32(0, true);
    u64(3n, true);
    push(Buffer.from([1, 2, 3]));
    u32(7, true);
    u64(1n, true);
    push(Buffer.from([1]));
  });
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    off = Math.ceil(off / 32) * 32;
    offsets.push(off);
    str(t.name);
    u32(t.dims.length, true);
    for (const d of t.dims) u64(BigInt(d), true);
    u32(t.type, true);
    u64(BigInt(off), true);
    off += t.size;
  }
  const headerEnd = len;
  push(Buffer.alloc(Math.ceil(len / 32) * 32 - len));
  const data = Buffer.alloc(Math.ceil(off / 32) * 32);
  for (let i = 0; i < data.byteLength; i++) data[i] = (i * 13) & 0xff;
  push(data);
  void offsets;
  return { bytes: Buffer.concat(parts), fields, headerEnd };
}

const BOUNDARY = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];
const BIG32 = [0xffffffff, 0x80000000, 0x7fffffff, 5, 9, 13, 100];
const BIG64 = [2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 53n, 2n ** 32n, 10n ** 12n, 1n << 40n];

interface Mutation {
  kind: string;
  bytes: Buffer;
}

function mutate(rng: Rng, base: Buffer, headerEnd: number, fields: Field[], extra?: (rng: Rng) => Buffer | undefined): Mutation {
  const b = Buffer.from(base);
  const pos = () => (rng.nextBelow(10) < 8 ? rng.nextBelow(Math.min(headerEnd + 16, b.byteLength)) : rng.nextBelow(b.byteLength));
  const k = rng.nextBelow(extra ? 6 : 5);
  switch (k) {
    case 0: {
      const flips = 1 + rng.nextBelow(4);
      for (let i = 0; i < flips; i++) {
        const p = pos();
        b[p] = b[p]! ^ (1 << rng.nextBelow(8));
      }
      return { kind: "bit flip", bytes: b };
    }
    case 1: {
      const count = 1 + rng.nextBelow(3);
      for (let i = 0; i < count; i++) b[pos()] = BOUNDARY[rng.nextBelow(BOUNDARY.length)]!;
      return { kind: "boundary byte", bytes: b };
    }
    case 2:
      return { kind: "truncation", bytes: b.subarray(0, rng.nextBelow(b.byteLength)) };
    case 3: {
      const f = fields[rng.nextBelow(fields.length)]!;
      if (f.size === 4) {
        const choices = [...BIG32, b.byteLength, b.byteLength + 1, rng.nextU32()];
        b.writeUInt32LE(choices[rng.nextBelow(choices.length)]! >>> 0, f.pos);
      } else {
        const choices = [...BIG64, BigInt(b.byteLength), BigInt(b.byteLength + 1), BigInt(rng.nextU32()) << 16n];
        b.writeBigUInt64LE(choices[rng.nextBelow(choices.length)]!, f.pos);
      }
      return { kind: "length inflation", bytes: b };
    }
    case 4: {
      const p = pos();
      const n = 1 + rng.nextBelow(16);
      for (let i = p; i < Math.min(b.byteLength, p + n); i++) b[i] = rng.nextBelow(256);
      return { kind: "random run", bytes: b };
    }
    default:
      return { kind: "structured", bytes: extra!(rng) ?? b };
  }
}

type Outcome = "ok" | string;

async function exercise(path: string, open: (p: string) => Promise<{ tensors: readonly { name: string }[]; read(n: string): Promise<Tensor>; readBytes(n: string): Promise<Uint8Array>; close(): Promise<void> }>): Promise<Outcome> {
  let f;
  try {
    f = await open(path);
  } catch (e) {
    if (e instanceof TersorError) return e.code;
    throw e;
  }
  try {
    let outcome: Outcome = "ok";
    for (const t of f.tensors) {
      try {
        await f.readBytes(t.name);
        await f.read(t.name);
      } catch (e) {
        if (!(e instanceof TersorError)) throw e;
        outcome = `read:${e.code}`;
      }
    }
    return outcome;
  } finally {
    await f.close();
  }
}

async function fuzz(
  name: string,
  seed: number,
  cases: number,
  base: Buffer,
  headerEnd: number,
  fields: Field[],
  open: Parameters<typeof exercise>[1],
  extra?: (rng: Rng) => Buffer | undefined,
): Promise<Map<string, number>> {
  const rng = new Rng(seed);
  const path = join(dir, name);
  const outcomes = new Map<string, number>();
  const failures: string[] = [];
  for (let i = 0; i < cases; i++) {
    const m = mutate(rng, base, headerEnd, fields, extra);
    await writeFile(path, m.bytes);
    try {
      const o = await exercise(path, open);
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    } catch (e) {
      failures.push(`case ${i} (${m.kind}): ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      if (failures.length === 1) await writeFile(join(dir, `${name}.failure-${i}`), m.bytes);
    }
  }
  expect(failures, failures.slice(0, 5).join("\n")).toEqual([]);
  return outcomes;
}

describe("format readers under mutation", () => {
  it("safetensors: 1,200 mutated files open and read, or fail with a TersorError", async () => {
    const started = Date.now();
    const src = join(dir, "base.safetensors");
    await writeSafetensors(
      src,
      [
        ["model.embed.weight", Tensor.f32(Array.from({ length: 24 }, (_, i) => i), [4, 6])],
        ["model.norm", new Tensor("f16", [6], Uint16Array.from([0x3c00, 0, 1, 2, 3, 4]))],
        ["ids", new Tensor("i64", [3], BigInt64Array.from([1n, 2n, 3n]))],
        ["mask", new Tensor("bool", [5], Uint8Array.from([1, 0, 1, 0, 1]))],
        ["bf", new Tensor("bf16", [2, 2])],
        ["empty", new Tensor("f32", [0])],
      ],
      { format: "pt", model: "fuzz" },
    );
    const base = Buffer.from(await readFile(src));
    const headerEnd = 8 + Number(base.readBigUInt64LE(0));
    const header = base.subarray(8, headerEnd).toString("utf8");
    // Structured mutation: replace one number in the JSON header with an extreme value.
    const numbers = [...header.matchAll(/\d+/g)].map((m) => ({ at: m.index, len: m[0].length }));
    const extremes = ["1000000000000", "18446744073709551615", "-1", "1.5", "9007199254740993", "0", "1e308", "null", '"7"'];
    const structured = (rng: Rng): Buffer => {
      const n = numbers[rng.nextBelow(numbers.length)]!;
      const text = header.slice(0, n.at) + extremes[rng.nextBelow(extremes.length)]! + header.slice(n.at + n.len);
      const h = Buffer.from(text, "utf8");
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.byteLength));
      return Buffer.concat([len, h, base.subarray(headerEnd)]);
    };
    const outcomes = await fuzz("st.safetensors", 20240601, 1200, base, headerEnd, [{ pos: 0, size: 8 }, { pos: 4, size: 4 }], openSafetensors, structured);
    expect(outcomes.get("ok") ?? 0).toBeGreaterThan(10);
    expect(outcomes.get("E_FORMAT") ?? 0).toBeGreaterThan(200);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 30_000);

  it("GGUF: 1,200 mutated files (hand-assembled base) open and read, or fail with a TersorError", async () => {
    const started = Date.now();
    const { bytes, fields, headerEnd } = handGguf();
    // The base must be valid.
    await writeFile(join(dir, "base.gguf"), bytes);
    const g = await openGguf(join(dir, "base.gguf"));
    expect(g.tensors.length).toBe(5);
    await g.close();
    const outcomes = await fuzz("g.gguf", 77, 1200, bytes, headerEnd, fields, openGguf);
    expect(outcomes.get("ok") ?? 0).toBeGreaterThan(50);
    expect(outcomes.get("E_FORMAT") ?? 0).toBeGreaterThan(100);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 30_000);

  it("GGUF: 400 mutated files written by our writer", async () => {
    const p = join(dir, "ours.gguf");
    await writeGguf(p, {
      metadata: GgufMetadata.from({ name: "ours", n: 3, arr: ["x", "yy"], nums: Float32Array.from([1, 2]) }),
      tensors: { a: Tensor.f32([1, 2, 3, 4], [2, 2]), q: Tensor.fromBytes("q4_1", [32], new Uint8Array(20)) },
    });
    const base = Buffer.from(await readFile(p));
    const fields: Field[] = [8, 16].map((pos) => ({ pos, size: 8 as const }));
    const outcomes = await fuzz("o.gguf", 5, 400, base, 200, fields, openGguf);
    expect(outcomes.get("ok") ?? 0).toBeGreaterThan(10);
  }, 30_000);

  it("JSONL: 300 random byte streams never raise anything but TersorError", async () => {
    const rng = new Rng(99);
    const alphabet = Buffer.from('{}[]":,0123456789 \r\n\n\nabc\\u', "latin1");
    for (let i = 0; i < 300; i++) {
      const len = rng.nextBelow(400);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rng.nextBelow(4) === 0 ? rng.nextBelow(256) : alphabet[rng.nextBelow(alphabet.length)]!;
      async function* chunks() {
        let at = 0;
        while (at < b.byteLength) {
          const n = 1 + rng.nextBelow(32);
          yield b.subarray(at, at + n);
          at += n;
        }
      }
      const skip = readJsonl(chunks(), { onBadLine: "skip", maxLineBytes: 64 });
      for await (const _ of skip) void _;
      expect(skip.stats.records + skip.stats.skipped + skip.stats.empty).toBe(skip.stats.lines);
      try {
        for await (const _ of readJsonl(chunks(), { maxLineBytes: 64 })) void _;
      } catch (e) {
        expect(e).toBeInstanceOf(TersorError);
      }
    }
  });
});
