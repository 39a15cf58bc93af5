import { describe, expect, it } from "vitest";

import { Rng, Tensor, TersorError, matmul, setNumThreads } from "../src/index.js";

/** Row-major random f32 values in [-1, 1). */
function randomF32(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextF32() * 2 - 1;
  return out;
}

/** op(A)(i, p) of a stored rows x cols matrix. */
function opAt(x: ArrayLike<number>, cols: number, trans: boolean, i: number, p: number): number {
  return trans ? x[p * cols + i]! : x[i * cols + p]!;
}

/** Double-precision reference of op(a) · op(b) and the magnitude sum for the error bound. */
function reference(
  a: ArrayLike<number>,
  aShape: [number, number],
  b: ArrayLike<number>,
  bShape: [number, number],
  transA: boolean,
  transB: boolean,
): { m: number; n: number; k: number; c: Float64Array; mag: Float64Array } {
  const m = transA ? aShape[1] : aShape[0];
  const k = transA ? aShape[0] : aShape[1];
  const n = transB ? bShape[0] : bShape[1];
  const c = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let g = 0;
      for (let p = 0; p < k; p++) {
        const prod = opAt(a, aShape[1], transA, i, p) * opAt(b, bShape[1], transB, p, j);
        s += prod;
        g += Math.abs(prod);
      }
      c[i * n + j] = s;
      mag[i * n + j] = g;
    }
  return { m, n, k, c, mag };
}

/** |got - exact| <= gamma_{k + ceil(k/8) + 2} * sum |a||b| (see native/test/test_gemm.cpp). */
function expectClose(got: Tensor<"f32">, ref: ReturnType<typeof reference>): void {
  expect(got.dtype).toBe("f32");
  expect(got.shape).toEqual([ref.m, ref.n]);
  const u = 2 ** -24;
  const r = ref.k + Math.ceil(ref.k / 8) + 2;
  const gamma = (r * u) / (1 - r * u);
  let bad = 0;
  for (let i = 0; i < ref.c.length; i++) if (!(Math.abs(got.data[i]! - ref.c[i]!) <= gamma * ref.mag[i]!)) bad++;
  expect(bad).toBe(0);
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<TersorError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TersorError);
  const te = e as TersorError;
  expect(te.code).toBe(code);
  if (message) expect(te.message).toMatch(message);
  return te;
}

