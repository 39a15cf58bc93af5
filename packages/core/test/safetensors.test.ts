import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Tensor, TersorError, openSafetensors, openSafetensorsDir, writeSafetensors } from "../src/index.js";

// ---------------------------------------------------------------------------------------------
// An independent minimal safetensors writer: plain JSON + Buffer, no code shared with the library.
// ---------------------------------------------------------------------------------------------
interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

function handSafetensors(entries: RawEntry[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header["__metadata__"] = metadata;
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.byteLength] };
    off += e.bytes.byteLength;
  }
  return rawSafetensors(JSON.stringify(header), Buffer.concat(entries.map((e) => e.bytes)));
}

/** Length prefix + header text (unpadded) + data. */
function rawSafetensors(headerJson: string | Uint8Array, data: Uint8Array = new Uint8Array(0), claimedLength?: bigint): Buffer {
  const h = typeof headerJson === "string" ? Buffer.from(headerJson, "utf8") : Buffer.from(headerJson);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(claimedLength ?? BigInt(h.byteLength));
  return Buffer.concat([len, h, data]);
}

function le(values: number[], kind: "f32" | "f64" | "i16" | "i32" | "u16" | "u8" | "i8"): Uint8Array {
  const size = { f32: 4, f64: 8, i16: 2, i32: 4, u16: 2, u8: 1, i8: 1 }[kind];
  const b = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    if (kind === "f32") b.writeFloatLE(v, i * 4);
    else if (kind === "f64") b.writeDoubleLE(v, i * 8);
    else if (kind === "i16") b.writeInt16LE(v, i * 2);
    else if (kind === "i32") b.writeInt32LE(v, i * 4);
    else if (kind === "u16") b.writeUInt16LE(v, i * 2);
    else if (kind === "u8") b.writeUInt8(v, i);
    else b.writeInt8(v, i);
  });
  return b;
}

function i64(values: bigint[]): Uint8Array {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigInt64LE(v, i * 8));
  return b;
}

