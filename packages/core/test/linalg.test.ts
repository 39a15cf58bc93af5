import { native } from "@tersor/native";
import { describe, expect, it } from "vitest";

import {
  Rng,
  Tensor,
  TersorError,
  cholesky,
  choleskyInverse,
  eigh,
  hadamardTransform,
  inverseSpd,
  logdet,
  pinv,
  qr,
  randomizedSvd,
  solve,
  sqrtmSpd,
  svd,
  truncatedSvd,
} from "../src/index.js";

// ---- small dense helpers in f64 (row-major) ------------------------------------------------------

type M = { r: number; c: number; d: Float64Array };

function mat(r: number, c: number, f: (i: number, j: number) => number): M {
  const d = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) d[i * c + j] = f(i, j);
  return { r, c, d };
}
function randn(rng: Rng, r: number, c: number): M {
  return mat(r, c, () => rng.nextNormal());
}
function fromTensor(t: Tensor): M {
  const [r, c] = t.rank === 1 ? [t.shape[0]!, 1] : [t.shape[0]!, t.shape[1]!];
  return { r, c, d: Float64Array.from(t.data as Float32Array | Float64Array) };
}
function tensor(m: M, dtype: "f32" | "f64" = "f64"): Tensor<"f32" | "f64"> {
  return new Tensor(dtype, [m.r, m.c], dtype === "f64" ? Float64Array.from(m.d) : Float32Array.from(m.d));
}
function mul(a: M, b: M): M {
  if (a.c !== b.r) throw new Error("mul: shape");
  const out = new Float64Array(a.r * b.c);
  for (let i = 0; i < a.r; i++)
    for (let k = 0; k < a.c; k++) {
      const x = a.d[i * a.c + k]!;
      if (x === 0) continue;
      for (let j = 0; j < b.c; j++) out[i * b.c + j]! += x * b.d[k * b.c + j]!;
    }
  return { r: a.r, c: b.c, d: out };
}
function t(a: M): M {
  return mat(a.c, a.r, (i, j) => a.d[j * a.c + i]!);
}
function sub(a: M, b: M): M {
  return { r: a.r, c: a.c, d: a.d.map((x, i) => x - b.d[i]!) };
}
function scale(a: M, s: number): M {
  return { r: a.r, c: a.c, d: a.d.map((x) => x * s) };
}
function eye(n: number): M {
  return mat(n, n, (i, j) => (i === j ? 1 : 0));
}
function fro(a: M): number {
  let s = 0;
  for (const x of a.d) s += x * x;
  return Math.sqrt(s);
}
function maxAbs(a: M): number {
  let s = 0;
  for (const x of a.d) s = Math.max(s, Math.abs(x));
  return s;
}
function rel(x: M, ref: M): number {
  return fro(sub(x, ref)) / fro(ref);
}
function diag(v: Float64Array | number[]): M {
  return mat(v.length, v.length, (i, j) => (i === j ? v[i]! : 0));
}
function spd(rng: Rng, n: number): M {
  const g = randn(rng, n, n);
  const a = scale(mul(g, t(g)), 1 / n);
  for (let i = 0; i < n; i++) a.d[i * n + i]! += 1;
  return a;
}
function hilbert(n: number): M {
  return mat(n, n, (i, j) => 1 / (i + j + 1));
}
function orthErr(q: M): number {
  return maxAbs(sub(mul(t(q), q), eye(q.c)));
}
/** U diag(s) Vᵀ with orthonormal U, V from our own QR of Gaussian matrices. */
async function withSpectrum(rng: Rng, m: number, n: number, s: number[]): Promise<M> {
  const u = fromTensor((await qr(tensor(randn(rng, m, s.length)))).q);
  const v = fromTensor((await qr(tensor(randn(rng, n, s.length)))).q);
  return mul(mul(u, diag(s)), t(v));
}

const tight = { f32: 2e-5, f64: 1e-12 } as const;

async function expectCode(p: Promise<unknown>, code: string, text?: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TersorError);
  expect((err as TersorError).code).toBe(code);
  if (text) expect((err as TersorError).message).toContain(text);
}

// ---- tests -------------------------------------------------------------------------------------------

