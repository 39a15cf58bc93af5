import { TersorError, native } from "@tersor/native";
import { z } from "zod";

import {
  type DType,
  type ElementDType,
  type Storage,
  type StorageFor,
  allocStorage,
  assertDType,
  byteLengthOf,
  isElementDType,
  storageBytes,
  storageFromBytes,
} from "./dtype.js";

/** A shape: non-negative safe integers. */
export const ShapeSchema = z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)).max(16);

/** Number of elements of a shape (1 for a scalar shape `[]`). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  if (!Number.isSafeInteger(n)) throw new TersorError("E_SHAPE", `shape [${shape.join(", ")}] has more elements than can be addressed`);
  return n;
}

function parseShape(shape: readonly number[]): number[] {
  const r = ShapeSchema.safeParse(shape);
  if (!r.success) throw new TersorError("E_SHAPE", `invalid shape [${shape.join(", ")}]: dimensions must be non-negative integers (at most 16 of them)`);
  return r.data;
}

/**
 * A dense, contiguous, row-major tensor. Element dtypes live in the matching typed array
 * (`f16`/`bf16` as 16-bit patterns); quantized dtypes in raw ggml blocks along the last axis.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: D extends ElementDType ? StorageFor[D] : Uint8Array;

  constructor(dtype: D, shape: readonly number[], data?: Storage) {
    assertDType(dtype);
    this.dtype = dtype;
    this.shape = Object.freeze(parseShape(shape));
    const n = numelOf(this.shape);
    if (data === undefined) {
      data = allocStorage(dtype, n);
    } else {
      checkStorageKind(dtype, data);
      const expected = byteLengthOf(dtype, n);
      if (data.byteLength !== expected) {
        throw new TersorError("E_SHAPE", `${dtype} tensor of shape [${this.shape.join(", ")}] needs ${expected} bytes, got ${data.byteLength}`);
      }
    }
    this.data = data as Tensor<D>["data"];
  }

  /** Wraps little-endian bytes (zero-copy when aligned). */
  static fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
    assertDType(dtype);
    return new Tensor(dtype, shape, storageFromBytes(dtype, bytes));
  }

  /** An f32 tensor from numbers (nested arrays are flattened row-major; the shape must match). */
  static f32(values: ArrayLike<number>, shape?: readonly number[]): Tensor<"f32"> {
    const data = Float32Array.from(values);
    return new Tensor("f32", shape ?? [data.length], data);
  }

  get numel(): number {
    return numelOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get byteLength(): number {
    return this.data.byteLength;
  }
  /** The raw bytes (a view). */
  bytes(): Uint8Array {
    return storageBytes(this.data as Storage);
  }

  /** Same data, new shape with the same element count. One dimension may be -1. */
  reshape(shape: readonly number[]): Tensor<D> {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new TersorError("E_SHAPE", "reshape takes at most one -1 dimension");
    const partial = numelOf(known);
    const full = inferred === 1 ? shape.map((d) => (d === -1 ? (partial === 0 ? 0 : this.numel / partial) : d)) : [...shape];
    if (numelOf(full) !== this.numel || full.some((d) => !Number.isInteger(d))) {
      throw new TersorError("E_SHAPE", `cannot reshape [${this.shape.join(", ")}] (${this.numel} elements) to [${shape.join(", ")}]`);
    }
    return new Tensor(this.dtype, full, this.data as Storage);
  }

  /**
   * Converts between floating dtypes (`f32`, `f16`, `bf16`, `f64`) in native code: narrowing rounds to
   * nearest even, NaN and ±Inf are preserved. Integer dtypes convert to and from `f32`/`f64` by value.
   */
  to<T extends ElementDType>(dtype: T): Tensor<T> {
    if (!isElementDType(this.dtype)) {
      throw new TersorError("E_DTYPE", `cannot convert a ${this.dtype} tensor element-wise; dequantize it first`);
    }
    if ((this.dtype as DType) === dtype) return this as unknown as Tensor<T>;
    const f32 = toF32Storage(this.dtype, this.data as Storage);
    return new Tensor(dtype, this.shape, fromF32Storage(dtype, f32));
  }

  /** The values as f32 (a copy unless the tensor already is f32). */
  toFloat32Array(): Float32Array {
    return this.to("f32").data as Float32Array;
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}])`;
  }
}

function checkStorageKind(dtype: DType, data: Storage): void {
  const want = isElementDType(dtype) ? allocStorage(dtype, 0).constructor : Uint8Array;
  if (data.constructor !== want) {
    throw new TersorError("E_DTYPE", `${dtype} data must be a ${want.name}, got ${data.constructor.name}`);
  }
}

function toF32Storage(d: ElementDType, s: Storage): Float32Array {
  const b = native();
  switch (d) {
    case "f32":
      return s as Float32Array;
    case "f16": {
      const out = new Float32Array(s.length);
      b.f16ToF32(s as Uint16Array, out);
      return out;
    }
    case "bf16": {
      const out = new Float32Array(s.length);
      b.bf16ToF32(s as Uint16Array, out);
      return out;
    }
    case "i64":
      return Float32Array.from(s as BigInt64Array, (v) => Number(v));
    default:
      return Float32Array.from(s as ArrayLike<number>);
  }
}

function fromF32Storage(d: ElementDType, f: Float32Array): Storage {
  const b = native();
  switch (d) {
    case "f32":
      return f === undefined ? new Float32Array(0) : Float32Array.from(f);
    case "f16": {
      const out = new Uint16Array(f.length);
      b.f32ToF16(f, out);
      return out;
    }
    case "bf16": {
      const out = new Uint16Array(f.length);
      b.f32ToBf16(f, out);
      return out;
    }
    case "f64":
      return Float64Array.from(f);
    case "i64":
      return BigInt64Array.from(f, (v) => BigInt(Math.trunc(v)));
    case "bool":
      return Uint8Array.from(f, (v) => (v !== 0 ? 1 : 0));
    default: {
      const out = allocStorage(d, f.length) as Exclude<Storage, BigInt64Array>;
      for (let i = 0; i < f.length; i++) out[i] = Math.trunc(f[i]!);
      return out;
    }
  }
}
