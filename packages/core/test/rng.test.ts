import { native } from "@tersor/native";
import { describe, expect, it } from "vitest";

import { Rng } from "../src/index.js";

function nativeU32(seed: bigint, n: number): number[] {
  const out = new Uint32Array(n);
  native().rngFillU32(Number(seed >> 32n), Number(seed & 0xffffffffn), out);
  return Array.from(out);
}

describe("Rng", () => {
  it("gives the same stream as the C++ tersor::Rng for the same seed", () => {
    for (const seed of [0n, 1n, 42n, 0xdeadbeefn, 2n ** 63n + 12345n, 2n ** 64n - 1n]) {
      const r = new Rng(seed);
      const ts = Array.from({ length: 1000 }, () => r.nextU32());
      expect(ts).toEqual(nativeU32(seed, 1000));
    }
    const normals = new Float64Array(500);
    native().rngFillNormal(0, 7, normals);
    const r = new Rng(7);
    for (let i = 0; i < normals.length; i++) expect(r.nextNormal()).toBeCloseTo(normals[i]!, 12);
  });

  it("is uniform and unbiased", () => {
    const r = new Rng(3);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60000; i++) counts[r.nextBelow(6)]!++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    let sum = 0;
    for (let i = 0; i < 100000; i++) sum += r.nextF64();
    expect(Math.abs(sum / 100000 - 0.5)).toBeLessThan(0.005);
    const shuffled = r.shuffle([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...shuffled].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