describe("svd", () => {
  it("reconstructs A with orthonormal factors and descending non-negative values, in f32 and f64", async () => {
    const rng = new Rng(1);
    for (const [m, n] of [
      [30, 20],
      [20, 30],
    ] as const) {
      const a = randn(rng, m, n);
      for (const dtype of ["f32", "f64"] as const) {
        const x = tensor(a, dtype);
        const r = await svd(x);
        expect(r.u.dtype).toBe(dtype);
        expect(r.u.data).toBeInstanceOf(dtype === "f32" ? Float32Array : Float64Array);
        const k = Math.min(m, n);
        expect(r.u.shape).toEqual([m, k]);
        expect(r.s.shape).toEqual([k]);
        expect(r.vt.shape).toEqual([k, n]);
        const u = fromTensor(r.u);
        const vt = fromTensor(r.vt);
        const s = Float64Array.from(r.s.data);
        expect(rel(mul(mul(u, diag(s)), vt), fromTensor(x))).toBeLessThan(tight[dtype]);
        expect(orthErr(u)).toBeLessThan(tight[dtype]);
        expect(orthErr(t(vt))).toBeLessThan(tight[dtype]);
        for (let i = 0; i < k; i++) {
          expect(s[i]).toBeGreaterThanOrEqual(0);
          if (i > 0) expect(s[i]).toBeLessThanOrEqual(s[i - 1]!);
        }
        const f = await svd(x, { full: true });
        expect(f.u.shape).toEqual([m, m]);
        expect(f.vt.shape).toEqual([n, n]);
        expect(orthErr(fromTensor(f.u))).toBeLessThan(tight[dtype]);
        expect(orthErr(t(fromTensor(f.vt)))).toBeLessThan(tight[dtype]);
      }
    }
  });

  it("recovers a spectrum spanning 1e-6..1 and handles a rank-deficient matrix", async () => {
    const rng = new Rng(2);
    const want = Array.from({ length: 20 }, (_, i) => 10 ** (-6 * (i / 19)));
    const a = await withSpectrum(rng, 40, 20, want);
    const r = await svd(tensor(a));
    for (let i = 0; i < 20; i++) expect(Math.abs(r.s.data[i]! - want[i]!)).toBeLessThan(1e-13);
    const rd = mul(randn(rng, 30, 4), randn(rng, 4, 25));
    const s = (await svd(tensor(rd))).s.data;
    for (let i = 4; i < 25; i++) expect(s[i]!).toBeLessThan(1e-13 * s[0]!);
  });
});

describe("truncatedSvd and randomizedSvd", () => {
  it("truncatedSvd matches the dense SVD's top k (f64 to 1e-10, f32 to 1e-5)", async () => {
    const rng = new Rng(3);
    const a = randn(rng, 200, 150);
    for (const dtype of ["f64", "f32"] as const) {
      const x = tensor(a, dtype);
      const ref = await svd(tensor(fromTensor(x), "f64"));
      const r = await truncatedSvd(x, 8);
      expect(r.converged).toBe(true);
      expect(r.iterations).toBeGreaterThan(0);
      expect(r.u.shape).toEqual([200, 8]);
      expect(r.vt.shape).toEqual([8, 150]);
      for (let i = 0; i < 8; i++) {
        expect(Math.abs(r.s.data[i]! - ref.s.data[i]!) / ref.s.data[i]!).toBeLessThan(dtype === "f64" ? 1e-10 : 1e-5);
      }
      expect(orthErr(fromTensor(r.u))).toBeLessThan(tight[dtype]);
      expect(orthErr(t(fromTensor(r.vt)))).toBeLessThan(tight[dtype]);
    }
  });

  it("randomizedSvd is near-optimal on a fast-decaying spectrum, exact on an exactly rank-k matrix, and seeded", async () => {
    const rng = new Rng(4);
    const s = Array.from({ length: 40 }, (_, i) => 0.5 ** i);
    const a = await withSpectrum(rng, 80, 60, s);
    const k = 6;
    const r = await randomizedSvd(tensor(a), k);
    const approx = mul(mul(fromTensor(r.u), diag(Float64Array.from(r.s.data))), fromTensor(r.vt));
    // Spectral norm of the error = its largest singular value.
    const err = (await svd(tensor(sub(a, approx)))).s.data[0]!;
    expect(err).toBeLessThan(1.01 * s[k]!);
    expect(err).toBeGreaterThan(0.999 * s[k]!);
    const lr = mul(randn(rng, 50, k), randn(rng, k, 70));
    for (const dtype of ["f64", "f32"] as const) {
      const x = tensor(lr, dtype);
      const e = await randomizedSvd(x, k, { oversample: 0, powerIters: 0, seed: 5n });
      const back = mul(mul(fromTensor(e.u), diag(Float64Array.from(e.s.data))), fromTensor(e.vt));
      expect(rel(back, fromTensor(x))).toBeLessThan(dtype === "f64" ? 1e-12 : 1e-5);
    }
    const r1 = await randomizedSvd(tensor(a, "f32"), k, { seed: 123 });
    const r2 = await randomizedSvd(tensor(a, "f32"), k, { seed: 123 });
    expect(Array.from(r1.u.data)).toEqual(Array.from(r2.u.data));
  });

  it("rejects k out of range and invalid options", async () => {
    const x = tensor(randn(new Rng(5), 6, 4));
    await expectCode(truncatedSvd(x, 5), "E_RANGE", "k = 5 is out of range");
    await expectCode(randomizedSvd(x, 5), "E_RANGE", "min(m, n) = 4");
    await expectCode(randomizedSvd(x, 0), "E_RANGE");
    await expectCode(truncatedSvd(x, 2, { tol: -1 }), "E_RANGE", "tol");
    await expectCode(randomizedSvd(x, 2, { oversample: 1.5 }), "E_RANGE", "oversample");
    await expectCode(randomizedSvd(x, 2, { bogus: 1 } as never), "E_RANGE");
  });
});

