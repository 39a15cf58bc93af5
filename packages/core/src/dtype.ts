import { TersorError } from "@tersor/native";

import { type GgmlTypeName, ggmlTypeByName } from "./ggml.js";

/** Element types with one value per element. `f16`/`bf16` are stored as their 16-bit patterns. */
export type ElementDType = "f32" | "f16" | "bf16" | "f64" | "i8" | "u8" | "i16" | "i32" | "i64" | "bool";

/** Block-quantized types (ggml layouts), stored as opaque bytes. */
export type QuantDType = Exclude<GgmlTypeName, "f32" | "f16" | "bf16" | "f64" | "i8" | "i16" | "i32" | "i64">;

/** Every dtype a {@link Tensor} can hold. */
export type DType = ElementDType | QuantDType;

/** The typed-array class that stores each element dtype. */
export interface StorageFor {
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  f64: Float64Array;
  i8: Int8Array;
  u8: Uint8Array;
  i16: Int16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  bool: Uint8Array;
}

/** Storage of any dtype: the typed array of an element dtype, raw bytes for quantized ones. */
export type Storage = StorageFor[ElementDType];

export const ELEMENT_DTYPES: readonly ElementDType[] = ["f32", "f16", "bf16", "f64", "i8", "u8", "i16", "i32", "i64", "bool"];

const BYTES: Record<ElementDType, number> = { f32: 4, f16: 2, bf16: 2, f64: 8, i8: 1, u8: 1, i16: 2, i32: 4, i64: 8, bool: 1 };

type TypedArrayCtor = {
  new (n: number): Storage;
  new (buf: ArrayBufferLike, byteOffset: number, length: number): Storage;
  readonly BYTES_PER_ELEMENT: number;
};

const CTORS: Record<ElementDType, TypedArrayCtor> = {
  f32: Float32Array as unknown as TypedArrayCtor,
  f16: Uint16Array as unknown as TypedArrayCtor,
  bf16: Uint16Array as unknown as TypedArrayCtor,
  f64: Float64Array as unknown as TypedArrayCtor,
  i8: Int8Array as unknown as TypedArrayCtor,
  u8: Uint8Array as unknown as TypedArrayCtor,
  i16: Int16Array as unknown as TypedArrayCtor,
  i32: Int32Array as unknown as TypedArrayCtor,
  i64: BigInt64Array as unknown as TypedArrayCtor,
  bool: Uint8Array as unknown as TypedArrayCtor,
};

export function isElementDType(d: string): d is ElementDType {
  return (ELEMENT_DTYPES as readonly string[]).includes(d);
}

export function isQuantDType(d: string): d is QuantDType {
  const t = ggmlTypeByName(d);
  return t !== undefined && t.quantized;
}

/** Throws `E_DTYPE` unless `d` names a dtype. */
export function assertDType(d: string): asserts d is DType {
  if (!isElementDType(d) && !isQuantDType(d)) {
    throw new TersorError("E_DTYPE", `unknown dtype "${d}"; expected one of ${ELEMENT_DTYPES.join(", ")} or a ggml quantized type`);
  }
}

/** Bytes per element of an element dtype. */
export function dtypeBytes(d: ElementDType): number {
  return BYTES[d];
}

/** Bytes needed for `numel` elements of any dtype (quantized: whole blocks, else `E_SHAPE`). */
export function byteLengthOf(d: DType, numel: number): number {
  if (isElementDType(d)) return numel * BYTES[d];
  const t = ggmlTypeByName(d)!;
  if (numel % t.blockSize !== 0) {
    throw new TersorError("E_SHAPE", `${d} stores blocks of ${t.blockSize} elements; ${numel} elements is not a whole number of blocks`);
  }
  return (numel / t.blockSize) * t.typeSize;
}

/** A new zeroed storage array for `numel` elements. */
export function allocStorage(d: DType, numel: number): Storage {
  if (isElementDType(d)) return new CTORS[d](numel);
  return new Uint8Array(byteLengthOf(d, numel));
}

/**
 * A storage view over raw little-endian bytes. Zero-copy when `bytes` is aligned for the element
 * type; otherwise the bytes are copied into an aligned buffer.
 */
export function storageFromBytes(d: DType, bytes: Uint8Array): Storage {
  if (!isElementDType(d)) return bytes;
  const ctor = CTORS[d];
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new TersorError("E_SHAPE", `${bytes.byteLength} bytes is not a whole number of ${d} elements (${size} bytes each)`);
  }
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, bytes.byteLength / size);
}

/** The raw bytes of a storage array (a view, no copy). */
export function storageBytes(s: Storage): Uint8Array {
  return new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
}
