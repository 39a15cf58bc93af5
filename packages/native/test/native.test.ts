import { describe, expect, it } from "vitest";

import { TersorError, candidatePaths, cpuProblem, isTersorError, native, setNumThreads } from "../src/index.js";

describe("loader", () => {
  it("loads the local build and reports what it was built with", () => {
    const info = native().buildInfo();
    expect(info.napiVersion).toBe(9);
    expect(info.physicalCores).toBeGreaterThanOrEqual(1);
    expect(info.cpu.avx2 && info.cpu.fma && info.cpu.f16c).toBe(true);
    expect(cpuProblem()).toBeUndefined();
  });

  it("searches env, local build, then the per-platform package", () => {
    const kinds = candidatePaths().map((c) => c.kind);
    expect(kinds.slice(-2)).toEqual(["local", "package"]);
    expect(candidatePaths().at(-1)!.path).toBe(`@tersor/native-${process.platform}-${process.arch}`);
  });

  it("sets and restores the thread count", () => {
    expect(setNumThreads(1)).toBe(1);
    expect(native().numThreads()).toBe(1);
    expect(setNumThreads(0)).toBe(native().buildInfo().physicalCores);
    expect(() => setNumThreads(-3)).toThrow(TersorError);
  });
});

describe("native errors", () => {
  it("are TersorError instances with a stable code, sync and async", async () => {
    let caught: unknown;
    try {
      native().f32ToF16(new Float32Array(3), new Uint16Array(4));
    } catch (e) {
      caught = e;
    }
    expect(isTersorError(caught, "E_SHAPE")).toBe(true);
    expect((caught as Error).message).toMatch(/3 elements.*4/);

    expect(() => native().f32ToF16(new Float64Array(3) as unknown as Float32Array, new Uint16Array(3))).toThrow(
      expect.objectContaining({ code: "E_DTYPE" }),
    );

    const x = new Float32Array([1, Number.NaN, 3, 4]);
    await expect(native().quantizeRowsInt8(x, 2, 2)).rejects.toMatchObject({ code: "E_RANGE", name: "TersorError" });
    await expect(Promise.resolve().then(() => native().quantizeRowsInt8(new Float32Array(5), 2, 2))).rejects.toBeInstanceOf(TersorError);
  });
});

describe("int8 row quantizer", () => {
  it("honours a typed array's byteOffset (zero-copy views)", async () => {
    const buf = new Float32Array([99, 99, 99, 1, -0.5, 0.25, 0, 2, 4, -8, 1, 99]);
    const view = new Float32Array(buf.buffer, 3 * 4, 8);
    const { q, scales } = await native().quantizeRowsInt8(view, 2, 4);
    expect(Array.from(q)).toEqual([127, -64, 32, 0, 32, 64, -127, 16]);
    expect(scales[0]).toBeCloseTo(1 / 127, 7);
    expect(scales[1]).toBeCloseTo(8 / 127, 7);
  });

  const info = native().buildInfo();
  it.skipIf(!info.cudaDevice)("CUDA kernel gives the CPU's bits (runs only where a GPU is present)", async () => {
    const rows = 301;
    const cols = 777;
    const x = new Float32Array(rows * cols);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * (1 + (i % 13));
    const cpu = await native().quantizeRowsInt8(x, rows, cols);
    const gpu = await native().cudaQuantizeRowsInt8(x, rows, cols);
    expect(Buffer.from(gpu.q.buffer).equals(Buffer.from(cpu.q.buffer))).toBe(true);
    expect(Array.from(gpu.scales)).toEqual(Array.from(cpu.scales));
  });

  it.skipIf(info.cudaDevice)("without a GPU the CUDA entry rejects with E_NATIVE and says why", async () => {
    await expect(native().cudaQuantizeRowsInt8(new Float32Array(4), 2, 2)).rejects.toMatchObject({
      code: "E_NATIVE",
      message: expect.stringMatching(/CUDA/),
    });
  });
});
