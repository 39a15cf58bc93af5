import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type GgufArray, GgufMetadata, Tensor, TersorError, openGguf, writeGguf } from "../src/index.js";

// ---------------------------------------------------------------------------------------------
// An independent minimal GGUF writer: hand-assembled bytes, no code shared with the library.
// ---------------------------------------------------------------------------------------------
class Out {
  private parts: Buffer[] = [];
  len = 0;
  private push(b: Buffer) {
    this.parts.push(b);
    this.len += b.byteLength;
  }
  u8(v: number) {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.push(b);
  }
  i8(v: number) {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    this.push(b);
  }
  u16(v: number) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.push(b);
  }
  i16(v: number) {
    const b = Buffer.alloc(2);
    b.writeInt16LE(v);
    this.push(b);
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  f32(v: number) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  f64(v: number) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.push(b);
  }
  u64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    this.push(b);
  }
  i64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(v);
    this.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(BigInt(b.byteLength));
    this.push(b);
  }
  raw(b: Uint8Array) {
    this.push(Buffer.from(b));
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Type ids as the GGUF spec numbers them. */
const T = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
interface HArr {
  et: number;
  items: unknown[];
}

function value(o: Out, t: number, v: unknown): void {
  switch (t) {
    case T.u8:
      return o.u8(v as number);
    case T.i8:
      return o.i8(v as number);
    case T.u16:
      return o.u16(v as number);
    case T.i16:
      return o.i16(v as number);
    case T.u32:
      return o.u32(v as number);
    case T.i32:
      return o.i32(v as number);
    case T.f32:
      return o.f32(v as number);
    case T.bool:
      return o.u8(v ? 1 : 0);
    case T.string:
      return o.str(v as string);
    case T.u64:
      return o.u64(v as bigint);
    case T.i64:
      return o.i64(v as bigint);
    case T.f64:
      return o.f64(v as number);
    case T.array: {
      const a = v as HArr;
      o.u32(a.et);
      o.u64(BigInt(a.items.length));
      for (const x of a.items) value(o, a.et, x);
      return;
    }
    default:
      throw new Error(`bad type ${t}`);
  }
}

interface HTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
  offset?: number;
}

function handGguf(opts: { version?: number; kvs: Array<[string, number, unknown]>; tensors: HTensor[]; alignment?: number }): Buffer {
  const align = opts.alignment ?? 32;
  const o = new Out();
  o.raw(Buffer.from("GGUF", "latin1"));
  o.u32(opts.version ?? 3);
  o.u64(BigInt(opts.tensors.length));
  o.u64(BigInt(opts.kvs.length));
  for (const [k, t, v] of opts.kvs) {
    o.str(k);
    o.u32(t);
    value(o, t, v);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of opts.tensors) {
    off = Math.ceil(off / align) * align;
    offsets.push(t.offset ?? off);
    o.str(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(BigInt(d));
    o.u32(t.type);
    o.u64(BigInt(t.offset ?? off));
    off += t.data.byteLength;
  }
  const headerEnd = o.len;
  const dataStart = Math.ceil(headerEnd / align) * align;
  const data = Buffer.alloc(Math.ceil(off / align) * align);
  opts.tensors.forEach((t, i) => {
    if (offsets[i]! + t.data.byteLength <= data.byteLength) data.set(t.data, offsets[i]!);
  });
  return Buffer.concat([o.bytes(), Buffer.alloc(dataStart - headerEnd), data]);
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + 3) & 0xff;
  return b;
}