describe("symmetric and SPD routines", () => {
  it("eigh: A v = λ v with orthonormal V and ascending values", async () => {
    const rng = new Rng(6);
    const g = randn(rng, 30, 30);
    const a = scale(mat(30, 30, (i, j) => g.d[i * 30 + j]! + g.d[j * 30 + i]!), 0.5);
    for (const dtype of ["f64", "f32"] as const) {
      const x = tensor(a, dtype);
      const { values, vectors } = await eigh(x);
      expect(values.shape).toEqual([30]);
      const v = fromTensor(vectors);
      const w = Float64Array.from(values.data);
      expect(fro(sub(mul(fromTensor(x), v), mul(v, diag(w)))) / fro(a)).toBeLessThan(tight[dtype]);
      expect(orthErr(v)).toBeLessThan(tight[dtype]);
      for (let i = 1; i < 30; i++) expect(w[i]!).toBeGreaterThanOrEqual(w[i - 1]!);
    }
  });

  it("cholesky: L Lᵀ = A (random and Hilbert), lower triangular, with GPTQ damping", async () => {
    const rng = new Rng(7);
    for (const a of [spd(rng, 40), hilbert(8)]) {
      const l = fromTensor(await cholesky(tensor(a)));
      expect(rel(mul(l, t(l)), a)).toBeLessThan(1e-14);
      for (let i = 0; i < a.r; i++) for (let j = i + 1; j < a.r; j++) expect(l.d[i * a.r + j]).toBe(0);
    }
    const a = spd(rng, 20);
    let meanDiag = 0;
    for (let i = 0; i < 20; i++) meanDiag += a.d[i * 20 + i]! / 20;
    const l = fromTensor(await cholesky(tensor(a), { damping: 0.01 }));
    const damped = { ...a, d: a.d.map((x, idx) => (Math.floor(idx / 20) === idx % 20 ? x + 0.01 * meanDiag : x)) };
    expect(rel(mul(l, t(l)), damped)).toBeLessThan(1e-14);
    const lf = fromTensor(await cholesky(tensor(a, "f32")));
    expect(rel(mul(lf, t(lf)), a)).toBeLessThan(1e-6);
  });

  it("choleskyInverse: upper U with Uᵀ U = A⁻¹; inverseSpd: A X = I", async () => {
    const rng = new Rng(8);
    const a = spd(rng, 25);
    for (const dtype of ["f64", "f32"] as const) {
      const u = fromTensor(await choleskyInverse(tensor(a, dtype)));
      for (let i = 0; i < 25; i++) {
        expect(u.d[i * 25 + i]!).toBeGreaterThan(0);
        for (let j = 0; j < i; j++) expect(u.d[i * 25 + j]).toBe(0);
      }
      expect(maxAbs(sub(mul(mul(t(u), u), a), eye(25)))).toBeLessThan(dtype === "f64" ? 1e-12 : 1e-5);
      const inv = fromTensor(await inverseSpd(tensor(a, dtype)));
      expect(maxAbs(sub(mul(a, inv), eye(25)))).toBeLessThan(dtype === "f64" ? 1e-12 : 1e-5);
      expect(maxAbs(sub(inv, t(inv)))).toBe(0);
    }
    const u = fromTensor(await choleskyInverse(tensor(a), { damping: 0.1 }));
    let meanDiag = 0;
    for (let i = 0; i < 25; i++) meanDiag += a.d[i * 25 + i]! / 25;
    const damped = mat(25, 25, (i, j) => a.d[i * 25 + j]! + (i === j ? 0.1 * meanDiag : 0));
    expect(maxAbs(sub(mul(mul(t(u), u), damped), eye(25)))).toBeLessThan(1e-12);
  });

  it("logdet agrees with the sum of log eigenvalues; sqrtmSpd squares back to A", async () => {
    const rng = new Rng(9);
    const a = spd(rng, 20);
    const w = (await eigh(tensor(a))).values.data;
    const want = Array.from(w).reduce((acc, x) => acc + Math.log(x), 0);
    for (const assume of ["spd", "general"] as const) {
      const d = await logdet(tensor(a), { assume });
      expect(d.sign).toBe(1);
      expect(Math.abs(d.logabsdet - want)).toBeLessThan(1e-11);
    }
    const neg = mat(3, 3, (i, j) => (i === j ? [2, -3, 0.5][i]! : 0));
    const dn = await logdet(tensor(neg));
    expect(dn.sign).toBe(-1);
    expect(dn.logabsdet).toBeCloseTo(Math.log(3), 14);
    const sing = await logdet(tensor(mat(2, 2, (i, j) => (i + 1) * (j + 1))));
    expect(sing).toEqual({ sign: 0, logabsdet: -Infinity });
    const s = fromTensor(await sqrtmSpd(tensor(a)));
    expect(rel(mul(s, s), a)).toBeLessThan(1e-13);
    expect(maxAbs(sub(s, t(s)))).toBe(0);
    const sf = fromTensor(await sqrtmSpd(tensor(a, "f32")));
    expect(rel(mul(sf, sf), a)).toBeLessThan(1e-5);
    await expectCode(sqrtmSpd(tensor(diag([1, -0.5]))), "E_RANGE", "not positive semi-definite");
  });
});

