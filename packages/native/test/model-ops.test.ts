import { describe, expect, it } from "vitest";

import { TersorError, isTersorError, native } from "../src/index.js";

/** Deterministic standard-normal-ish values (sum of uniforms from a 32-bit LCG). */
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2) * Math.sqrt(3);
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function rejectCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    return (e as TersorError).code;
  }
  throw new Error("expected a rejection");
}

describe("attention bindings", () => {
  it("flash matches naive: prefill with GQA, window and sinks; decode; chunked prefill", async () => {
    const cases = [
      { nQ: 130, nKv: 130, heads: 8, kvHeads: 2, headDim: 64, options: {} },
      { nQ: 97, nKv: 97, heads: 4, kvHeads: 4, headDim: 80, options: { window: 20, sinks: 4 } },
      { nQ: 1, nKv: 300, heads: 8, kvHeads: 1, headDim: 128, options: {} }, // decode (qStart defaults to nKv - 1)
      { nQ: 16, nKv: 200, heads: 6, kvHeads: 3, headDim: 32, options: { qStart: 184, window: 50 } },
      { nQ: 33, nKv: 33, heads: 2, kvHeads: 1, headDim: 17, options: { causal: false, scale: 0.2 } },
    ];
    let seed = 1;
    for (const c of cases) {
      const { options, ...shape } = c;
      const q = randn(c.nQ * c.heads * c.headDim, seed++);
      const k = randn(c.nKv * c.kvHeads * c.headDim, seed++);
      const v = randn(c.nKv * c.kvHeads * c.headDim, seed++);
      const [flash, naive] = await Promise.all([
        native().flashAttention(q, k, v, shape, options),
        native().naiveAttention(q, k, v, shape, options),
      ]);
      expect(flash).toBeInstanceOf(Float32Array);
      expect(flash.length).toBe(c.nQ * c.heads * c.headDim);
      expect(maxAbsDiff(flash, naive)).toBeLessThanOrEqual(1e-5);
    }
  });

  it("honours a typed array's byteOffset and a KV cache with spare capacity", async () => {
    const shape = { nQ: 20, nKv: 20, heads: 4, kvHeads: 2, headDim: 32 };
    const q = randn(20 * 4 * 32, 11);
    const k = randn(20 * 2 * 32, 12);
    const v = randn(20 * 2 * 32, 13);
    const ref = await native().flashAttention(q, k, v, shape);
    // q inside a larger buffer, 7 floats in
    const big = new Float32Array(q.length + 20).fill(1e30);
    big.set(q, 7);
    const view = new Float32Array(big.buffer, 7 * 4, q.length);
    expect(Array.from(await native().flashAttention(view, k, v, shape))).toEqual(Array.from(ref));
    // a head-major cache [kvHeads, capacity = 64, headDim] holding 20 tokens
    const cap = 64;
    const kc = new Float32Array(2 * cap * 32).fill(1e30);
    const vc = new Float32Array(2 * cap * 32).fill(1e30);
    for (let j = 0; j < 20; j++)
      for (let g = 0; g < 2; g++) {
        kc.set(k.subarray((j * 2 + g) * 32, (j * 2 + g + 1) * 32), (g * cap + j) * 32);
        vc.set(v.subarray((j * 2 + g) * 32, (j * 2 + g + 1) * 32), (g * cap + j) * 32);
      }
    const strided = await native().flashAttention(q, kc, vc, shape, {
      kRowStride: 32,
      kHeadStride: cap * 32,
      vRowStride: 32,
      vHeadStride: cap * 32,
    });
    expect(maxAbsDiff(strided, ref)).toBe(0);
    // inputs are not modified
    expect(big[6]).toBe(Math.fround(1e30));
    expect(Array.from(view)).toEqual(Array.from(q));
  });

  it("rejects bad input with TersorError codes", async () => {
    const q = new Float32Array(4 * 2 * 16);
    const k = new Float32Array(4 * 16);
    const shape = { nQ: 4, nKv: 4, heads: 2, kvHeads: 1, headDim: 16 };
    expect(await rejectCode(native().flashAttention(q, k, k, { ...shape, headDim: 300 }))).toBe("E_SHAPE");
    expect(await rejectCode(native().flashAttention(q, k, k, { ...shape, heads: 3, kvHeads: 2 }))).toBe("E_SHAPE");
    expect(await rejectCode(native().flashAttention(q.subarray(1), k, k, shape))).toBe("E_SHAPE");
    expect(await rejectCode(native().naiveAttention(q, k, k.subarray(16), shape))).toBe("E_SHAPE");
    expect(await rejectCode(native().flashAttention(q, k, k, { nQ: 4 } as never))).toBe("E_SHAPE");
    expect(await rejectCode(native().flashAttention(new Float64Array(q.length) as never, k, k, shape))).toBe("E_DTYPE");
    expect(await rejectCode(native().flashAttention(q, k, k, shape, { window: -1 }))).toBe("E_RANGE");
    expect(await rejectCode(native().flashAttention(q, k, k, shape, { scale: Number.NaN }))).toBe("E_RANGE");
    // argument errors reject rather than throw synchronously
    const p = native().flashAttention(q, k, k, { ...shape, headDim: 0 });
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toSatisfy((e: unknown) => isTersorError(e, "E_SHAPE"));
  });
});