let dir: string;
let n = 0;
const tmp = (name = "t.safetensors") => join(dir, `${n++}-${name}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-st-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectError(p: Promise<unknown>, code: string, pattern: RegExp): Promise<TersorError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    const err = e as TersorError;
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(pattern);
    return err;
  }
  throw new Error(`expected a TersorError ${code} matching ${pattern}`);
}

async function openBytes(bytes: Uint8Array) {
  const p = tmp();
  await writeFile(p, bytes);
  return openSafetensors(p);
}

describe("safetensors reader on independently written files", () => {
  it("reads every mapped dtype, lists the others, and keeps metadata", async () => {
    const entries: RawEntry[] = [
      { name: "w.f32", dtype: "F32", shape: [2, 3], bytes: le([1, -2, 3.5, 0, 1e-3, 42], "f32") },
      { name: "w.f16", dtype: "F16", shape: [2], bytes: le([0x3c00, 0xc000], "u16") },
      { name: "w.bf16", dtype: "BF16", shape: [1, 2], bytes: le([0x3f80, 0x4000], "u16") },
      { name: "w.f64", dtype: "F64", shape: [2], bytes: le([Math.PI, -1], "f64") },
      { name: "i.i64", dtype: "I64", shape: [3], bytes: i64([1n, -2n, 9007199254740993n]) },
      { name: "i.i32", dtype: "I32", shape: [2], bytes: le([-7, 2147483647], "i32") },
      { name: "i.i16", dtype: "I16", shape: [2], bytes: le([-300, 300], "i16") },
      { name: "i.i8", dtype: "I8", shape: [3], bytes: le([-128, 0, 127], "i8") },
      { name: "u.u8", dtype: "U8", shape: [2], bytes: le([0, 255], "u8") },
      { name: "b.bool", dtype: "BOOL", shape: [3], bytes: le([1, 0, 1], "u8") },
      { name: "x.u16", dtype: "U16", shape: [2], bytes: le([65535, 1], "u16") },
      { name: "x.f8", dtype: "F8_E4M3", shape: [4], bytes: le([1, 2, 3, 4], "u8") },
      { name: "x.u64", dtype: "U64", shape: [1], bytes: i64([-1n]) },
      { name: "empty", dtype: "F32", shape: [0, 5], bytes: new Uint8Array(0) },
      { name: "scalar", dtype: "F32", shape: [], bytes: le([7], "f32") },
    ];
    const f = await openBytes(handSafetensors(entries, { format: "pt", note: "ünïcode ✓" }));
    try {
      expect(f.metadata).toEqual({ format: "pt", note: "ünïcode ✓" });
      expect(f.tensors.map((t) => t.name)).toEqual(entries.map((e) => e.name));
      const w = await f.read("w.f32");
      expect(w.dtype).toBe("f32");
      expect(w.shape).toEqual([2, 3]);
      expect(Array.from(w.data as Float32Array)).toEqual([1, -2, 3.5, 0, Math.fround(1e-3), 42]);
      expect(Array.from((await f.read("w.f16")).data as Uint16Array)).toEqual([0x3c00, 0xc000]);
      expect((await f.read("w.f16")).toFloat32Array()).toEqual(Float32Array.from([1, -2]));
      expect((await f.read("w.bf16")).toFloat32Array()).toEqual(Float32Array.from([1, 2]));
      expect(Array.from((await f.read("w.f64")).data as Float64Array)).toEqual([Math.PI, -1]);
      expect(Array.from((await f.read("i.i64")).data as BigInt64Array)).toEqual([1n, -2n, 9007199254740993n]);
      expect(Array.from((await f.read("i.i32")).data as Int32Array)).toEqual([-7, 2147483647]);
      expect(Array.from((await f.read("i.i16")).data as Int16Array)).toEqual([-300, 300]);
      expect(Array.from((await f.read("i.i8")).data as Int8Array)).toEqual([-128, 0, 127]);
      expect(Array.from((await f.read("u.u8")).data as Uint8Array)).toEqual([0, 255]);
      const b = await f.read("b.bool");
      expect(b.dtype).toBe("bool");
      expect(Array.from(b.data as Uint8Array)).toEqual([1, 0, 1]);
      expect((await f.read("empty")).shape).toEqual([0, 5]);
      const s = await f.read("scalar");
      expect(s.shape).toEqual([]);
      expect(Array.from(s.data as Float32Array)).toEqual([7]);

      const u16 = f.get("x.u16")!;
      expect(u16.dtype).toBe("U16");
      expect(u16.tersorDType).toBeUndefined();
      await expectError(f.read("x.u16"), "E_DTYPE", /U16.*readBytes/);
      await expectError(f.read("x.f8"), "E_DTYPE", /F8_E4M3/);
      expect(Array.from(await f.readBytes("x.u16"))).toEqual([0xff, 0xff, 1, 0]);
      expect(Array.from(await f.readBytes("x.f8"))).toEqual([1, 2, 3, 4]);
      expect((await f.readBytes("x.u64")).byteLength).toBe(8);
      await expectError(f.read("nope"), "E_RANGE", /no tensor named "nope"/);

      const info = f.get("i.i32")!;
      expect(info.byteLength).toBe(8);
      expect(info.byteOffset).toBe(f.dataOffset + info.dataOffsets[0]);
    } finally {
      await f.close();
      await f.close(); // idempotent
    }
  });

  it("lists tensors in offset order whatever the JSON key order, and allows gaps", async () => {
    const header = {
      b: { dtype: "U8", shape: [2], data_offsets: [4, 6] },
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
    };
    const f = await openBytes(rawSafetensors(JSON.stringify(header) + "   ", Uint8Array.from([1, 2, 9, 9, 3, 4, 5])));
    try {
      expect(f.tensors.map((t) => t.name)).toEqual(["a", "b"]);
      expect(Array.from((await f.read("b")).data as Uint8Array)).toEqual([3, 4]);
      expect(f.metadata).toEqual({});
    } finally {
      await f.close();
    }
  });

  it("accepts null __metadata__ and an empty header object", async () => {
    const f = await openBytes(rawSafetensors(`{"__metadata__":null}`));
    expect(f.tensors).toEqual([]);
    await f.close();
    const g = await openBytes(rawSafetensors(`{}`));
    expect(g.tensors.length).toBe(0);
    await g.close();
  });
});

describe("safetensors round trip through our writer", () => {
  it("writes a padded header, keeps the order given, and reads back bit for bit", async () => {
    const p = tmp();
    const tensors: Array<[string, Tensor]> = [
      ["z.last.first", Tensor.f32([1, 2, 3, 4, 5, 6], [3, 2])],
      ["a", new Tensor("f16", [3], Uint16Array.from([0x3c00, 0x7c00, 0x7e00]))],
      ["m", new Tensor("bf16", [2], Uint16Array.from([0x3f80, 0xbf80]))],
      ["ints", new Tensor("i64", [2], BigInt64Array.from([-1n, 1n << 62n]))],
      ["flags", new Tensor("bool", [4], Uint8Array.from([1, 0, 0, 1]))],
      ["bytes", new Tensor("u8", [1, 3], Uint8Array.from([7, 8, 9]))],
      ["d", new Tensor("f64", [1], Float64Array.from([Number.MIN_VALUE]))],
      ["i8", new Tensor("i8", [2], Int8Array.from([-1, 1]))],
      ["i16", new Tensor("i16", [2], Int16Array.from([-1, 1]))],
      ["i32", new Tensor("i32", [2], Int32Array.from([-1, 1]))],
      ["none", new Tensor("f32", [0])],
    ];
    await writeSafetensors(p, tensors, { format: "pt", "key with \"quotes\"": "value\n" });
    const raw = await readFile(p);
    const headerLen = Number(raw.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const headerText = raw.subarray(8, 8 + headerLen).toString("utf8");
    expect(headerText.trimEnd().endsWith("}")).toBe(true);
    // Independent parse of our output.
    const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    expect(header["ints"]).toEqual({ dtype: "I64", shape: [2], data_offsets: [header["m"]!.data_offsets[1], header["m"]!.data_offsets[1] + 16] });
    expect(header["z.last.first"]!.data_offsets[0]).toBe(0);
    expect(raw.byteLength).toBe(8 + headerLen + 24 + 6 + 4 + 16 + 4 + 3 + 8 + 2 + 4 + 8);

    const f = await openSafetensors(p);
    try {
      expect(f.tensors.map((t) => t.name)).toEqual(tensors.map(([name]) => name));
      expect(f.metadata).toEqual({ format: "pt", "key with \"quotes\"": "value\n" });
      for (const [name, t] of tensors) {
        const r = await f.read(name);
        expect(r.dtype).toBe(t.dtype);
        expect(r.shape).toEqual(t.shape);
        expect(Buffer.from(r.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
      }
    } finally {
      await f.close();
    }
  });

  it("writes a record in key order and leaves no temporary files", async () => {
    const sub = join(dir, "rec");
    const p = join(sub, "m.safetensors");
    await writeSafetensors(p, { b: Tensor.f32([1]), a: Tensor.f32([2, 3]) });
    const f = await openSafetensors(p);
    expect(f.tensors.map((t) => t.name)).toEqual(["b", "a"]);
    await f.close();
    expect(await readdir(sub)).toEqual(["m.safetensors"]);
  });

  it("refuses what safetensors cannot hold, writing nothing", async () => {
    const sub = join(dir, "refuse");
    await mkdir(sub);
    const p = join(sub, "x.safetensors");
    await expectError(writeSafetensors(p, { q: new Tensor("q8_0", [32]) }), "E_DTYPE", /q8_0/);
    await expectError(writeSafetensors(p, [["a", Tensor.f32([1])], ["a", Tensor.f32([2])]]), "E_RANGE", /twice/);
    await expectError(writeSafetensors(p, { __metadata__: Tensor.f32([1]) }), "E_RANGE", /reserved/);
    await expectError(writeSafetensors(p, {}, { n: 1 as unknown as string }), "E_FORMAT", /strings/);
    expect(await readdir(sub)).toEqual([]);
  });
});

describe("safetensors checkpoint directories", () => {
  async function shardedDir(name: string, index: unknown, shards: Record<string, Buffer>): Promise<string> {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    for (const [file, bytes] of Object.entries(shards)) await writeFile(join(d, file), bytes);
    if (index !== undefined) await writeFile(join(d, "model.safetensors.index.json"), typeof index === "string" ? index : JSON.stringify(index));
    return d;
  }
  const shard1 = () =>
    handSafetensors(
      [
        { name: "layers.0.w", dtype: "F32", shape: [2], bytes: le([1, 2], "f32") },
        { name: "embed", dtype: "I32", shape: [1], bytes: le([5], "i32") },
      ],
      { format: "pt" },
    );
  const shard2 = () => handSafetensors([{ name: "layers.1.w", dtype: "F32", shape: [2, 1], bytes: le([3, 4], "f32") }], { format: "pt", extra: "x" });
  const goodIndex = {
    metadata: { total_size: 20 },
    weight_map: {
      "layers.0.w": "model-00001-of-00002.safetensors",
      embed: "model-00001-of-00002.safetensors",
      "layers.1.w": "model-00002-of-00002.safetensors",
    },
  };

  it("merges the shards listed by the index", async () => {
    const d = await shardedDir("sharded", goodIndex, {
      "model-00001-of-00002.safetensors": shard1(),
      "model-00002-of-00002.safetensors": shard2(),
    });
    const m = await openSafetensorsDir(d);
    try {
      expect(m.files.length).toBe(2);
      expect(m.tensors.map((t) => t.name).sort()).toEqual(["embed", "layers.0.w", "layers.1.w"]);
      expect(m.indexMetadata).toEqual({ total_size: 20 });
      expect(m.metadata).toEqual({ format: "pt", extra: "x" });
      expect(Array.from((await m.read("layers.1.w")).data as Float32Array)).toEqual([3, 4]);
      expect(Array.from((await m.read("layers.0.w")).data as Float32Array)).toEqual([1, 2]);
      expect(Array.from((await m.read("embed")).data as Int32Array)).toEqual([5]);
      expect(m.get("layers.1.w")!.file).toMatch(/model-00002-of-00002\.safetensors$/);
      await expectError(m.read("missing"), "E_RANGE", /missing/);
    } finally {
      await m.close();
    }
  });

  it("opens a directory with a single model.safetensors", async () => {
    const d = await shardedDir("single", undefined, { "model.safetensors": shard1() });
    const m = await openSafetensorsDir(d);
    expect(m.tensors.map((t) => t.name)).toEqual(["layers.0.w", "embed"]);
    expect(Array.from((await m.read("embed")).data as Int32Array)).toEqual([5]);
    await m.close();
  });

  it("rejects inconsistent indexes", async () => {
    const s = { "model-00001-of-00002.safetensors": shard1(), "model-00002-of-00002.safetensors": shard2() };
    const missing = await shardedDir("missing-shard", goodIndex, { "model-00001-of-00002.safetensors": shard1() });
    await expectError(openSafetensorsDir(missing), "E_FORMAT", /model-00002-of-00002\.safetensors.*does not exist/);

    const wrong = await shardedDir("wrong-shard", { weight_map: { ...goodIndex.weight_map, embed: "model-00002-of-00002.safetensors" } }, s);
    await expectError(openSafetensorsDir(wrong), "E_FORMAT", /"embed".*no such tensor/);

    const dup = await shardedDir(
      "dup",
      { weight_map: { "layers.0.w": "a.safetensors", embed: "b.safetensors" } },
      { "a.safetensors": shard1(), "b.safetensors": shard1() },
    );
    await expectError(openSafetensorsDir(dup), "E_FORMAT", /appears in both/);

    const escape = await shardedDir("escape", { weight_map: { x: "../x.safetensors" } }, {});
    await expectError(openSafetensorsDir(escape), "E_FORMAT", /outside/);

    const notJson = await shardedDir("notjson", "{ weight_map: ", {});
    await expectError(openSafetensorsDir(notJson), "E_FORMAT", /not valid JSON/);

    const noMap = await shardedDir("nomap", { metadata: {} }, {});
    await expectError(openSafetensorsDir(noMap), "E_FORMAT", /weight_map/);

    const badShard = await shardedDir("badshard", { weight_map: { x: "a.safetensors" } }, { "a.safetensors": Buffer.from("nope") });
    await expectError(openSafetensorsDir(badShard), "E_FORMAT", /too short/);

    const empty = await shardedDir("empty", undefined, {});
    await expectError(openSafetensorsDir(empty), "E_FORMAT", /no model\.safetensors/);
    await expectError(openSafetensorsDir(join(dir, "does-not-exist")), "E_IO", /does-not-exist/);
  });
});

describe("safetensors reader rejects bad input", () => {
  const f32 = (name: string, begin: number, end: number, shape = [(end - begin) / 4]) => ({ [name]: { dtype: "F32", shape, data_offsets: [begin, end] } });
  const cases: Array<[string, () => Uint8Array, string, RegExp]> = [
    ["an empty file", () => new Uint8Array(0), "E_FORMAT", /0 bytes is too short/],
    ["a 7-byte file", () => new Uint8Array(7), "E_FORMAT", /too short/],
    ["a header claiming 10^12 bytes", () => rawSafetensors("{}", new Uint8Array(16), 10n ** 12n), "E_FORMAT", /header length 1000000000000 exceeds/],
    ["a header claiming 2^64-1 bytes", () => rawSafetensors("{}", new Uint8Array(0), 2n ** 64n - 1n), "E_FORMAT", /exceeds/],
    ["a header longer than the file", () => rawSafetensors("{}", new Uint8Array(0), 1000n), "E_FORMAT", /past the end.*truncated/],
    ["a header that is not UTF-8", () => rawSafetensors(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])), "E_FORMAT", /not valid UTF-8/],
    ["a header that is not JSON", () => rawSafetensors("{not json"), "E_FORMAT", /not valid JSON/],
    ["a JSON array header", () => rawSafetensors("[1, 2]"), "E_FORMAT", /must be a JSON object/],
    ["a JSON null header", () => rawSafetensors("null"), "E_FORMAT", /must be a JSON object/],
    ["an unknown dtype", () => rawSafetensors(JSON.stringify({ x: { dtype: "F12", shape: [1], data_offsets: [0, 2] } }), new Uint8Array(2)), "E_DTYPE", /unknown safetensors dtype "F12"/],
    ["a lower-case dtype", () => rawSafetensors(JSON.stringify({ x: { dtype: "f32", shape: [1], data_offsets: [0, 4] } }), new Uint8Array(4)), "E_DTYPE", /"f32"/],
    ["a missing dtype", () => rawSafetensors(JSON.stringify({ x: { shape: [1], data_offsets: [0, 4] } }), new Uint8Array(4)), "E_FORMAT", /dtype/],
    ["a negative dimension", () => rawSafetensors(JSON.stringify(f32("x", 0, 4, [-1])), new Uint8Array(4)), "E_FORMAT", /shape/],
    ["a fractional dimension", () => rawSafetensors(JSON.stringify(f32("x", 0, 4, [1.5])), new Uint8Array(4)), "E_FORMAT", /shape/],
    ["an unsafe dimension", () => rawSafetensors(JSON.stringify(f32("x", 0, 4, [2 ** 60])), new Uint8Array(4)), "E_FORMAT", /shape/],
    ["a shape that overflows", () => rawSafetensors(JSON.stringify(f32("x", 0, 4, [2 ** 40, 2 ** 40])), new Uint8Array(4)), "E_FORMAT", /too many elements/],
    ["a string shape", () => rawSafetensors(`{"x":{"dtype":"F32","shape":"[1]","data_offsets":[0,4]}}`, new Uint8Array(4)), "E_FORMAT", /shape/],
    ["three data_offsets", () => rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, new Uint8Array(8)), "E_FORMAT", /two non-negative integers/],
    ["negative data_offsets", () => rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, new Uint8Array(8)), "E_FORMAT", /data_offsets/],
    ["data_offsets that end before they begin", () => rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, new Uint8Array(8)), "E_FORMAT", /end before they begin/],
    ["data beyond the buffer", () => rawSafetensors(JSON.stringify(f32("x", 0, 8)), new Uint8Array(4)), "E_FORMAT", /beyond the 4-byte data buffer/],
    ["a size that does not match the shape", () => rawSafetensors(JSON.stringify(f32("x", 0, 8, [3])), new Uint8Array(8)), "E_FORMAT", /hold 8 bytes but F32\[3\] needs 12/],
    [
      "overlapping tensors",
      () => rawSafetensors(JSON.stringify({ ...f32("a", 0, 8), ...f32("b", 4, 12) }), new Uint8Array(12)),
      "E_FORMAT",
      /"a" \[0, 8\] and "b" \[4, 12\] overlap/,
    ],
    [
      "two tensors at the same offsets",
      () => rawSafetensors(JSON.stringify({ ...f32("a", 0, 8), ...f32("b", 0, 8) }), new Uint8Array(8)),
      "E_FORMAT",
      /overlap/,
    ],
    ["a non-string metadata value", () => rawSafetensors(`{"__metadata__":{"n":3}}`), "E_FORMAT", /"__metadata__" value for "n" must be a string/],
    ["array metadata", () => rawSafetensors(`{"__metadata__":["a"]}`), "E_FORMAT", /__metadata__/],
    ["an entry that is not an object", () => rawSafetensors(`{"x":5}`), "E_FORMAT", /entry must be an object/],
    ["F4 with an odd element count", () => rawSafetensors(`{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, new Uint8Array(2)), "E_FORMAT", /whole number of bytes/],
  ];
  for (const [what, bytes, code, pattern] of cases) {
    it(`rejects ${what}`, async () => {
      await expectError(openBytes(bytes()), code, pattern);
    });
  }

  it("reports truncated files, whether cut in the header or in the data", async () => {
    const full = handSafetensors([
      { name: "a", dtype: "F32", shape: [4], bytes: le([1, 2, 3, 4], "f32") },
      { name: "b", dtype: "F32", shape: [4], bytes: le([5, 6, 7, 8], "f32") },
    ]);
    for (const cut of [3, 8, 20, full.byteLength - 30, full.byteLength - 1]) {
      const err = await expectError(openBytes(full.subarray(0, cut)), "E_FORMAT", /./);
      expect(err.message).toMatch(/too short|truncated|beyond|past the end|not valid JSON/);
    }
  });

  it("reports a file that shrinks after opening as truncated", async () => {
    const p = tmp();
    await writeFile(p, handSafetensors([{ name: "a", dtype: "F32", shape: [4], bytes: le([1, 2, 3, 4], "f32") }]));
    const f = await openSafetensors(p);
    try {
      const raw = await readFile(p);
      await writeFile(p, raw.subarray(0, raw.byteLength - 5));
      await expectError(f.read("a"), "E_FORMAT", /unexpected end of file/);
    } finally {
      await f.close();
    }
  });

  it("maps file-system errors to E_IO", async () => {
    await expectError(openSafetensors(join(dir, "no-such.safetensors")), "E_IO", /no-such\.safetensors/);
    await expectError(openSafetensors(dir), "E_IO", /not a regular file/);
  });
});