describe("qr, solve, pinv", () => {
  it("qr: Q R = A, orthonormal Q, upper-triangular R (tall and wide)", async () => {
    const rng = new Rng(10);
    for (const [m, n] of [
      [25, 10],
      [10, 25],
    ] as const) {
      const a = randn(rng, m, n);
      for (const dtype of ["f64", "f32"] as const) {
        const { q, r } = await qr(tensor(a, dtype));
        const k = Math.min(m, n);
        expect(q.shape).toEqual([m, k]);
        expect(r.shape).toEqual([k, n]);
        const Q = fromTensor(q);
        const R = fromTensor(r);
        expect(rel(mul(Q, R), a)).toBeLessThan(dtype === "f64" ? 1e-14 : 1e-6);
        expect(orthErr(Q)).toBeLessThan(dtype === "f64" ? 1e-14 : 1e-6);
        for (let i = 0; i < k; i++) for (let j = 0; j < Math.min(i, n); j++) expect(R.d[i * n + j]).toBe(0);
      }
    }
  });

  it("solve: small residuals for general and SPD systems, 1-D and 2-D right-hand sides", async () => {
    const rng = new Rng(11);
    const a = randn(rng, 30, 30);
    const b = randn(rng, 30, 4);
    const x = fromTensor(await solve(tensor(a), tensor(b)));
    expect(fro(sub(mul(a, x), b))).toBeLessThan(1e-13 * fro(a) * fro(x));
    const s = spd(rng, 30);
    const xs = fromTensor(await solve(tensor(s), tensor(b), { assume: "spd" }));
    expect(fro(sub(mul(s, xs), b))).toBeLessThan(1e-13 * fro(s) * fro(xs));
    const v = new Tensor("f32", [30], Float32Array.from(b.d.filter((_, i) => i % 4 === 0)));
    const xv = await solve(tensor(a, "f32"), v);
    expect(xv.shape).toEqual([30]);
    const res = sub(mul(fromTensor(tensor(a, "f32")), fromTensor(xv)), fromTensor(v));
    expect(fro(res)).toBeLessThan(1e-5 * fro(a) * fro(fromTensor(xv)));
    await expectCode(solve(tensor(a), tensor(randn(rng, 29, 2))), "E_SHAPE", "b must have 30 rows");
    await expectCode(solve(tensor(a), tensor(b, "f32")), "E_DTYPE", "same dtype");
    await expectCode(solve(tensor(mat(2, 2, (i, j) => (i + 1) * (j + 1))), tensor(mat(2, 1, () => 1))), "E_RANGE", "singular");
  });

  it("pinv satisfies the four Moore–Penrose conditions (full rank and rank-deficient)", async () => {
    const rng = new Rng(12);
    const cases: [M, number | undefined, number][] = [
      [randn(rng, 20, 12), undefined, 1e-13],
      [mul(randn(rng, 18, 4), randn(rng, 4, 15)), 1e-10, 1e-12],
    ];
    for (const [a, rcond, tol] of cases) {
      const x = fromTensor(await pinv(tensor(a), rcond === undefined ? {} : { rcond }));
      expect([x.r, x.c]).toEqual([a.c, a.r]);
      expect(rel(mul(mul(a, x), a), a)).toBeLessThan(tol);
      expect(rel(mul(mul(x, a), x), x)).toBeLessThan(tol);
      const ax = mul(a, x);
      const xa = mul(x, a);
      expect(rel(t(ax), ax)).toBeLessThan(tol);
      expect(rel(t(xa), xa)).toBeLessThan(tol);
    }
  });
});

