import { Rng, Tensor, isTersorError } from "@tersor/core";
import { describe, expect, it } from "vitest";

import { difference, eora, gptq, hqq, lorc, lord, lowRankProduct, outputError, rtn } from "../src/index.js";

function normal(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.nextNormal());
}

/** XᵀX of N correlated rows (mixing + heavy channels), and X itself. */
function calib(rng: Rng, n: number, cols: number): Tensor<"f64"> {
  const mix = normal(rng, cols * cols, 1 / Math.sqrt(cols));
  const x = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: cols }, (_, j) => rng.nextNormal() * (j % 7 === 0 ? 4 : 1));
    for (let j = 0; j < cols; j++) {
      let s = 0.5 * z[j]!;
      for (let k = 0; k < cols; k++) s += z[k]! * mix[k * cols + j]!;
      x[i * cols + j] = s;
    }
  }
  const g = new Float64Array(cols * cols);
  for (let i = 0; i < n; i++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) g[a * cols + b]! += x[i * cols + a]! * x[i * cols + b]!;
  return new Tensor("f64", [cols, cols], g);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return isTersorError(e) ? e.code : String(e);
  }
  return "resolved";
}

describe("layer methods", () => {
  const rng = new Rng(7);
  const rows = 32;
  const cols = 128;
  const w = new Tensor("f32", [rows, cols], normal(rng, rows * cols, 0.05));
  const g = calib(rng, 300, cols);

  it("GPTQ beats RTN on the calibration output error at 3 and 4 bits", async () => {
    for (const scheme of ["int4-g32", "int3-g64", "q4_0", "int4"]) {
      const r = await rtn(w, scheme);
      const q = await gptq(w, g, 300, scheme);
      expect(q.q.length).toBe(r.q.length);
      expect(await outputError(w, q.values, g)).toBeLessThan(await outputError(w, r.values, g));
    }
  });

  it("GPTQ (plain and act-order) beats RTN for the ggml, NF4, FP8 and FP4 formats through snap_to_block", async () => {
    const c2 = 256;
    const w2 = new Tensor("f32", [8, c2], normal(rng, 8 * c2, 0.05));
    const g2 = calib(rng, 300, c2);
    for (const scheme of ["q8_0", "q4_0", "q4_1", "q5_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "nf4", "fp8", "mxfp4", "nvfp4"]) {
      const e0 = await outputError(w2, (await rtn(w2, scheme)).values, g2);
      for (const actOrder of [false, true]) {
        const e1 = await outputError(w2, (await gptq(w2, g2, 300, scheme, { actOrder })).values, g2);
        expect(e1, `${scheme} actOrder ${actOrder}`).toBeLessThan(e0);
      }
    }
  });

  it("EoRA's activation-weighted error is at most LoRC's at every rank", async () => {
    const r = await rtn(w, "int3-g32");
    const e = difference(w, r.values);
    for (const k of [1, 2, 4, 8, 16]) {
      const a = lowRankProduct(await eora(e, g, k));
      const b = lowRankProduct(await lorc(e, k));
      const ea = await outputError(e, a, g);
      const eb = await outputError(e, b, g);
      expect(ea).toBeLessThanOrEqual(eb * (1 + 1e-6));
    }
  });

  it("LoRD by energy and HQQ run to their definitions", async () => {
    const f = await lord(w, { energy: 0.5 });
    const s = Array.from(f.singularValues, (v) => v * v);
    const total = s.reduce((a, b) => a + b, 0);
    const head = s.slice(0, f.rank).reduce((a, b) => a + b, 0);
    expect(head).toBeGreaterThanOrEqual(0.5 * total * (1 - 1e-9));
    expect(head - s[f.rank - 1]!).toBeLessThan(0.5 * total);
    const h = await hqq(w, { bits: 4, group: 64 });
    expect(h.codes.every((c) => c < 16)).toBe(true);
    expect(h.scale.length).toBe((rows * cols) / 64);
    for (let i = 0; i < 50; i++) expect(h.values.data[i]).toBeCloseTo(h.scale[Math.floor(i / 64)]! * (h.codes[i]! - h.zero[Math.floor(i / 64)]!), 6);
  });

  it("rejects bad input with clear errors", async () => {
    expect(await code(gptq(w, g, 300, "int4-q99"))).toBe("E_RANGE");
    expect(await code(rtn(new Tensor("f32", [4, 96], new Float32Array(384)), "int4-g128"))).toBe("E_SHAPE");
    const bad = Float32Array.from(w.data as Float32Array);
    bad[3] = Number.NaN;
    expect(await code(gptq(new Tensor("f32", [rows, cols], bad), g, 300, "int4-g32"))).toBe("E_RANGE");
    expect(await code(gptq(new Tensor("f64", [rows, cols], new Float64Array(rows * cols)), g, 300, "int4"))).toBe("E_DTYPE");
    expect(await code(eora(w, g, 0))).toBe("E_RANGE");
  });
});