describe("matmul", () => {
  it("multiplies small matrices exactly", async () => {
    const a = Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.f32([7, 8, 9, 10, 11, 12], [3, 2]);
    const c = await matmul(a, b);
    expect(c.shape).toEqual([2, 2]);
    expect(Array.from(c.data)).toEqual([58, 64, 139, 154]);
  });

  it("matches a double reference for every transpose combination and odd sizes", async () => {
    let seed = 1;
    for (const [m, k, n] of [
      [1, 1, 1],
      [7, 17, 9],
      [65, 63, 129],
      [300, 131, 257],
    ] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const aShape: [number, number] = transA ? [k, m] : [m, k];
          const bShape: [number, number] = transB ? [n, k] : [k, n];
          const a = new Tensor("f32", aShape, randomF32(m * k, seed++));
          const b = new Tensor("f32", bShape, randomF32(k * n, seed++));
          const c = await matmul(a, b, { transA, transB });
          expectClose(c, reference(a.data, aShape, b.data, bShape, transA, transB));
        }
      }
    }
  });

  it("gives the same bits for any thread count", async () => {
    const a = new Tensor("f32", [150, 400], randomF32(150 * 400, 5));
    const b = new Tensor("f32", [400, 90], randomF32(400 * 90, 6));
    try {
      setNumThreads(1);
      const one = await matmul(a, b);
      setNumThreads(3);
      const three = await matmul(a, b);
      expect(Buffer.from(three.data.buffer).equals(Buffer.from(one.data.buffer))).toBe(true);
    } finally {
      setNumThreads(0);
    }
  });

  it("multiplies f16 and bf16 with f32 accumulation, transposes included", async () => {
    for (const dtype of ["f16", "bf16"] as const) {
      for (const [transA, transB] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const m = 19;
        const k = 70;
        const n = 23;
        const aShape: [number, number] = transA ? [k, m] : [m, k];
        const bShape: [number, number] = transB ? [n, k] : [k, n];
        const a = new Tensor("f32", aShape, randomF32(m * k, 11)).to(dtype);
        const b = new Tensor("f32", bShape, randomF32(k * n, 12)).to(dtype);
        const c = await matmul(a, b, { transA, transB });
        // The reference uses the widened (exact) 16-bit values.
        expectClose(c, reference(a.toFloat32Array(), aShape, b.toFloat32Array(), bShape, transA, transB));
        // And it equals the f32 product of the widened tensors bit for bit.
        const c32 = await matmul(a.to("f32"), b.to("f32"), { transA, transB });
        expect(Array.from(c.data)).toEqual(Array.from(c32.data));
      }
    }
  });

  it("honours byteOffset views into larger buffers", async () => {
    const m = 9;
    const k = 13;
    const n = 11;
    const aVals = randomF32(m * k, 21);
    const bVals = randomF32(k * n, 22);
    // Both operands live inside one buffer, after garbage and NaN padding.
    const buf = new ArrayBuffer(4 * (7 + m * k + 5 + k * n + 3));
    const all = new Float32Array(buf);
    all.fill(Number.NaN);
    const aView = new Float32Array(buf, 4 * 7, m * k);
    const bView = new Float32Array(buf, 4 * (7 + m * k + 5), k * n);
    aView.set(aVals);
    bView.set(bVals);
    expect(aView.byteOffset).toBe(28);
    const c = await matmul(new Tensor("f32", [m, k], aView), new Tensor("f32", [k, n], bView));
    expectClose(c, reference(aVals, [m, k], bVals, [k, n], false, false));
    // The same for 16-bit views (byteOffset 2 is not 4-aligned).
    const hbuf = new Uint16Array(1 + m * k + k * n);
    const ah = new Tensor("f32", [m, k], aVals).to("f16");
    const bh = new Tensor("f32", [k, n], bVals).to("f16");
    hbuf.set(ah.data, 1);
    hbuf.set(bh.data, 1 + m * k);
    const aH = new Uint16Array(hbuf.buffer, 2, m * k);
    const bH = new Uint16Array(hbuf.buffer, 2 * (1 + m * k), k * n);
    const ch = await matmul(new Tensor("f16", [m, k], aH), new Tensor("f16", [k, n], bH));
    const ref = await matmul(ah, bh);
    expect(Array.from(ch.data)).toEqual(Array.from(ref.data));
  });

  it("handles empty dimensions", async () => {
    const z = await matmul(new Tensor("f32", [0, 3]), new Tensor("f32", [3, 4]));
    expect(z.shape).toEqual([0, 4]);
    const k0 = await matmul(new Tensor("f32", [2, 0]), new Tensor("f32", [0, 3]));
    expect(k0.shape).toEqual([2, 3]);
    expect(Array.from(k0.data)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("rejects inner dimensions that differ, naming both shapes", async () => {
    const a = new Tensor("f32", [2, 3]);
    const b = new Tensor("f32", [4, 5]);
    const e = await rejectsWith(matmul(a, b), "E_SHAPE");
    expect(e.message).toBe("matmul: a is [2, 3] but b is [4, 5]: inner dimensions 3 and 4 differ");
    await rejectsWith(matmul(a, b, { transA: true }), "E_SHAPE", /a is \[2, 3\] \(transposed: \[3, 2\]\) but b is \[4, 5\]: inner dimensions 2 and 4 differ/);
    await rejectsWith(matmul(a, new Tensor("f32", [5, 4]), { transB: true }), "E_SHAPE", /inner dimensions 3 and 4 differ/);
  });

  it("rejects operands that are not matrices", async () => {
    await rejectsWith(matmul(new Tensor("f32", [2, 3, 4]), new Tensor("f32", [4, 2])), "E_SHAPE", /a must be a 2-D tensor.*\[2, 3, 4\] \(rank 3\)/);
    await rejectsWith(matmul(new Tensor("f32", [3, 4]), new Tensor("f32", [4])), "E_SHAPE", /b must be a 2-D tensor.*rank 1/);
    await rejectsWith(matmul(new Tensor("f32", [3, 4]), Tensor.f32([1], [])), "E_SHAPE", /rank 0/);
    await rejectsWith(matmul({} as Tensor, new Tensor("f32", [4, 2])), "E_DTYPE", /a must be a Tensor/);
  });

  it("rejects unsupported and mixed dtypes", async () => {
    await rejectsWith(matmul(new Tensor("f64", [2, 2]), new Tensor("f64", [2, 2])), "E_DTYPE", /a is f64/);
    await rejectsWith(matmul(new Tensor("f32", [2, 2]), new Tensor("i32", [2, 2])), "E_DTYPE", /b is i32/);
    await rejectsWith(matmul(new Tensor("q8_0", [2, 32]), new Tensor("f32", [32, 2])), "E_DTYPE", /a is q8_0/);
    await rejectsWith(matmul(new Tensor("f16", [2, 2]), new Tensor("bf16", [2, 2])), "E_DTYPE", /a is f16 but b is bf16/);
    await rejectsWith(matmul(new Tensor("f32", [2, 2]), new Tensor("f16", [2, 2])), "E_DTYPE", /a is f32 but b is f16/);
  });

  it("rejects invalid options", async () => {
    const a = new Tensor("f32", [2, 2]);
    await rejectsWith(matmul(a, a, { transA: "yes" } as unknown as { transA: boolean }), "E_RANGE", /invalid options \(transA\)/);
    await rejectsWith(matmul(a, a, { transpose: true } as unknown as { transA: boolean }), "E_RANGE", /invalid options/);
  });

  it("rejects non-finite inputs, naming the operand and index", async () => {
    const a = Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.f32([1, 2, 3, 4, 5, 6], [3, 2]);
    b.data[3] = Number.NaN;
    await rejectsWith(matmul(a, b), "E_RANGE", /matmul: b\[3\] \(row 1, column 1 .*\) is NaN/);
    a.data[4] = Number.POSITIVE_INFINITY;
    await rejectsWith(matmul(a, b), "E_RANGE", /matmul: a\[4\] \(row 1, column 1 .*\) is \+Infinity/);
    const h = new Tensor("f32", [2, 2], Float32Array.from([1, Number.NEGATIVE_INFINITY, 3, 4])).to("bf16");
    await rejectsWith(matmul(h, h), "E_RANGE", /matmulBf16: a\[1\] .* is -Infinity/);
  });
});

describe("native matmul binding", () => {
  it("validates sizes with the numbers in the message", async () => {
    const { native } = await import("@tersor/native");
    const b = native();
    await rejectsWith(
      Promise.resolve().then(() => b.matmul(new Float32Array(5), new Float32Array(6), 2, 3, 2, false, false)),
      "E_SHAPE",
      /matmul: a has 5 elements, expected m\*k = 2 \* 3 = 6/,
    );
    await rejectsWith(
      Promise.resolve().then(() => b.matmul(new Float32Array(6), new Float32Array(7), 2, 3, 2, false, true)),
      "E_SHAPE",
      /matmul: b has 7 elements, expected n\*k \(b is transposed\) = 2 \* 3 = 6/,
    );
    await rejectsWith(
      Promise.resolve().then(() => b.matmulF16(new Uint16Array(6), new Uint16Array(5), 2, 3, 2)),
      "E_SHAPE",
      /matmulF16: b has 5 elements, expected k\*n = 3 \* 2 = 6/,
    );
    await rejectsWith(
      Promise.resolve().then(() => b.matmul(new Float64Array(6) as unknown as Float32Array, new Float32Array(6), 2, 3, 2)),
      "E_DTYPE",
      /a must be a Float32Array/,
    );
    await rejectsWith(
      Promise.resolve().then(() => b.matmul(new Float32Array(6), new Float32Array(6), 2, -3, 2)),
      "E_RANGE",
      /k must be a non-negative integer/,
    );
    const c = await b.matmul(Float32Array.from([1, 2, 3, 4, 5, 6]), Float32Array.from([1, 0, 0, 1, 1, 1]), 2, 3, 2, false, false);
    expect(Array.from(c)).toEqual([4, 5, 10, 11]);
  });
});