describe("hadamardTransform", () => {
  function sylvester(n: number): M {
    return mat(n, n, (i, j) => {
      let bits = i & j;
      let p = 0;
      while (bits) {
        p ^= bits & 1;
        bits >>= 1;
      }
      return p ? -1 : 1;
    });
  }

  it("equals x · H_n for the explicit Sylvester matrix, with H H = n I, and is not in place", async () => {
    const rng = new Rng(13);
    for (const n of [1, 2, 4, 8, 16, 32, 64, 128]) {
      const h = sylvester(n);
      expect(maxAbs(sub(mul(h, h), scale(eye(n), n)))).toBe(0);
      const x = mat(5, n, () => Math.round(rng.nextNormal() * 50) || 0); // no -0
      for (const dtype of ["f32", "f64"] as const) {
        const xt = tensor(x, dtype);
        const before = Array.from(xt.data);
        const y = await hadamardTransform(xt);
        expect(Array.from(xt.data)).toEqual(before);
        expect(y.dtype).toBe(dtype);
        expect(Array.from(y.data)).toEqual(Array.from(mul(x, h).d));
        const yy = await hadamardTransform(y);
        expect(Array.from(yy.data)).toEqual(Array.from(scale(x, n).d));
      }
    }
  });

  it("normalised it is orthogonal; the seed's signs follow the documented convention", async () => {
    const rng = new Rng(14);
    const n = 256;
    const x = randn(rng, 3, n);
    const y = fromTensor(await hadamardTransform(tensor(x), { normalize: true }));
    for (let i = 0; i < 3; i++) {
      const rowNorm = (m: M) => Math.hypot(...m.d.subarray(i * n, (i + 1) * n));
      expect(Math.abs(rowNorm(y) - rowNorm(x))).toBeLessThan(1e-12);
    }
    const back = fromTensor(await hadamardTransform(tensor(y), { normalize: true }));
    expect(rel(back, x)).toBeLessThan(1e-14);
    // sign_j = (nextU32() & 1) ? -1 : +1 from new Rng(seed), applied before the transform, same for every row.
    const srng = new Rng(77n);
    const signs = Array.from({ length: n }, () => ((srng.nextU32() & 1) === 1 ? -1 : 1));
    const signed = mat(3, n, (i, j) => x.d[i * n + j]! * signs[j]!);
    const a = await hadamardTransform(tensor(x), { normalize: true, seed: 77n });
    const b = await hadamardTransform(tensor(signed), { normalize: true });
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    const c = await hadamardTransform(tensor(x), { normalize: true, seed: 77 });
    expect(Array.from(c.data)).toEqual(Array.from(a.data));
    const d = await hadamardTransform(tensor(x), { normalize: true, seed: 78 });
    expect(Array.from(d.data)).not.toEqual(Array.from(a.data));
    // 1-D input.
    const v = new Tensor("f32", [4], new Float32Array([1, 2, 3, 4]));
    const hv = await hadamardTransform(v);
    expect(hv.shape).toEqual([4]);
    expect(Array.from(hv.data)).toEqual([10, -2, -4, 0]);
  });
});

