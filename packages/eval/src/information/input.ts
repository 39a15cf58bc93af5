/**
 * Input conversion shared by the information estimators: samples to row-major f64 matrices, labels to
 * dense class codes, logarithm bases to units.
 * @module
 */
import { Tensor, TersorError } from "@tersor/core";
import { z } from "zod";

/**
 * Continuous samples: a `Tensor` (`[N]` = N one-dimensional samples, `[N, d]` = N rows of d columns; any
 * element dtype, converted to f64), rows of numbers (`number[][]`, each row one sample), or numbers
 * (`Float64Array`, `number[]`: N one-dimensional samples).
 */
export type Samples = Tensor | readonly ArrayLike<number>[] | ArrayLike<number>;

/**
 * Discrete observations: one symbol per sample (numbers, strings or bigints, compared by value), rows of
 * symbols (each row one multivariate symbol, compared as a tuple), or a 1-D/2-D `Tensor` of integers.
 */
export type DiscreteSamples = Tensor | readonly (readonly (number | string)[])[] | ArrayLike<number | string | bigint>;

/** A row-major n × d matrix of doubles. */
export interface Matrix {
  data: Float64Array;
  n: number;
  d: number;
}

function tensorToF64(t: Tensor): Float64Array {
  switch (t.dtype) {
    case "f64":
      return t.data as Float64Array;
    case "f16":
    case "bf16":
      return Float64Array.from(t.toFloat32Array());
    case "i64":
      return Float64Array.from(t.data as BigInt64Array, (v) => Number(v));
    case "f32":
    case "i8":
    case "u8":
    case "i16":
    case "i32":
    case "bool":
      return Float64Array.from(t.data as ArrayLike<number>);
    default:
      throw new TersorError("E_DTYPE", `a ${t.dtype} tensor cannot be used as samples; dequantize it first`);
  }
}

function isRowArray(x: Samples): x is readonly ArrayLike<number>[] {
  if (!Array.isArray(x) || x.length === 0) return false;
  const first: unknown = x[0];
  return typeof first === "object" && first !== null;
}

/** Samples as a row-major f64 matrix (zero-copy for f64 tensors and Float64Arrays). */
export function toMatrix(x: Samples, what: string): Matrix {
  if (x instanceof Tensor) {
    if (x.rank === 1) return { data: tensorToF64(x), n: x.shape[0]!, d: 1 };
    if (x.rank === 2) return { data: tensorToF64(x), n: x.shape[0]!, d: x.shape[1]! };
    throw new TersorError("E_SHAPE", `${what} must be a tensor of shape [N] or [N, d], got [${x.shape.join(", ")}]`);
  }
  if (isRowArray(x)) {
    const n = x.length;
    const d = x[0]!.length;
    if (d === 0) throw new TersorError("E_SHAPE", `${what} rows have no columns`);
    const data = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      const row = x[i]!;
      if (row.length !== d) throw new TersorError("E_SHAPE", `${what} row ${i} has ${row.length} values, row 0 has ${d}`);
      for (let j = 0; j < d; j++) {
        const v = row[j];
        if (typeof v !== "number") throw new TersorError("E_RANGE", `${what} row ${i}, column ${j} is not a number`);
        data[i * d + j] = v;
      }
    }
    return { data, n, d };
  }
  const flat = x as ArrayLike<number>;
  if (flat instanceof Float64Array) return { data: flat, n: flat.length, d: 1 };
  const data = new Float64Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== "number") throw new TersorError("E_RANGE", `${what} entry ${i} is not a number`);
    data[i] = v;
  }
  return { data, n: flat.length, d: 1 };
}

/** Rejects NaN/±Infinity naming the row and column (the kernels check too; this fails before any work). */
export function assertFinite(m: Matrix, what: string): void {
  const { data, d } = m;
  for (let t = 0; t < data.length; t++) {
    if (!Number.isFinite(data[t]!)) {
      throw new TersorError("E_RANGE", `${what} contains a non-finite value (${data[t]}) at row ${Math.floor(t / d)}, column ${t % d}`);
    }
  }
}

/** The rows `idx` of a matrix, in that order. */
export function takeRows(m: Matrix, idx: Uint32Array): Matrix {
  const out = new Float64Array(idx.length * m.d);
  for (let r = 0; r < idx.length; r++) out.set(m.data.subarray(idx[r]! * m.d, idx[r]! * m.d + m.d), r * m.d);
  return { data: out, n: idx.length, d: m.d };
}

/** Checks that paired samples have one row each per observation. */
export function assertSameRows(a: Matrix, b: Matrix, an: string, bn: string): void {
  if (a.n !== b.n) throw new TersorError("E_SHAPE", `${an} has ${a.n} samples but ${bn} has ${b.n}: paired samples need the same count`);
}

/** Dense codes 0..classes-1 of discrete observations (first-seen order), with the class count. */
export interface Codes {
  codes: Uint32Array;
  classes: number;
}

