import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng, Tensor, TersorError } from "@tersor/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  PNG_SIGNATURE,
  applyTemperature,
  brierScore,
  calibrationBins,
  calibrationReport,
  expectedCalibrationError,
  fitTemperature,
  probabilityRows,
  reliabilityDiagramSpec,
  renderSvg,
  splitIndices,
  writePlot,
} from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-calibration-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    return (e as TersorError).code;
  }
  return undefined;
}

describe("expected calibration error", () => {
  it("[0.25, 0.25, 0.75, 0.75] with labels [0, 0, 1, 1] and 2 bins gives 0.25", () => {
    const r = calibrationReport([0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1], { bins: 2 });
    expect(r.ece).toBeCloseTo(0.25, 12);
    expect(r.mce).toBeCloseTo(0.25, 12);
    expect(r.rmsce).toBeCloseTo(0.25, 12);
    expect(r.bins.map((b) => [b.lo, b.hi, b.count, b.confidence, b.accuracy])).toEqual([
      [0, 0.5, 2, 0.25, 0],
      [0.5, 1, 2, 0.75, 1],
    ]);
    // Top-label binning of the same predictions: confidence 0.75 everywhere, all correct.
    expect(expectedCalibrationError([0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1], { bins: 2, confidence: "top-label" })).toBeCloseTo(0.25, 12);
    expect(r.accuracy).toBe(1);
    expect(r.brier).toBeCloseTo(0.0625, 12);
  });

  it("bins are (lo, hi]; the first bin also takes 0, the last takes 1", () => {
    const r = calibrationBins([0, 0.5, 0.50001, 1, 0.3, 0.2], [0, 0, 0, 1, 1, 1], { bins: 2 });
    expect(r.bins[0]!.count).toBe(4); // 0, 0.5, 0.3, 0.2
    expect(r.bins[1]!.count).toBe(2); // 0.50001, 1
    const ten = calibrationBins([0.3, 0.1, 0.7], [1, 1, 1], { bins: 10 });
    expect(ten.bins[2]!.count).toBe(1); // 0.3 in (0.2, 0.3]
    expect(ten.bins[0]!.count).toBe(1); // 0.1 in [0, 0.1]
    expect(ten.bins[6]!.count).toBe(1); // 0.7 in (0.6, 0.7]
    expect(Number.isNaN(ten.bins[5]!.confidence)).toBe(true);
  });

  it("multiclass top-label ECE and MCE by hand", () => {
    const r = calibrationReport(
      [
        [0.9, 0.1],
        [0.6, 0.4],
        [0.3, 0.7],
      ],
      [0, 1, 1],
      { bins: 5 },
    );
    expect(r.kind).toBe("multiclass");
    expect(r.ece).toBeCloseTo((0.6 + 0.3 + 0.1) / 3, 12);
    expect(r.mce).toBeCloseTo(0.6, 12);
    expect(r.rmsce).toBeCloseTo(Math.sqrt((0.36 + 0.09 + 0.01) / 3), 12);
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
    expect(r.nll).toBeCloseTo(-(Math.log(0.9) + Math.log(0.4) + Math.log(0.7)) / 3, 12);
  });

  it("equal-mass bins: edges at order statistics, ties kept together", () => {
    const conf = [0.9, 0.1, 0.3, 0.2, 0.8, 0.4, 0.6, 0.7];
    const labels = [1, 0, 0, 0, 1, 0, 1, 1];
    const r = calibrationReport(conf, labels, { bins: 2, binning: "equal-mass" });
    expect(r.bins.map((b) => [b.lo, b.hi, b.count])).toEqual([
      [0, 0.4, 4],
      [0.4, 1, 4],
    ]);
    // Bin 0: mean confidence 0.25, no positives; bin 1: mean 0.75, all positive.
    expect(r.ece).toBeCloseTo(0.5 * 0.25 + 0.5 * 0.25, 12);
    // 3 bins over 7 values: upper edges are the ⌈7/3⌉ = 3rd and ⌈14/3⌉ = 5th smallest.
    const t = calibrationBins([0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.95], [0, 0, 1, 0, 1, 1, 1], { bins: 3, binning: "equal-mass" });
    expect(t.bins.map((b) => [b.lo, b.hi, b.count])).toEqual([
      [0, 0.2, 3],
      [0.2, 0.5, 2],
      [0.5, 1, 2],
    ]);
    const acc = [1 / 3, 0.5, 1];
    const cf = [(0.05 + 0.1 + 0.2) / 3, 0.4, (0.6 + 0.95) / 2];
    const ece = (3 / 7) * Math.abs(acc[0]! - cf[0]!) + (2 / 7) * Math.abs(acc[1]! - cf[1]!) + (2 / 7) * Math.abs(acc[2]! - cf[2]!);
    expect(t.ece).toBeCloseTo(ece, 12);
    // Ties: four equal confidences cannot be split; the repeated edge leaves an empty bin.
    const ties = calibrationBins([0.5, 0.5, 0.5, 0.5, 0.9, 0.9], [1, 0, 1, 0, 1, 1], { bins: 3, binning: "equal-mass" });
    expect(ties.bins.map((b) => b.count)).toEqual([4, 0, 2]);
  });

  it("Brier score by hand, binary and multiclass; inputs as Tensors and logits", () => {
    expect(brierScore([0.9, 0.2, 0.6], [1, 0, 0])).toBeCloseTo((0.01 + 0.04 + 0.36) / 3, 12);
    expect(
      brierScore(
        [
          [0.7, 0.2, 0.1],
          [0.1, 0.3, 0.6],
        ],
        [0, 1],
      ),
    ).toBeCloseTo((0.14 + 0.86) / 2, 12);
    const t = new Tensor("f64", [2, 3], Float64Array.from([0.7, 0.2, 0.1, 0.1, 0.3, 0.6]));
    expect(brierScore(t, new Tensor("i64", [2], BigInt64Array.from([0n, 1n])))).toBeCloseTo(0.5, 12);
    expect(brierScore([0], [true])).toBe(1); // p(class 1) = 0 for a class-1 sample: (0 − 1)²
    expect(brierScore([0], [1], { logits: true })).toBeCloseTo(0.25, 12); // σ(0) = 0.5
  });

  it("rejects bad inputs with TersorError codes", () => {
    expect(code(() => calibrationReport([0.2, 0.3], [0]))).toBe("E_SHAPE");
    expect(code(() => calibrationReport([0.2, Number.NaN], [0, 1]))).toBe("E_RANGE");
    expect(code(() => calibrationReport([0.2, 1.2], [0, 1]))).toBe("E_RANGE");
    expect(code(() => calibrationReport([-0.1, 0.2], [0, 1]))).toBe("E_RANGE");
    expect(code(() => calibrationReport([0.2, 0.3], [0, 1], { bins: 0 }))).toBe("E_RANGE");
    expect(code(() => calibrationReport([0.2, 0.3], [0, 1], { bins: 2.5 }))).toBe("E_RANGE");
    expect(code(() => calibrationReport([0.2, 0.3], [0, 2]))).toBe("E_RANGE");
    expect(code(() => calibrationReport([[0.5, 0.6]], [0]))).toBe("E_RANGE");
    expect(code(() => calibrationReport([[0.5, 0.5], [1]], [0, 0]))).toBe("E_SHAPE");
    expect(code(() => calibrationReport([], []))).toBe("E_RANGE");
    expect(code(() => brierScore([0.5], [0.5]))).toBe("E_RANGE");
    expect(code(() => applyTemperature([0.5], 0))).toBe("E_RANGE");
    expect(code(() => applyTemperature([0.5], -1))).toBe("E_RANGE");
    expect(code(() => fitTemperature([[1, Number.POSITIVE_INFINITY]], [0], { logits: true }))).toBe("E_RANGE");
    expect(code(() => splitIndices(10, 1))).toBe("E_RANGE");
  });
});