describe("bad inputs become TersorErrors with the right code", () => {
  const rng = new Rng(15);
  const good = spd(rng, 4);

  it("cholesky: NaN is E_RANGE naming row and column, non-SPD is E_RANGE with the pivot, non-square is E_SHAPE", async () => {
    const withNan = tensor(good, "f32");
    (withNan.data as Float32Array)[2 * 4 + 1] = NaN;
    await expectCode(cholesky(withNan), "E_RANGE", "a contains NaN at row 2, column 1");
    const indef = tensor(mat(2, 2, (i, j) => (i === j ? 1 : 2)));
    await expectCode(cholesky(indef), "E_RANGE", "matrix is not positive definite (pivot j = 1");
    await expectCode(choleskyInverse(indef), "E_RANGE", "not positive definite");
    await expectCode(inverseSpd(indef), "E_RANGE", "not positive definite");
    await expectCode(logdet(indef, { assume: "spd" }), "E_RANGE", "not positive definite");
    await expectCode(solve(indef, tensor(mat(2, 1, () => 1)), { assume: "spd" }), "E_RANGE", "not positive definite");
    await expectCode(cholesky(tensor(randn(rng, 3, 4))), "E_SHAPE", "square");
    await expectCode(eigh(tensor(randn(rng, 3, 4))), "E_SHAPE", "square");
    await expectCode(eigh(tensor(mat(2, 2, (i, j) => i * 2 + j))), "E_RANGE", "not symmetric");
    await expectCode(cholesky(tensor(good), { damping: -1 }), "E_RANGE", "damping");
  });

  it("dtype and rank are checked in TypeScript", async () => {
    await expectCode(svd(new Tensor("f16", [2, 2]) as never), "E_DTYPE", "f32 and f64");
    await expectCode(qr(new Tensor("i32", [2, 2]) as never), "E_DTYPE");
    await expectCode(svd(new Tensor("f32", [2, 2, 2])), "E_SHAPE", "2-D");
    await expectCode(svd({} as never), "E_DTYPE", "must be a Tensor");
    await expectCode(hadamardTransform(new Tensor("f32", [2, 12])), "E_SHAPE", "not a power of two");
    await expectCode(hadamardTransform(new Tensor("f64", [0])), "E_SHAPE", "not a power of two");
  });

  it("the binding itself checks dtypes, lengths, values and shapes (rejections, not throws)", async () => {
    const b = native();
    await expectCode(b.cholesky(new Float32Array([1, 0, 0, NaN]), 2, 2, 0), "E_RANGE", "NaN at row 1, column 1");
    await expectCode(b.cholesky(new Float64Array([1, 2, 2, 1]), 2, 2, 0), "E_RANGE", "pivot j = 1");
    await expectCode(b.cholesky(new Float64Array(6), 2, 3, 0), "E_SHAPE", "2 x 3");
    await expectCode(b.svd(new Float64Array(5), 2, 3, false), "E_SHAPE", "expected rows*cols");
    await expectCode(b.svd(new Int32Array(4) as never, 2, 2, false), "E_DTYPE", "Float32Array or a Float64Array");
    await expectCode(b.solve(new Float64Array(4), 2, 2, new Float32Array(2) as never, 2, 1, false), "E_DTYPE");
    await expectCode(b.solve(new Float64Array([2, 0, 0, 2]), 2, 2, new Float64Array(3), 3, 1, false), "E_SHAPE", "B must have 2 rows");
    await expectCode(b.truncatedSvd(new Float32Array(12), 3, 4, 4, 0, 0, 0, 0), "E_RANGE", "out of range");
    await expectCode(b.randomizedSvd(new Float64Array(12), 3, 4, 7, 10, 2, 0, 0), "E_RANGE", "out of range");
    await expectCode(b.hadamardInPlace(new Float32Array(12), 1, 12, false, false, 0, 0), "E_SHAPE", "not a power of two");
    await expectCode(b.hadamardInPlace(new Float32Array(12), 2, 8, false, false, 0, 0), "E_SHAPE");
    // The binding's in-place transform on a view honours byteOffset.
    const buf = new Float64Array([9, 1, 1, 9]);
    await b.hadamardInPlace(buf.subarray(1, 3), 1, 2, false, false, 0, 0);
    expect(Array.from(buf)).toEqual([9, 2, 0, 9]);
  });
});
