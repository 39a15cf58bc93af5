import { describe, expect, it } from "vitest";

import { GGML_TYPES, Tensor, TersorError, byteLengthOf, ggmlTypeById, ggmlTypeByName, storageFromBytes } from "../src/index.js";

describe("Tensor", () => {
  it("checks storage size and kind against dtype and shape", () => {
    const t = new Tensor("f32", [2, 3]);
    expect(t.numel).toBe(6);
    expect(t.byteLength).toBe(24);
    expect(() => new Tensor("f32", [2, 3], new Float32Array(5))).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => new Tensor("f32", [2], new Float64Array(2))).toThrow(expect.objectContaining({ code: "E_DTYPE" }));
    expect(() => new Tensor("f17" as "f32", [2])).toThrow(expect.objectContaining({ code: "E_DTYPE" }));
    expect(() => new Tensor("f32", [2, -1])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => new Tensor("f32", [2.5])).toThrow(TersorError);
  });

  it("stores quantized types as whole ggml blocks", () => {
    const t = new Tensor("q4_0", [4, 64]);
    expect(t.byteLength).toBe(4 * 2 * 18);
    expect(() => new Tensor("q4_k", [10, 100])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(byteLengthOf("q6_k", 512)).toBe(2 * 210);
    expect(() => t.to("f32")).toThrow(expect.objectContaining({ code: "E_DTYPE" }));
  });

  it("reshapes with one inferred dimension", () => {
    const t = Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(t.reshape([3, -1]).shape).toEqual([3, 2]);
    expect(t.reshape([6]).data).toBe(t.data);
    expect(() => t.reshape([4, -1])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => t.reshape([-1, -1])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
  });

  it("converts f32 <-> f16 <-> bf16 with round-to-nearest-even, keeping NaN and Inf", () => {
    const x = Tensor.f32([1, -2, 65504, 65520, 2 ** -24, 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN, 1e-45]);
    const h = x.to("f16");
    expect(Array.from(h.data)).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x3c00, 0x3c02, 0x7c00, 0xfc00, h.data[10], 0x0000,
    ]);
    expect(h.data[10]! & 0x7c00).toBe(0x7c00);
    expect(h.data[10]! & 0x03ff).not.toBe(0);
    const back = h.to("f32").data;
    expect(back[0]).toBe(1);
    expect(back[3]).toBe(Infinity);
    expect(Number.isNaN(back[10])).toBe(true);

    const b = Tensor.f32([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -Infinity, 3.4028234663852886e38]).to("bf16");
    expect(Array.from(b.data).map((v) => v.toString(16))).toEqual(["3f80", "3f80", "3f82", b.data[3]!.toString(16), "ff80", "7f80"]);
    expect(Number.isNaN(b.to("f32").data[3])).toBe(true);
  });

  it("converts to and from f64 and integer dtypes by value", () => {
    const x = Tensor.f32([1.5, -2.25, 3]);
    expect(Array.from(x.to("f64").data)).toEqual([1.5, -2.25, 3]);
    expect(Array.from(x.to("i32").data)).toEqual([1, -2, 3]);
    expect(Array.from(x.to("i64").data)).toEqual([1n, -2n, 3n]);
    expect(Array.from(new Tensor("i16", [2], new Int16Array([7, -9])).toFloat32Array())).toEqual([7, -9]);
  });

  it("wraps bytes zero-copy when aligned and copies when not", () => {
    const buf = new Uint8Array(20);
    new Float32Array(buf.buffer, 4, 2).set([1.5, 2.5]);
    const aligned = Tensor.fromBytes("f32", [2], buf.subarray(4, 12));
    expect(aligned.data.buffer).toBe(buf.buffer);
    expect(Array.from(aligned.data)).toEqual([1.5, 2.5]);
    const odd = new Uint8Array(9);
    odd.set(buf.subarray(4, 12), 1);
    const copied = storageFromBytes("f32", odd.subarray(1));
    expect(copied.buffer).not.toBe(odd.buffer);
    expect(Array.from(copied as Float32Array)).toEqual([1.5, 2.5]);
    expect(() => storageFromBytes("f32", new Uint8Array(6))).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
  });
});

describe("ggml type table", () => {
  it("matches ggml's block layouts", () => {
    // Sizes from ggml-common.h: sizeof(ggml_half) + QK/2 for q4_0, and so on.
    const expectSize = (name: string, block: number, bytes: number) => {
      const t = ggmlTypeByName(name)!;
      expect([t.blockSize, t.typeSize]).toEqual([block, bytes]);
    };
    expectSize("q4_0", 32, 2 + 16);
    expectSize("q4_1", 32, 4 + 16);
    expectSize("q5_0", 32, 2 + 4 + 16);
    expectSize("q5_1", 32, 4 + 4 + 16);
    expectSize("q8_0", 32, 2 + 32);
    expectSize("q2_k", 256, 16 + 64 + 4);
    expectSize("q3_k", 256, 32 + 64 + 12 + 2);
    expectSize("q4_k", 256, 4 + 12 + 128);
    expectSize("q5_k", 256, 4 + 12 + 32 + 128);
    expectSize("q6_k", 256, 128 + 64 + 16 + 2);
    expectSize("mxfp4", 32, 1 + 16);
    expectSize("nvfp4", 64, 4 + 32);
    expect(ggmlTypeById(4)).toBeUndefined();
    expect(ggmlTypeById(31)).toBeUndefined();
    expect(new Set(GGML_TYPES.map((t) => t.id)).size).toBe(GGML_TYPES.length);
  });
});