function symbolKey(v: unknown, what: string, i: number): string | number | bigint {
  if (typeof v === "number") {
    if (Number.isNaN(v)) throw new TersorError("E_RANGE", `${what} entry ${i} is NaN`);
    return v;
  }
  if (typeof v === "string" || typeof v === "bigint") return v;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return JSON.stringify(Array.from(v as ArrayLike<unknown>, (e) => (typeof e === "bigint" ? `${e}n` : e)));
  throw new TersorError("E_RANGE", `${what} entry ${i} is not a number, string or row of them`);
}

/** Discrete observations as dense codes. A 2-D tensor's rows are tuples. */
export function toCodes(x: DiscreteSamples, what: string): Codes {
  let items: ArrayLike<unknown>;
  if (x instanceof Tensor) {
    if (x.rank === 1) items = x.dtype === "i64" ? (x.data as BigInt64Array) : Array.from(tensorToF64(x));
    else if (x.rank === 2) {
      const v = tensorToF64(x);
      const d = x.shape[1]!;
      items = Array.from({ length: x.shape[0]! }, (_, i) => Array.from(v.subarray(i * d, i * d + d)));
    } else throw new TersorError("E_SHAPE", `${what} must be a tensor of shape [N] or [N, d], got [${x.shape.join(", ")}]`);
  } else items = x as ArrayLike<unknown>;
  const map = new Map<string | number | bigint, number>();
  const codes = new Uint32Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const key = symbolKey(items[i], what, i);
    let c = map.get(key);
    if (c === undefined) {
      c = map.size;
      map.set(key, c);
    }
    codes[i] = c;
  }
  return { codes, classes: map.size };
}

/** The codes of the observations `idx`, re-densified. */
export function takeCodes(c: Codes, idx: Uint32Array): Codes {
  const remap = new Int32Array(c.classes).fill(-1);
  const codes = new Uint32Array(idx.length);
  let classes = 0;
  for (let r = 0; r < idx.length; r++) {
    const old = c.codes[idx[r]!]!;
    if (remap[old] === -1) remap[old] = classes++;
    codes[r] = remap[old]!;
  }
  return { codes, classes };
}

/** A logarithm base: a positive number other than 1 (2 = bits, e = nats, 10 = hartleys). */
export const BaseSchema = z
  .number()
  .positive()
  .finite()
  .refine((b) => b !== 1, "the logarithm base must not be 1");

/** The unit name of a logarithm base. */
export function unitOf(base: number): string {
  if (base === Math.E) return "nats";
  if (base === 2) return "bits";
  if (base === 10) return "hartleys";
  return `log${base} units`;
}

/** Parses options with a zod schema; failures become E_RANGE TersorErrors naming the option. */
export function parseOptions<S extends z.ZodType>(schema: S, opts: unknown, fn: string): z.output<S> {
  const r = schema.safeParse(opts ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? `option "${issue.path.join(".")}"` : "options";
    throw new TersorError("E_RANGE", `${fn}: invalid ${where}: ${issue?.message ?? "invalid"}`);
  }
  return r.data;
}

/** The median Euclidean distance over all pairs of at most `maxRows` evenly spaced rows; E_RANGE when 0. */
export function medianOf(m: Matrix, maxRows: number, what: string): number {
  const rows = Math.min(m.n, maxRows);
  if (rows < 2) throw new TersorError("E_RANGE", `the median-distance bandwidth needs at least 2 samples of ${what}; pass a bandwidth`);
  const pick = Array.from({ length: rows }, (_, i) => Math.floor((i * m.n) / rows));
  const dists = new Float64Array((rows * (rows - 1)) / 2);
  let t = 0;
  for (let a = 0; a < rows; a++) {
    const pa = pick[a]! * m.d;
    for (let b = a + 1; b < rows; b++) {
      const pb = pick[b]! * m.d;
      let s = 0;
      for (let k = 0; k < m.d; k++) {
        const u = m.data[pa + k]! - m.data[pb + k]!;
        s += u * u;
      }
      dists[t++] = Math.sqrt(s);
    }
  }
  dists.sort();
  const h = dists.length;
  const med = h % 2 === 1 ? dists[(h - 1) / 2]! : 0.5 * (dists[h / 2 - 1]! + dists[h / 2]!);
  if (!(med > 0)) {
    throw new TersorError(
      "E_RANGE",
      `the median distance between samples of ${what} is 0 (constant or mostly repeated data): a zero-variance kernel; pass an explicit bandwidth`,
    );
  }
  return med;
}

/** A Gaussian kernel bandwidth σ > 0, or "median" for the median pairwise distance. */
export const BandwidthSchema = z.union([z.number().positive().finite(), z.literal("median")]);
export type Bandwidth = z.infer<typeof BandwidthSchema>;

/** σ from a bandwidth option ("median" or undefined: the median heuristic on m). */
export function resolveBandwidth(bw: Bandwidth | undefined, m: Matrix, what: string): number {
  return bw === undefined || bw === "median" ? medianOf(m, 500, what) : bw;
}