/** Labels drawn from softmax(z) with tersor's Rng. */
function sampleClass(rng: Rng, z: number[]): number {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  let u = rng.nextF64() * s;
  for (let k = 0; k < e.length; k++) {
    u -= e[k]!;
    if (u < 0) return k;
  }
  return e.length - 1;
}

describe("temperature scaling", () => {
  it("recovers the temperature of multiclass logits miscalibrated by T = 2.5 and lowers NLL and ECE", () => {
    const rng = new Rng(42);
    const n = 6000;
    const K = 5;
    const T0 = 2.5;
    const logits: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: K }, () => 1.5 * rng.nextNormal());
      labels.push(sampleClass(rng, z));
      logits.push(z.map((v) => v * T0)); // over-confident by a factor T0
    }
    const { validation, test } = splitIndices(n, 0.5, 7);
    const fit = fitTemperature(
      validation.map((i) => logits[i]!),
      validation.map((i) => labels[i]!),
      { logits: true },
    );
    expect(Math.abs(fit.temperature - T0) / T0).toBeLessThan(0.05);
    expect(fit.nllAfter).toBeLessThan(fit.nllBefore);
    expect(fit.atBoundary).toBe(false);
    const testLogits = test.map((i) => logits[i]!);
    const testLabels = test.map((i) => labels[i]!);
    const before = calibrationReport(testLogits, testLabels, { logits: true });
    const after = calibrationReport(probabilityRows(applyTemperature(testLogits, fit.temperature, { logits: true })), testLabels);
    expect(after.nll).toBeLessThan(before.nll);
    expect(after.ece).toBeLessThan(before.ece / 2);
    expect(after.accuracy).toBeCloseTo(before.accuracy, 12); // scaling never changes the argmax
    console.log(`multiclass: T0 = ${T0}, fitted T = ${fit.temperature.toFixed(4)}; test NLL ${before.nll.toFixed(4)} → ${after.nll.toFixed(4)}, ECE ${before.ece.toFixed(4)} → ${after.ece.toFixed(4)}`);
  });

  it("recovers the temperature of under-confident binary probabilities (T = 0.6)", () => {
    const rng = new Rng(9);
    const n = 20000;
    const T0 = 0.6;
    const p: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < n; i++) {
      const l = 2 * rng.nextNormal();
      y.push(rng.nextF64() < 1 / (1 + Math.exp(-l)) ? 1 : 0);
      p.push(1 / (1 + Math.exp(-l * T0)));
    }
    const fit = fitTemperature(p, y);
    expect(Math.abs(fit.temperature - T0) / T0).toBeLessThan(0.05);
    expect(fit.nllAfter).toBeLessThan(fit.nllBefore);
    const scaled = applyTemperature(p, fit.temperature);
    expect(calibrationReport(Array.from(scaled.p), y).nll).toBeCloseTo(fit.nllAfter, 10);
    console.log(`binary: T0 = ${T0}, fitted T = ${fit.temperature.toFixed(4)}; NLL ${fit.nllBefore.toFixed(4)} → ${fit.nllAfter.toFixed(4)}`);
  });

  it("T = 1 leaves probabilities unchanged", () => {
    const P = applyTemperature(
      [
        [0.2, 0.8],
        [0.5, 0.5],
      ],
      1,
    );
    expect(Array.from(P.p).map((v) => +v.toFixed(12))).toEqual([0.2, 0.8, 0.5, 0.5]);
  });
});

describe("reliability diagram", () => {
  it("renders to SVG and to a PNG file that starts with the PNG signature", async () => {
    const rng = new Rng(1);
    const p = Array.from({ length: 500 }, () => rng.nextF64());
    const y = p.map((v) => (rng.nextF64() < v * v ? 1 : 0));
    const r = calibrationReport(p, y, { bins: 10 });
    const spec = reliabilityDiagramSpec(r);
    const svg = await renderSvg(spec);
    expect(svg.startsWith("<svg")).toBe(true);
    const out = join(dir, "reliability.png");
    const w = await writePlot(out, spec);
    expect(w.format).toBe("png");
    const bytes = await readFile(out);
    expect(Array.from(bytes.subarray(0, 8))).toEqual(PNG_SIGNATURE);
    expect(bytes.length).toBe(w.bytes);
    await expect(writePlot(join(dir, "x.jpg"), spec)).rejects.toMatchObject({ code: "E_RANGE" });
  });
});
