import { Rng, Tensor, isTersorError } from "@tersor/core";
import { describe, expect, it } from "vitest";

import { bitsPerWeight, dequantizeTensor, parseScheme, quantMatmul, quantizeTensor, rowBytes } from "../src/index.js";

function gaussian(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.nextNormal();
  return x;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    if (typeof p === "function") p();
    else await p;
  } catch (e) {
    expect(isTersorError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe("quantization formats", () => {
  it("parses schemes, sizes rows and counts bits per weight", () => {
    expect(parseScheme("Q4_K").name).toBe("q4_k");
    expect(parseScheme("int4-g128-asym")).toMatchObject({ format: "int", bits: 4, group: 128, symmetric: false });
    expect(parseScheme("nf4-dq")).toMatchObject({ format: "nf4", group: 64, doubleQuant: true });
    expect(rowBytes("q4_k", 512)).toBe(288);
    expect(rowBytes("q8_0", 64)).toBe(68);
    expect(bitsPerWeight("q6_k")).toBeCloseTo(6.5625, 10);
    expect(bitsPerWeight("int4-g128")).toBeCloseTo(4 + 16 / 128, 10);
  });

  it("rejects bad schemes, shapes and values with coded errors", async () => {
    await expectCode(() => parseScheme("q4"), "E_RANGE");
    await expectCode(() => rowBytes("q4_k", 100), "E_SHAPE");
    await expectCode(quantizeTensor(new Float32Array(100), 1, 100, "q4_k"), "E_SHAPE");
    await expectCode(quantizeTensor(new Float32Array(10), 2, 32, "q8_0"), "E_SHAPE");
    const x = new Float32Array(32);
    x[3] = Number.NaN;
    await expectCode(quantizeTensor(x, 1, 32, "q8_0"), "E_RANGE");
    await expectCode(dequantizeTensor(new Uint8Array(33), 1, 32, "q8_0"), "E_SHAPE");
  });

  it("writes ggml's Q8_0 bytes for a hand-computed block", async () => {
    // amax 127 -> d = 1 (f16 0x3C00), codes = values
    const x = new Float32Array(32).map((_, j) => j * 8 - 127);
    const q = await quantizeTensor(x, 1, 32, "q8_0");
    expect(q.length).toBe(34);
    expect([q[0], q[1]]).toEqual([0x00, 0x3c]);
    expect(Array.from(new Int8Array(q.buffer, q.byteOffset + 2, 32))).toEqual(Array.from(x));
  });

  it("round-trips N(0,1) weights within the issue's error bounds, from a Tensor too", async () => {
    const rows = 16;
    const cols = 4096;
    const w = gaussian(rows * cols, 7);
    const bounds: Record<string, number> = { q8_0: 0.0054, q6_k: 0.018, q4_k: 0.072, q4_0: 0.087, nf4: 0.1, "int4-g128": 0.1, fp8: 0.03 };
    for (const [scheme, bound] of Object.entries(bounds)) {
      const q = await quantizeTensor(new Tensor("f32", [rows, cols], w), rows, cols, scheme);
      expect(q.length).toBe(rows * rowBytes(scheme, cols));
      const y = await dequantizeTensor(q, rows, cols, scheme);
      let se = 0;
      let sx = 0;
      for (let i = 0; i < w.length; i++) {
        se += (w[i]! - y[i]!) ** 2;
        sx += w[i]! ** 2;
      }
      expect(Math.sqrt(se / sx), scheme).toBeLessThan(bound);
    }
  });

  it("importance weights change the K-quant search and lower the weighted error", async () => {
    const cols = 1024;
    const w = gaussian(4 * cols, 3);
    const imp = new Float32Array(cols).map((_, j) => (j % 8 === 0 ? 100 : 0.01));
    const plain = await dequantizeTensor(await quantizeTensor(w, 4, cols, "q3_k"), 4, cols, "q3_k");
    const weighted = await dequantizeTensor(await quantizeTensor(w, 4, cols, "q3_k", { importance: imp }), 4, cols, "q3_k");
    const err = (y: Float32Array): number => {
      let e = 0;
      for (let i = 0; i < w.length; i++) e += imp[i % cols]! * (w[i]! - y[i]!) ** 2;
      return e;
    };
    expect(err(weighted)).toBeLessThan(err(plain));
  });

  it("quantized matmul equals the product with the dequantized weights", async () => {
    const rows = 24;
    const cols = 512;
    const batch = 3;
    const w = gaussian(rows * cols, 11);
    const x = gaussian(batch * cols, 12);
    // q8_0/q4_0/q4_k/q5_k/q6_k/nf4/int4 multiply 8-bit activations (Q8_0 blocks, as llama.cpp): the reference
    // uses them too; nf4's table is 13-bit fixed point there (|error| <= 2^-13 absmax per weight)
    const x8 = await dequantizeTensor(await quantizeTensor(x, batch, cols, "q8_0"), batch, cols, "q8_0");
    for (const scheme of ["q4_k", "q6_k", "q8_0", "nf4", "int4-g128", "q5_k"]) {
      const q = await quantizeTensor(w, rows, cols, scheme);
      const deq = await dequantizeTensor(q, rows, cols, scheme);
      const y = await quantMatmul(q, rows, cols, scheme, x, batch);
      const xr = ["q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "nf4", "int4-g128"].includes(scheme) ? x8 : x;
      const rb = rowBytes(scheme, cols);
      const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
      for (let b = 0; b < batch; b++) {
        for (let r = 0; r < rows; r++) {
          let ref = 0;
          let mag = 0;
          let table = 0;
          for (let k = 0; k < cols; k++) {
            ref += deq[r * cols + k]! * xr[b * cols + k]!;
            mag += Math.abs(deq[r * cols + k]! * xr[b * cols + k]!);
            // nf4 blocks of 64: { f32 absmax, 32 code bytes }
            if (scheme === "nf4") table += (Math.abs(view.getFloat32(r * rb + Math.floor(k / 64) * 36, true)) * Math.abs(xr[b * cols + k]!)) / 8192;
          }
          expect(Math.abs(y[b * rows + r]! - ref)).toBeLessThanOrEqual(2 * cols * 2 ** -24 * mag + table);
        }
      }
    }
  });
});