function f32le(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

let dir: string;
let n = 0;
const tmp = (name = "m.gguf") => join(dir, `${n++}-${name}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectError(p: Promise<unknown>, code: string, re: RegExp): Promise<TersorError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    const err = e as TersorError;
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(re);
    return err;
  }
  throw new Error(`expected a TersorError ${code} matching ${re}`);
}

async function openBytes(bytes: Uint8Array) {
  const p = tmp();
  await writeFile(p, bytes);
  return openGguf(p);
}

const everyType: Array<[string, number, unknown]> = [
  ["general.architecture", T.string, "llama"],
  ["general.name", T.string, "tïny ✓"],
  ["t.u8", T.u8, 255],
  ["t.i8", T.i8, -128],
  ["t.u16", T.u16, 65535],
  ["t.i16", T.i16, -32768],
  ["t.u32", T.u32, 4294967295],
  ["t.i32", T.i32, -2147483648],
  ["t.f32", T.f32, 0.1],
  ["t.bool.true", T.bool, true],
  ["t.bool.false", T.bool, false],
  ["t.u64", T.u64, 18446744073709551615n],
  ["t.i64", T.i64, -9223372036854775808n],
  ["t.f64", T.f64, Math.E],
  ["t.empty.string", T.string, ""],
  ["a.u8", T.array, { et: T.u8, items: [1, 2, 255] }],
  ["a.i8", T.array, { et: T.i8, items: [-1, 1] }],
  ["a.u16", T.array, { et: T.u16, items: [1, 65535] }],
  ["a.i16", T.array, { et: T.i16, items: [-2, 2] }],
  ["a.u32", T.array, { et: T.u32, items: [7] }],
  ["a.i32", T.array, { et: T.i32, items: [-5, 0, 5] }],
  ["a.f32", T.array, { et: T.f32, items: [0.5, -1.25] }],
  ["a.bool", T.array, { et: T.bool, items: [true, false, true] }],
  ["a.string", T.array, { et: T.string, items: ["<s>", "</s>", "", "▁hello"] }],
  ["a.u64", T.array, { et: T.u64, items: [0n, 2n ** 63n] }],
  ["a.i64", T.array, { et: T.i64, items: [-1n, 1n] }],
  ["a.f64", T.array, { et: T.f64, items: [1e300] }],
  ["a.empty", T.array, { et: T.i32, items: [] }],
  [
    "a.nested",
    T.array,
    {
      et: T.array,
      items: [
        { et: T.i16, items: [1, 2] },
        { et: T.string, items: ["x"] },
        { et: T.array, items: [{ et: T.u8, items: [9] }] },
      ],
    },
  ],
];

const handTensors: HTensor[] = [
  { name: "tok_embd.weight", dims: [4, 3], type: 0, data: f32le([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]) }, // f32, shape [3, 4]
  { name: "f16", dims: [2], type: 1, data: Uint8Array.from([0x00, 0x3c, 0x00, 0xc0]) },
  { name: "blk.0.attn_q.weight", dims: [64, 2], type: 2, data: pattern(4 * 18, 1) }, // q4_0: 2 rows × 2 blocks
  { name: "blk.0.ffn.weight", dims: [256, 1], type: 12, data: pattern(144, 2) }, // q4_k
  { name: "q8.4d", dims: [32, 1, 2, 1], type: 8, data: pattern(2 * 34, 3) }, // q8_0
  { name: "iq4", dims: [32], type: 20, data: pattern(18, 4) }, // iq4_nl
  { name: "i8", dims: [5], type: 24, data: Uint8Array.from([0xff, 0, 1, 0x7f, 0x80]) },
  { name: "i16", dims: [1], type: 25, data: Uint8Array.from([0xfe, 0xff]) },
  { name: "i32", dims: [1], type: 26, data: Uint8Array.from([1, 0, 0, 0]) },
  { name: "i64", dims: [1], type: 27, data: Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) },
  { name: "f64", dims: [1], type: 28, data: new Uint8Array(new Float64Array([0.25]).buffer) },
  { name: "bf16", dims: [2, 1], type: 30, data: Uint8Array.from([0x80, 0x3f, 0x00, 0x40]) },
  { name: "empty", dims: [0, 3], type: 0, data: new Uint8Array(0) },
];

describe("GGUF reader on an independently written file", () => {
  for (const [version, alignment] of [
    [3, undefined],
    [3, 64],
    [2, undefined],
  ] as const) {
    it(`reads every metadata type and tensor type (v${version}, alignment ${alignment ?? "default"})`, async () => {
      const kvs = [...everyType];
      if (alignment !== undefined) kvs.push(["general.alignment", T.u32, alignment]);
      const bytes = handGguf({ version, kvs, tensors: handTensors, ...(alignment ? { alignment } : {}) });
      const g = await openBytes(bytes);
      try {
        expect(g.version).toBe(version);
        expect(g.alignment).toBe(alignment ?? 32);
        expect(g.dataOffset % g.alignment).toBe(0);
        const m = g.metadata;
        expect(m.size).toBe(kvs.length);
        expect([...m.keys()]).toEqual(kvs.map(([k]) => k));
        expect(m.get("general.architecture")).toBe("llama");
        expect(m.type("general.architecture")).toBe("string");
        expect(m.get("general.name")).toBe("tïny ✓");
        expect(m.get("t.u8")).toBe(255);
        expect(m.type("t.u8")).toBe("u8");
        expect(m.get("t.i8")).toBe(-128);
        expect(m.get("t.u16")).toBe(65535);
        expect(m.get("t.i16")).toBe(-32768);
        expect(m.get("t.u32")).toBe(4294967295);
        expect(m.get("t.i32")).toBe(-2147483648);
        expect(m.get("t.f32")).toBe(Math.fround(0.1));
        expect(m.type("t.f32")).toBe("f32");
        expect(m.get("t.bool.true")).toBe(true);
        expect(m.get("t.bool.false")).toBe(false);
        expect(m.get("t.u64")).toBe(18446744073709551615n);
        expect(m.type("t.u64")).toBe("u64");
        expect(m.get("t.i64")).toBe(-9223372036854775808n);
        expect(m.type("t.i64")).toBe("i64");
        expect(m.get("t.f64")).toBe(Math.E);
        expect(m.get("t.empty.string")).toBe("");
        const arr = (k: string) => m.get(k) as GgufArray;
        expect(m.type("a.u8")).toBe("array");
        expect(arr("a.u8").itemType).toBe("u8");
        expect(Array.from(arr("a.u8").values as Uint8Array)).toEqual([1, 2, 255]);
        expect(Array.from(arr("a.i8").values as Int8Array)).toEqual([-1, 1]);
        expect(Array.from(arr("a.u16").values as Uint16Array)).toEqual([1, 65535]);
        expect(Array.from(arr("a.i16").values as Int16Array)).toEqual([-2, 2]);
        expect(Array.from(arr("a.u32").values as Uint32Array)).toEqual([7]);
        expect(Array.from(arr("a.i32").values as Int32Array)).toEqual([-5, 0, 5]);
        expect(Array.from(arr("a.f32").values as Float32Array)).toEqual([0.5, -1.25]);
        expect(arr("a.bool").values).toEqual([true, false, true]);
        expect(arr("a.string").values).toEqual(["<s>", "</s>", "", "▁hello"]);
        expect(Array.from(arr("a.u64").values as BigUint64Array)).toEqual([0n, 2n ** 63n]);
        expect(Array.from(arr("a.i64").values as BigInt64Array)).toEqual([-1n, 1n]);
        expect(Array.from(arr("a.f64").values as Float64Array)).toEqual([1e300]);
        expect(arr("a.empty").values.length).toBe(0);
        const nested = arr("a.nested");
        expect(nested.itemType).toBe("array");
        const inner = nested.values as readonly GgufArray[];
        expect(inner[0]!.itemType).toBe("i16");
        expect(Array.from(inner[0]!.values as Int16Array)).toEqual([1, 2]);
        expect(inner[1]!.values).toEqual(["x"]);
        const deep = inner[2]!.values as readonly GgufArray[];
        expect(deep[0]!.itemType).toBe("u8");
        expect(Array.from(deep[0]!.values as Uint8Array)).toEqual([9]);

        expect(g.tensors.map((t) => t.name)).toEqual(handTensors.map((t) => t.name));
        const emb = await g.read("tok_embd.weight");
        expect(emb.dtype).toBe("f32");
        expect(emb.shape).toEqual([3, 4]);
        expect(Array.from(emb.data as Float32Array)).toEqual([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);
        const info = g.get("blk.0.attn_q.weight")!;
        expect(info.dims).toEqual([64, 2]);
        expect(info.shape).toEqual([2, 64]);
        expect(info.type.quantized).toBe(true);
        expect(info.byteLength).toBe(72);
        for (const h of handTensors) {
          const t = await g.read(h.name);
          const want = { 0: "f32", 1: "f16", 2: "q4_0", 12: "q4_k", 8: "q8_0", 20: "iq4_nl", 24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64", 30: "bf16" }[h.type];
          expect(t.dtype).toBe(want);
          expect(t.shape).toEqual([...h.dims].reverse());
          expect(Buffer.from(t.bytes()).equals(Buffer.from(h.data))).toBe(true);
          expect(Buffer.from(await g.readBytes(h.name)).equals(Buffer.from(h.data))).toBe(true);
        }
        expect((await g.read("f16")).toFloat32Array()).toEqual(Float32Array.from([1, -2]));
        expect((await g.read("bf16")).toFloat32Array()).toEqual(Float32Array.from([1, 2]));
        expect(Array.from((await g.read("i64")).data as BigInt64Array)).toEqual([-1n]);
        expect((await g.read("q8.4d")).shape).toEqual([1, 2, 1, 32]);
        await expectError(g.read("nope"), "E_RANGE", /no tensor named "nope"/);
      } finally {
        await g.close();
      }
    });
  }

  it("reads a header larger than the read window (long strings and a big vocabulary)", async () => {
    const tokens = Array.from({ length: 30_000 }, (_, i) => `tok${i}`.repeat(8));
    const long = "x".repeat(3 << 20); // 3 MiB: bigger than one window
    const bytes = handGguf({
      kvs: [
        ["tokenizer.ggml.tokens", T.array, { et: T.string, items: tokens }],
        ["chat_template", T.string, long],
        ["scores", T.array, { et: T.f32, items: Array.from({ length: 400_000 }, (_, i) => i) }],
      ],
      tensors: [{ name: "w", dims: [2], type: 0, data: f32le([1, 2]) }],
    });
    const g = await openBytes(bytes);
    try {
      expect((g.metadata.get("tokenizer.ggml.tokens") as GgufArray).values).toEqual(tokens);
      expect(g.metadata.get("chat_template")).toBe(long);
      const scores = (g.metadata.get("scores") as GgufArray).values as Float32Array;
      expect(scores.length).toBe(400_000);
      expect(scores[399_999]).toBe(399_999);
      expect(Array.from((await g.read("w")).data as Float32Array)).toEqual([1, 2]);
    } finally {
      await g.close();
    }
  });
});

describe("GGUF round trip through our writer", () => {
  it("writes metadata of every type and element and quantized tensors, aligned", async () => {
    const md = new GgufMetadata()
      .set("general.architecture", "string", "test")
      .set("general.alignment", "u32", 128)
      .set("u8", "u8", 200)
      .set("i8", "i8", -3)
      .set("u16", "u16", 60000)
      .set("i16", "i16", -30000)
      .set("u32", "u32", 3_000_000_000)
      .set("i32", "i32", -2_000_000_000)
      .set("f32", "f32", 1.5)
      .set("bool", "bool", true)
      .set("u64", "u64", 2n ** 64n - 1n)
      .set("i64", "i64", -(2n ** 63n))
      .set("f64", "f64", 1 / 3)
      .set("tokens", "array", { itemType: "string", values: ["a", "b", "ç"] })
      .set("types", "array", { itemType: "i32", values: [1, 2, 3] })
      .set("scores", "array", { itemType: "f32", values: Float32Array.from([0.5, -0.5]) })
      .set("flags", "array", { itemType: "bool", values: [false, true] })
      .set("big", "array", { itemType: "u64", values: [1n, 2n] })
      .set("nested", "array", { itemType: "array", values: [{ itemType: "u8", values: [1] }, { itemType: "string", values: [] }] });
    const tensors: Array<[string, Tensor]> = [
      ["f32", Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3])],
      ["q4_0", Tensor.fromBytes("q4_0", [3, 64], pattern(6 * 18, 9))],
      ["q6_k", Tensor.fromBytes("q6_k", [256], pattern(210, 8))],
      ["f16", new Tensor("f16", [1], Uint16Array.from([0x3c00]))],
      ["i64", new Tensor("i64", [2], BigInt64Array.from([-5n, 5n]))],
      ["scalar", Tensor.f32([42], [])],
      ["4d", new Tensor("i8", [1, 2, 1, 3], Int8Array.from([1, 2, 3, 4, 5, 6]))],
    ];
    const p = tmp();
    await writeGguf(p, { metadata: md, tensors });
    const raw = await readFile(p);
    expect(raw.subarray(0, 4).toString("latin1")).toBe("GGUF");
    expect(raw.readUInt32LE(4)).toBe(3);
    expect(raw.readBigUInt64LE(8)).toBe(BigInt(tensors.length));
    expect(raw.readBigUInt64LE(16)).toBe(BigInt(md.size));
    expect(raw.byteLength % 128).toBe(0);
    const g = await openGguf(p);
    try {
      expect(g.alignment).toBe(128);
      expect(g.dataOffset % 128).toBe(0);
      for (const t of g.tensors) expect(t.offset % 128).toBe(0);
      for (const [k, e] of md) {
        expect(g.metadata.type(k)).toBe(e.type);
        expect(g.metadata.get(k)).toEqual(e.value);
      }
      expect(g.metadata.get("f32")).toBe(1.5);
      expect(g.metadata.get("u64")).toBe(2n ** 64n - 1n);
      for (const [name, t] of tensors) {
        const r = await g.read(name);
        expect(r.dtype).toBe(t.dtype);
        expect(r.shape).toEqual(t.shape);
        expect(Buffer.from(r.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
      }
      expect(g.get("q4_0")!.dims).toEqual([64, 3]);
      expect(g.get("scalar")!.dims).toEqual([]);
    } finally {
      await g.close();
    }
  });

  it("infers types from plain values, writes v2 on request, and round trips our output again", async () => {
    const p = tmp();
    await writeGguf(p, {
      version: 2,
      metadata: { name: "m", n: 7, neg: -1, frac: 0.25, big: 2 ** 40, b: false, ids: [1, 2], fs: [0.5, 1], words: ["a"], u: 5n },
      tensors: { w: Tensor.f32([1, 2]) },
    });
    const g = await openGguf(p);
    const types = Object.fromEntries([...g.metadata].map(([k, e]) => [k, e.type]));
    expect(g.version).toBe(2);
    expect(types).toEqual({ name: "string", n: "u32", neg: "i32", frac: "f32", big: "i64", b: "bool", ids: "array", fs: "array", words: "array", u: "u64" });
    expect((g.metadata.get("ids") as GgufArray).itemType).toBe("i32");
    expect((g.metadata.get("fs") as GgufArray).itemType).toBe("f32");
    expect(g.metadata.get("big")).toBe(2n ** 40n);
    // Write what we read back out (metadata object and tensors) and compare bytes.
    const p2 = tmp();
    await writeGguf(p2, { version: 2, metadata: g.metadata, tensors: [["w", await g.read("w")]] });
    await g.close();
    expect((await readFile(p2)).equals(await readFile(p))).toBe(true);
  });

  it("refuses what GGUF cannot hold, writing nothing", async () => {
    const sub = join(dir, "refuse");
    await mkdir(sub);
    const p = join(sub, "x.gguf");
    await expectError(writeGguf(p, { tensors: { u: new Tensor("u8", [2]) } }), "E_DTYPE", /u8/);
    await expectError(writeGguf(p, { tensors: { r5: new Tensor("f32", [1, 1, 1, 1, 1]) } }), "E_SHAPE", /at most 4/);
    await expectError(writeGguf(p, { tensors: { q: new Tensor("q4_0", [2, 16]) } }), "E_SHAPE", /block size 32/);
    await expectError(writeGguf(p, { metadata: { "general.alignment": 3 } }), "E_RANGE", /alignment/);
    expect(() => new GgufMetadata().set("x", "u8", 256)).toThrow(/u8/);
    expect(() => new GgufMetadata().set("x", "i64", 2n ** 63n)).toThrow(TersorError);
    expect(() => new GgufMetadata().set("x", "array", { itemType: "u16", values: [1, -1] })).toThrow(/x.*\[1\]/);
    expect(() => GgufMetadata.from({ mixed: [1, "a"] })).toThrow(/mixed/);
    expect(await readdir(sub)).toEqual([]);
  });
});

describe("GGUF reader rejects bad input", () => {
  const base = () => ({ kvs: [["general.architecture", T.string, "llama"]] as Array<[string, number, unknown]>, tensors: [{ name: "w", dims: [4], type: 0, data: f32le([1, 2, 3, 4]) }] as HTensor[] });
  /** A header with raw fields after the magic and version. */
  const header = (build: (o: Out) => void, version = 3) => {
    const o = new Out();
    o.raw(Buffer.from("GGUF", "latin1"));
    o.u32(version);
    build(o);
    return Buffer.concat([o.bytes(), Buffer.alloc(64)]);
  };

  const cases: Array<[string, () => Uint8Array, string, RegExp]> = [
    ["an empty file", () => new Uint8Array(0), "E_FORMAT", /not a GGUF file/],
    ["a wrong magic", () => Buffer.concat([Buffer.from("GGML"), handGguf(base()).subarray(4)]), "E_FORMAT", /not a GGUF file \(magic 0x4c4d4747/],
    ["a safetensors file", () => Buffer.from("\x10\x00\x00\x00\x00\x00\x00\x00{}              ", "latin1"), "E_FORMAT", /not a GGUF file/],
    ["version 1", () => header((o) => o.u64(0n), 1), "E_FORMAT", /unsupported GGUF version 1/],
    ["version 4", () => header((o) => o.u64(0n), 4), "E_FORMAT", /unsupported GGUF version 4/],
    ["a big-endian file", () => header((o) => o.u64(0n), 0x03000000), "E_FORMAT", /big-endian/],
    ["a file cut after the magic", () => Buffer.from("GGUF\x03\x00", "latin1"), "E_FORMAT", /unexpected end of file.*version/],
    ["a tensor count larger than the file", () => header((o) => (o.u64(1n << 40n), o.u64(0n))), "E_FORMAT", /tensor count 1099511627776 cannot fit/],
    ["a tensor count of 2^64-1", () => header((o) => (o.u64(2n ** 64n - 1n), o.u64(0n))), "E_FORMAT", /tensor count .* cannot fit/],
    ["a metadata count larger than the file", () => header((o) => (o.u64(0n), o.u64(1n << 50n))), "E_FORMAT", /metadata count .* cannot fit/],
    ["a huge key length", () => header((o) => (o.u64(0n), o.u64(1n), o.u64(1n << 62n))), "E_FORMAT", /metadata key #0 length 4611686018427387904 runs past the end/],
    [
      "a huge string value length",
      () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(T.string), o.u64(2n ** 64n - 1n))),
      "E_FORMAT",
      /metadata "k" length 18446744073709551615 runs past the end/,
    ],
    [
      "a huge array count",
      () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(T.array), o.u32(T.u32), o.u64(1n << 60n))),
      "E_FORMAT",
      /array of 1152921504606846976 u32 elements cannot fit/,
    ],
    [
      "a huge nested array count",
      () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(T.array), o.u32(T.array), o.u64(1n), o.u32(T.string), o.u64(1n << 40n))),
      "E_FORMAT",
      /cannot fit/,
    ],
    ["an unknown value type", () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(13), o.u32(0))), "E_FORMAT", /unknown value type 13/],
    ["an unknown array element type", () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(T.array), o.u32(99), o.u64(0n))), "E_FORMAT", /unknown value type 99/],
    ["a bool byte of 2", () => header((o) => (o.u64(0n), o.u64(1n), o.str("k"), o.u32(T.bool), o.u8(2))), "E_FORMAT", /bool byte 2/],
    ["a key that is not UTF-8", () => header((o) => (o.u64(0n), o.u64(1n), o.u64(2n), o.raw(Uint8Array.from([0xc3, 0x28])), o.u32(T.u8), o.u8(0))), "E_FORMAT", /not valid UTF-8/],
    [
      "arrays nested 100 deep",
      () =>
        header((o) => {
          o.u64(0n);
          o.u64(1n);
          o.str("deep");
          o.u32(T.array);
          for (let i = 0; i < 100; i++) (o.u32(T.array), o.u64(1n));
          o.u32(T.u8);
          o.u64(0n);
        }),
      "E_FORMAT",
      /nest deeper/,
    ],
    [
      "duplicate keys",
      () => handGguf({ ...base(), kvs: [["k", T.u8, 1], ["k", T.u8, 2]] }),
      "E_FORMAT",
      /duplicate metadata key "k"/,
    ],
    [
      "duplicate tensor names",
      () => handGguf({ ...base(), tensors: [{ name: "w", dims: [1], type: 0, data: f32le([1]) }, { name: "w", dims: [1], type: 0, data: f32le([2]) }] }),
      "E_FORMAT",
      /duplicate tensor name "w"/,
    ],
    ["5 dimensions", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [1, 1, 1, 1, 1], type: 0, data: f32le([1]) }] }), "E_FORMAT", /5 dimensions; GGUF allows at most 4/],
    ["a retired ggml type", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [32], type: 4, data: new Uint8Array(20) }] }), "E_DTYPE", /unknown or retired ggml type 4/],
    ["an unknown ggml type", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [32], type: 1000, data: new Uint8Array(20) }] }), "E_DTYPE", /ggml type 1000/],
    ["ne0 not a multiple of the block", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [16, 2], type: 2, data: new Uint8Array(36) }] }), "E_FORMAT", /ne0 = 16 is not a multiple of the q4_0 block size 32/],
    ["a dimension above 2^53", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [2 ** 53 + 2], type: 24, data: new Uint8Array(0) }] }), "E_FORMAT", /too large/],
    ["dims whose product overflows", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [2 ** 30, 2 ** 30, 2 ** 30], type: 24, data: new Uint8Array(0) }] }), "E_FORMAT", /too many elements/],
    ["a misaligned offset", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [1], type: 0, data: f32le([1]), offset: 4 }] }), "E_FORMAT", /offset 4 is not a multiple of the alignment 32/],
    ["data beyond the file", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [1], type: 0, data: f32le([1]), offset: 1 << 20 }] }), "E_FORMAT", /extends beyond the end/],
    ["a tensor larger than the file", () => handGguf({ ...base(), tensors: [{ name: "w", dims: [1 << 30, 1 << 20], type: 0, data: f32le([1]) }] }), "E_FORMAT", /extends beyond the end/],
    [
      "overlapping tensors",
      () =>
        handGguf({
          ...base(),
          tensors: [
            { name: "a", dims: [16], type: 0, data: new Uint8Array(64), offset: 0 },
            { name: "b", dims: [16], type: 0, data: new Uint8Array(64), offset: 32 },
          ],
        }),
      "E_FORMAT",
      /"a" \[0, 64\) and "b" \[32, 96\) overlap/,
    ],
    ["a non-u32 alignment", () => handGguf({ ...base(), kvs: [["general.alignment", T.u64, 32n]] }), "E_FORMAT", /general.alignment must be a u32/],
    ["an alignment that is not a power of two", () => handGguf({ ...base(), kvs: [["general.alignment", T.u32, 48]], alignment: 48 }), "E_FORMAT", /not a power of two/],
    ["a zero alignment", () => handGguf({ ...base(), kvs: [["general.alignment", T.u32, 0]] }), "E_FORMAT", /not a power of two/],
  ];
  for (const [what, bytes, code, re] of cases) {
    it(`rejects ${what}`, async () => {
      await expectError(openBytes(bytes()), code, re);
    });
  }

  it("reports every truncation of a valid file as E_FORMAT", async () => {
    const full = handGguf({ kvs: everyType, tensors: handTensors });
    const p = tmp();
    for (let cut = 0; cut < full.byteLength; cut += cut < 600 ? 7 : 97) {
      await writeFile(p, full.subarray(0, cut));
      const err = await expectError(openGguf(p), "E_FORMAT", /./);
      expect(err.message).toMatch(/truncated|not a GGUF file|cannot fit|runs past|beyond|past the end|left/);
    }
  });

  it("maps file-system errors to E_IO", async () => {
    await expectError(openGguf(join(dir, "missing.gguf")), "E_IO", /missing\.gguf/);
    await expectError(openGguf(dir), "E_IO", /not a regular file/);
  });
});