describe("element-wise and row ops", () => {
  it("rmsNorm, layerNorm, softmax, swiglu and gelu match JS references", async () => {
    const rows = 3;
    const dim = 37;
    const x = randn(rows * dim, 21);
    const w = randn(dim, 22);
    const b = randn(dim, 23);
    const rms = await native().rmsNorm(x, w, rows, dim, 1e-6);
    const ln = await native().layerNorm(x, w, b, rows, dim);
    const sm = await native().softmax(x, rows, dim);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * dim, (r + 1) * dim));
      const ms = row.reduce((s, t) => s + t * t, 0) / dim;
      const mean = row.reduce((s, t) => s + t, 0) / dim;
      const vr = row.reduce((s, t) => s + (t - mean) ** 2, 0) / dim;
      const mx = Math.max(...row);
      const z = row.reduce((s, t) => s + Math.exp(t - mx), 0);
      for (let c = 0; c < dim; c++) {
        expect(rms[r * dim + c]).toBeCloseTo((row[c]! / Math.sqrt(ms + 1e-6)) * w[c]!, 5);
        expect(ln[r * dim + c]).toBeCloseTo(((row[c]! - mean) / Math.sqrt(vr + 1e-5)) * w[c]! + b[c]!, 5);
        expect(sm[r * dim + c]).toBeCloseTo(Math.exp(row[c]! - mx) / z, 6);
      }
    }
    const g = randn(1000, 24).map((t) => t * 4);
    const u = randn(1000, 25);
    const sw = await native().swiglu(g, u);
    const gt = await native().gelu(g);
    const ge = await native().gelu(g, "none");
    for (let i = 0; i < g.length; i++) {
      const t = g[i]!;
      expect(sw[i]).toBeCloseTo((t / (1 + Math.exp(-t))) * u[i]!, 5);
      expect(gt[i]).toBeCloseTo(0.5 * t * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (t + 0.044715 * t ** 3))), 5);
    }
    // exact GELU is x * Phi(x): compare against tanh-GELU's known gap (< 1e-3 everywhere)
    expect(maxAbsDiff(ge, gt)).toBeLessThan(1e-3);
    expect(ge[0]).not.toBe(gt[0]);
    expect(await rejectCode(native().rmsNorm(x, w, rows, dim + 1))).toBe("E_SHAPE");
    expect(await rejectCode(native().rmsNorm(x, w, rows, dim, -1))).toBe("E_RANGE");
    expect(await rejectCode(native().swiglu(g, u.subarray(1)))).toBe("E_SHAPE");
    expect(await rejectCode(native().gelu(g, "fast" as never))).toBe("E_RANGE");
  });

  it("rope rotates pairs (i, i + d/2) by position * theta^(-2i/d), and llama3 scaling keeps high frequencies", async () => {
    const tokens = 3;
    const heads = 2;
    const d = 8;
    const x = randn(tokens * heads * d, 31);
    const positions = new Int32Array([0, 5, 1000]);
    const y = await native().rope(x, positions, tokens, heads, d, { theta: 10000 });
    for (let t = 0; t < tokens; t++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < d / 2; i++) {
          const a = x[(t * heads + h) * d + i]!;
          const bb = x[(t * heads + h) * d + i + d / 2]!;
          const ang = positions[t]! * Math.pow(10000, (-2 * i) / d);
          expect(y[(t * heads + h) * d + i]).toBeCloseTo(a * Math.cos(ang) - bb * Math.sin(ang), 5);
          expect(y[(t * heads + h) * d + i + d / 2]).toBeCloseTo(bb * Math.cos(ang) + a * Math.sin(ang), 5);
        }
    const scaled = await native().rope(x, positions, tokens, heads, d, {
      theta: 10000,
      scaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    // i = 0 (wavelength 2 pi, far below 8192 / 4) is untouched by llama3 scaling
    expect(scaled[heads * d]).toBe(y[heads * d]); // token 1, head 0, i = 0
    expect(scaled[heads * d + d / 2 - 1]).not.toBe(y[heads * d + d / 2 - 1]); // i = 3: wavelength 6283 is scaled
    expect(await rejectCode(native().rope(x, new Int32Array([0, -1, 2]), tokens, heads, d))).toBe("E_RANGE");
    expect(await rejectCode(native().rope(x, positions, tokens, heads, d, { rotaryDim: 3 }))).toBe("E_SHAPE");
    expect(await rejectCode(native().rope(x, positions, tokens, heads, d, { style: "gptj" as never }))).toBe("E_RANGE");
    expect(await rejectCode(native().rope(x, positions.subarray(1), tokens, heads, d))).toBe("E_SHAPE");
  });
});
