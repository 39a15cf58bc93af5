import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { openGguf, openGgufWriter } from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-gguf-write-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An independent minimal GGUF reader (scalars, strings, arrays of u32/f32/string; tensor infos). */
function minimalRead(b: Buffer) {
  let o = 0;
  const u32 = () => ((o += 4), b.readUInt32LE(o - 4));
  const u64 = () => ((o += 8), Number(b.readBigUInt64LE(o - 8)));
  const str = () => {
    const n = u64();
    o += n;
    return b.toString("utf8", o - n, o);
  };
  const val = (t: number): unknown => {
    if (t === 4) return u32();
    if (t === 5) return ((o += 4), b.readInt32LE(o - 4));
    if (t === 6) return ((o += 4), b.readFloatLE(o - 4));
    if (t === 8) return str();
    if (t === 9) {
      const it = u32();
      const n = u64();
      return Array.from({ length: n }, () => val(it));
    }
    throw new Error(`type ${t}`);
  };
  expect(b.toString("latin1", 0, 4)).toBe("GGUF");
  o = 4;
  const version = u32();
  const nt = u64();
  const nm = u64();
  const md: Record<string, unknown> = {};
  for (let i = 0; i < nm; i++) {
    const k = str();
    md[k] = val(u32());
  }
  const tensors = [];
  for (let i = 0; i < nt; i++) {
    const name = str();
    const nd = u32();
    const dims = Array.from({ length: nd }, () => u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const data = Math.ceil(o / 32) * 32;
  return { version, md, tensors, data };
}

describe("streaming GGUF writer", () => {
  it("round-trips through core's reader and an independent minimal reader", async () => {
    const path = join(dir, "m.gguf");
    const f32 = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const q8 = new Uint8Array(2 * 34).map((_, i) => (i * 7) & 0xff);
    const w = await openGgufWriter(path, { "general.architecture": "llama", "llama.block_count": 2, "tokenizer.ggml.tokens": ["a", "b", "c"], "x.f": { type: "f32", value: 0.25 } }, [
      { name: "a", shape: [2, 3], type: "f32" },
      { name: "b", shape: [2, 32], type: "q8_0" },
    ]);
    expect(w.sizes.get("b")).toBe(68);
    await w.writeTensor("a", new Uint8Array(f32.buffer));
    await w.writeTensor("b", q8);
    await w.commit();
    const g = await openGguf(path);
    expect(g.metadata.get("general.architecture")).toBe("llama");
    expect(g.tensors.map((t) => [t.name, t.dtype, [...t.shape]])).toEqual([
      ["a", "f32", [2, 3]],
      ["b", "q8_0", [2, 32]],
    ]);
    expect(Array.from((await g.read("a")).data as Float32Array)).toEqual(Array.from(f32));
    expect(Array.from(await g.readBytes("b"))).toEqual(Array.from(q8));
    await g.close();
    const buf = await readFile(path);
    const m = minimalRead(buf);
    expect(m.version).toBe(3);
    expect(m.md).toEqual({ "general.architecture": "llama", "llama.block_count": 2, "tokenizer.ggml.tokens": ["a", "b", "c"], "x.f": 0.25 });
    expect(m.tensors).toEqual([
      { name: "a", dims: [3, 2], type: 0, offset: 0 },
      { name: "b", dims: [32, 2], type: 8, offset: 32 },
    ]);
    expect(Array.from(buf.subarray(m.data + 32, m.data + 32 + 68))).toEqual(Array.from(q8));
    expect(buf.length % 32).toBe(0);
  });

  it("rejects out-of-order or mis-sized tensors and leaves no file on abort", async () => {
    const path = join(dir, "bad.gguf");
    await expect(openGgufWriter(path, {}, [{ name: "a", shape: [2, 30], type: "q8_0" }])).rejects.toMatchObject({ code: "E_SHAPE" });
    const w = await openGgufWriter(path, {}, [{ name: "a", shape: [4], type: "f32" }]);
    await expect(w.writeTensor("z", new Uint8Array(16))).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(w.writeTensor("a", new Uint8Array(12))).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(w.commit()).rejects.toMatchObject({ code: "E_RANGE" });
    expect((await readdir(dir)).filter((f) => f.includes("bad"))).toEqual([]);
  });
});
