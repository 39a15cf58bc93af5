/**
 * GGUF (versions 2 and 3, little-endian): the llama.cpp model format.
 *
 * Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count, the metadata key/value
 * pairs, the tensor infos (name, dims with ne0 innermost, ggml type, offset into the data section),
 * padding to `general.alignment` (default 32), then the data section.
 *
 * The reader parses the header incrementally through a bounded window (never more than
 * {@link GGUF_READ_CHUNK} bytes at a time, plus the size of the largest single string or numeric
 * array), checks every count against the bytes left before allocating anything, and reads tensor
 * data on demand.
 */
import type { FileHandle } from "node:fs/promises";

import { TersorError } from "@tersor/native";

import { writeAtomic } from "../atomic.js";
import { type GgmlTypeInfo, type GgmlTypeName, ggmlTypeById, ggmlTypeByName } from "../ggml.js";
import { Tensor } from "../tensor.js";
import { fsError, lazyTensorFile, openFile, readExact } from "./file-io.js";

/** The GGUF metadata value types, by their numeric tag order. */
export const GGUF_VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"] as const;

/** A GGUF metadata value type. */
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

/** The numeric tag GGUF stores for a value type. */
export function ggufValueTypeId(t: GgufValueType): number {
  return GGUF_VALUE_TYPES.indexOf(t);
}

/** Elements of a GGUF array: a typed array for numbers, plain arrays for bools, strings and arrays. */
export type GgufArrayValues =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | readonly boolean[]
  | readonly string[]
  | readonly GgufArray[];

/** A GGUF array value: its element type and its elements (nested arrays are GgufArrays). */
export interface GgufArray {
  readonly itemType: GgufValueType;
  readonly values: GgufArrayValues;
}

/** A GGUF metadata value: u64/i64 as bigint, other numbers as number. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** A metadata value with its type tag. */
export interface GgufEntry {
  readonly type: GgufValueType;
  readonly value: GgufValue;
}

/** Writer input for an array: typed arrays, or plain arrays of values of `itemType`. */
export interface GgufArrayInput {
  readonly itemType: GgufValueType;
  readonly values: GgufArrayValues | ReadonlyArray<number | bigint | boolean | string | GgufArrayInput>;
}

const MAX_NESTING = 8;

function isGgufValueType(t: unknown): t is GgufValueType {
  return typeof t === "string" && (GGUF_VALUE_TYPES as readonly string[]).includes(t);
}

const INT_RANGE: Partial<Record<GgufValueType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

/** Checks (and normalizes: u64/i64 to bigint, arrays to typed storage) a value for its type. */
function normalizeValue(type: GgufValueType, value: unknown, where: string, depth = 0): GgufValue {
  const bad = (want: string): never => {
    throw new TersorError("E_RANGE", `${where}: a GGUF ${type} must be ${want}, got ${typeof value === "bigint" ? `${value}n` : (JSON.stringify(value) ?? String(value)).slice(0, 60)}`);
  };
  switch (type) {
    case "u8":
    case "i8":
    case "u16":
    case "i16":
    case "u32":
    case "i32": {
      const [lo, hi] = INT_RANGE[type]!;
      const v = typeof value === "bigint" ? Number(value) : value;
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) bad(`an integer in [${lo}, ${hi}]`);
      return v as number;
    }
    case "u64":
    case "i64": {
      let v: bigint;
      if (typeof value === "bigint") v = value;
      else if (typeof value === "number" && Number.isSafeInteger(value)) v = BigInt(value);
      else return bad("a bigint or a safe integer");
      if (type === "u64" ? BigInt.asUintN(64, v) !== v : BigInt.asIntN(64, v) !== v) bad(`within the ${type} range`);
      return v;
    }
    case "f32":
    case "f64":
      if (typeof value !== "number") bad("a number");
      return value as number;
    case "bool":
      if (typeof value !== "boolean") bad("a boolean");
      return value as boolean;
    case "string":
      if (typeof value !== "string") bad("a string");
      return value as string;
    case "array": {
      if (depth >= MAX_NESTING) throw new TersorError("E_RANGE", `${where}: arrays nest deeper than ${MAX_NESTING} levels`);
      const a = value as GgufArrayInput;
      if (typeof a !== "object" || a === null || !isGgufValueType(a.itemType) || a.values === null || typeof a.values !== "object" || typeof (a.values as { length?: unknown }).length !== "number") {
        bad("an object {itemType, values}");
      }
      return normalizeArray(a.itemType, a.values as ArrayLike<unknown>, where, depth + 1);
    }
  }
}

const TYPED: Partial<Record<GgufValueType, { new (n: number): GgufArrayValues & { [i: number]: number | bigint } }>> = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
} as never;

function normalizeArray(itemType: GgufValueType, values: ArrayLike<unknown>, where: string, depth: number): GgufArray {
  const ctor = TYPED[itemType];
  if (ctor !== undefined) {
    if (values instanceof (ctor as unknown as typeof Uint8Array)) return { itemType, values: values as GgufArrayValues };
    const out = new ctor(values.length);
    for (let i = 0; i < values.length; i++) out[i] = normalizeValue(itemType, values[i], `${where}[${i}]`, depth) as number | bigint;
    return { itemType, values: out };
  }
  const out: GgufValue[] = [];
  for (let i = 0; i < values.length; i++) out.push(normalizeValue(itemType, values[i], `${where}[${i}]`, depth));
  return { itemType, values: out as GgufArrayValues };
}

/** Infers a type for a plain JS value: see {@link GgufMetadata.from}. */
function inferEntry(value: unknown, where: string): GgufEntry {
  if (typeof value === "string") return { type: "string", value };
  if (typeof value === "boolean") return { type: "bool", value };
  if (typeof value === "bigint") return { type: value < 0n ? "i64" : "u64", value: normalizeValue(value < 0n ? "i64" : "u64", value, where) };
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return { type: "u32", value };
    if (Number.isInteger(value) && value >= -0x80000000 && value < 0) return { type: "i32", value };
    if (Number.isSafeInteger(value)) return { type: "i64", value: BigInt(value) };
    return { type: "f32", value };
  }
  if (typeof value === "object" && value !== null && "itemType" in value && "values" in value) {
    return { type: "array", value: normalizeValue("array", value, where) };
  }
  if (Array.isArray(value)) {
    let itemType: GgufValueType = "i32";
    if (value.length > 0) {
      if (value.every((v) => typeof v === "string")) itemType = "string";
      else if (value.every((v) => typeof v === "boolean")) itemType = "bool";
      else if (value.every((v) => typeof v === "number")) itemType = value.every((v) => Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) ? "i32" : "f32";
      else if (value.every((v) => typeof v === "bigint")) itemType = "i64";
      else throw new TersorError("E_RANGE", `${where}: cannot infer one GGUF element type for a mixed array; pass {itemType, values}`);
    }
    return { type: "array", value: normalizeArray(itemType, value, where, 1) };
  }
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    const t = ({ Uint8Array: "u8", Int8Array: "i8", Uint16Array: "u16", Int16Array: "i16", Uint32Array: "u32", Int32Array: "i32", Float32Array: "f32", Float64Array: "f64", BigUint64Array: "u64", BigInt64Array: "i64" } as Record<string, GgufValueType>)[name];
    if (t !== undefined) return { type: "array", value: { itemType: t, values: value as unknown as GgufArrayValues } };
  }
  throw new TersorError("E_RANGE", `${where}: cannot store ${typeof value} as GGUF metadata`);
}

/** GGUF metadata: an ordered, typed key/value map. */
export class GgufMetadata {
  private readonly map = new Map<string, GgufEntry>();

  constructor(entries?: Iterable<readonly [string, GgufEntry]>) {
    if (entries) for (const [k, e] of entries) this.set(k, e.type, e.value);
  }

  /**
   * Metadata from plain values, typing each as: string → string, boolean → bool, integer in
   * [0, 2^32) → u32, negative integer ≥ -2^31 → i32, other safe integers → i64, other numbers → f32,
   * bigint → u64 (i64 if negative), arrays by their elements (strings, bools, i32 or f32 numbers,
   * i64 bigints), typed arrays by their class. `{type, value}` entries and `{itemType, values}`
   * arrays are taken as given.
   */
  static from(record: Record<string, unknown>): GgufMetadata {
    const m = new GgufMetadata();
    for (const [k, v] of Object.entries(record)) {
      if (typeof v === "object" && v !== null && "type" in v && "value" in v && isGgufValueType((v as GgufEntry).type)) {
        m.set(k, (v as GgufEntry).type, (v as GgufEntry).value);
      } else {
        const e = inferEntry(v, `metadata "${k}"`);
        m.set(k, e.type, e.value);
      }
    }
    return m;
  }

  /** Sets a key, checking the value against the type (`E_RANGE`). */
  set(key: string, type: GgufValueType, value: GgufValue | GgufArrayInput): this {
    if (typeof key !== "string") throw new TersorError("E_RANGE", `GGUF metadata keys must be strings`);
    if (!isGgufValueType(type)) throw new TersorError("E_RANGE", `metadata "${key}": unknown GGUF value type "${String(type)}"`);
    this.map.set(key, { type, value: normalizeValue(type, value, `metadata "${key}"`) });
    return this;
  }

  /** Internal: stores an already validated entry. */
  static fromParsed(entries: Map<string, GgufEntry>): GgufMetadata {
    const m = new GgufMetadata();
    for (const [k, e] of entries) m.map.set(k, e);
    return m;
  }

  /** The value of `key`, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.map.get(key)?.value;
  }
  /** The value type of `key`, or undefined. */
  type(key: string): GgufValueType | undefined {
    return this.map.get(key)?.type;
  }
  /** The typed entry of `key`, or undefined. */
  entry(key: string): GgufEntry | undefined {
    return this.map.get(key);
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  delete(key: string): boolean {
    return this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
  keys(): IterableIterator<string> {
    return this.map.keys();
  }
  entries(): IterableIterator<[string, GgufEntry]> {
    return this.map.entries();
  }
  [Symbol.iterator](): IterableIterator<[string, GgufEntry]> {
    return this.map.entries();
  }
}

/** One tensor described by a GGUF header. */
export interface GgufTensorInfo {
  readonly name: string;
  /** The ggml type name, also the dtype `read` returns. */
  readonly dtype: GgmlTypeName;
  readonly type: GgmlTypeInfo;
  /** Dimensions as stored, ne0 (innermost) first. */
  readonly dims: readonly number[];
  /** Row-major shape (the dims reversed). */
  readonly shape: readonly number[];
  readonly numel: number;
  /** Offset relative to the data section, as stored. */
  readonly offset: number;
  /** Absolute position in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** An open GGUF file. */
export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute position of the data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly metadata: GgufMetadata;
  /** Tensors in header order. */
  readonly tensors: readonly GgufTensorInfo[];
  get(name: string): GgufTensorInfo | undefined;
  /** Reads one tensor: row-major shape, dtype = the ggml type (quantized types as raw blocks). */
  read(name: string): Promise<Tensor>;
  readBytes(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Size of the window the header is read through. */
export const GGUF_READ_CHUNK = 1 << 20;
/** Largest single string or metadata array payload the reader accepts. */
export const GGUF_MAX_VALUE_BYTES = 512 << 20;
/** Largest key or tensor name (the format's own limit for keys). */
const MAX_NAME_BYTES = 65535;
export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads the header through a bounded window, failing with E_FORMAT on any read past the end. */
class HeaderReader {
  pos = 0;
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly path: string,
  ) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  fail(msg: string): never {
    throw new TersorError("E_FORMAT", `${this.path}: ${msg}`);
  }

  /** Makes [pos, pos + n) available in the window (n ≤ GGUF_READ_CHUNK); returns its offset in it. */
  private async need(n: number, what: string): Promise<number> {
    if (this.pos + n > this.size) this.fail(`unexpected end of file at byte ${this.pos} reading ${what} (${n} bytes needed, ${this.size - this.pos} left); the file is truncated or corrupt`);
    const off = this.pos - this.bufStart;
    if (off >= 0 && off + n <= this.buf.byteLength) return off;
    const len = Math.min(Math.max(GGUF_READ_CHUNK, n), this.size - this.pos);
    const b = new Uint8Array(len);
    await readExact(this.fh, b, this.pos, this.path);
    this.buf = b;
    this.view = new DataView(b.buffer);
    this.bufStart = this.pos;
    return 0;
  }

  async u32(what: string): Promise<number> {
    const o = await this.need(4, what);
    this.pos += 4;
    return this.view.getUint32(o, true);
  }
  async u64(what: string): Promise<bigint> {
    const o = await this.need(8, what);
    this.pos += 8;
    return this.view.getBigUint64(o, true);
  }
  /** A u64 that must fit a safe integer. */
  async u64n(what: string): Promise<number> {
    const v = await this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is too large`);
    return Number(v);
  }

  /** `n` raw bytes (checked against the end of the file first). */
  async bytes(n: number, what: string): Promise<Uint8Array> {
    if (n > this.remaining) this.fail(`${what} claims ${n} bytes but only ${this.remaining} are left in the file`);
    if (n <= GGUF_READ_CHUNK) {
      const o = await this.need(n, what);
      this.pos += n;
      return this.buf.subarray(o, o + n);
    }
    if (n > GGUF_MAX_VALUE_BYTES) this.fail(`${what} of ${n} bytes exceeds the ${GGUF_MAX_VALUE_BYTES}-byte limit`);
    const b = new Uint8Array(n);
    await readExact(this.fh, b, this.pos, this.path);
    this.pos += n;
    return b;
  }

  async string(what: string, maxBytes = GGUF_MAX_VALUE_BYTES): Promise<string> {
    const len = await this.u64(`${what} length`);
    if (len > BigInt(this.remaining)) this.fail(`${what} length ${len} runs past the end of the file (${this.remaining} bytes left)`);
    if (len > BigInt(maxBytes)) this.fail(`${what} length ${len} exceeds the limit of ${maxBytes} bytes`);
    const b = await this.bytes(Number(len), what);
    try {
      return utf8.decode(b);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /** A scalar of a fixed-size type. */
  async scalar(type: GgufValueType, what: string): Promise<number | bigint | boolean> {
    const size = SCALAR_SIZE[type]!;
    const o = await this.need(size, what);
    this.pos += size;
    const v = this.view;
    switch (type) {
      case "u8":
        return v.getUint8(o);
      case "i8":
        return v.getInt8(o);
      case "u16":
        return v.getUint16(o, true);
      case "i16":
        return v.getInt16(o, true);
      case "u32":
        return v.getUint32(o, true);
      case "i32":
        return v.getInt32(o, true);
      case "f32":
        return v.getFloat32(o, true);
      case "f64":
        return v.getFloat64(o, true);
      case "u64":
        return v.getBigUint64(o, true);
      case "i64":
        return v.getBigInt64(o, true);
      case "bool": {
        const b = v.getUint8(o);
        if (b > 1) this.fail(`${what}: bool byte ${b} is neither 0 nor 1`);
        return b === 1;
      }
      default:
        return this.fail(`internal: ${type} is not a scalar`);
    }
  }

  async valueType(what: string): Promise<GgufValueType> {
    const id = await this.u32(`${what} type`);
    const t = GGUF_VALUE_TYPES[id];
    if (t === undefined) this.fail(`${what} has unknown value type ${id}`);
    return t;
  }

  async value(type: GgufValueType, what: string, depth = 0): Promise<GgufValue> {
    if (type === "string") return await this.string(what);
    if (type !== "array") return await this.scalar(type, what);
    if (depth >= MAX_NESTING) this.fail(`${what}: arrays nest deeper than ${MAX_NESTING} levels`);
    const itemType = await this.valueType(`${what} element`);
    const count = await this.u64(`${what} element count`);
    const min = MIN_VALUE_SIZE[itemType];
    // Check the count against the bytes left before allocating anything for it.
    if (count * BigInt(min) > BigInt(this.remaining)) {
      this.fail(`${what}: array of ${count} ${itemType} elements cannot fit in the ${this.remaining} bytes left in the file`);
    }
    const n = Number(count);
    const ctor = TYPED[itemType];
    if (ctor !== undefined) {
      const bytes = await this.bytes(n * min, `${what} (${itemType} × ${n})`);
      const copy = new Uint8Array(bytes.byteLength);
      copy.set(bytes);
      return { itemType, values: new (ctor as unknown as new (b: ArrayBuffer, o: number, n: number) => GgufArrayValues)(copy.buffer, 0, n) };
    }
    if (itemType === "bool") {
      const out: boolean[] = [];
      for (let i = 0; i < n; i++) out.push((await this.scalar("bool", `${what}[${i}]`)) as boolean);
      return { itemType, values: out };
    }
    if (itemType === "string") {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push(await this.string(`${what}[${i}]`));
      return { itemType, values: out };
    }
    const out: GgufArray[] = [];
    for (let i = 0; i < n; i++) out.push((await this.value("array", `${what}[${i}]`, depth + 1)) as GgufArray);
    return { itemType, values: out };
  }
}

const SCALAR_SIZE: Partial<Record<GgufValueType, number>> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };
/** Fewest bytes one element of a type takes (a string: its length; an array: type + count). */
const MIN_VALUE_SIZE: Record<GgufValueType, number> = { ...(SCALAR_SIZE as Record<GgufValueType, number>), string: 8, array: 12 };

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Opens a GGUF file (v2 or v3): parses and validates the header (`E_FORMAT` for anything malformed,
 * `E_DTYPE` for unknown ggml types, `E_IO` when it cannot be read). Tensor data is read on demand.
 */
export async function openGguf(path: string): Promise<GgufFile> {
  const { fh, size } = await openFile(path);
  try {
    const r = new HeaderReader(fh, size, path);
    if (size < 4) r.fail(`not a GGUF file (${size} bytes)`);
    const magic = await r.u32("magic");
    if (magic !== MAGIC) r.fail(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, "0")}, expected "GGUF")`);
    const version = await r.u32("version");
    if (version !== 2 && version !== 3) {
      const hint = version === 1 ? " (GGUF v1 is not supported)" : version >= 0x01000000 ? " (a big-endian GGUF file?)" : "";
      r.fail(`unsupported GGUF version ${version}${hint}; tersor reads versions 2 and 3`);
    }
    const tensorCount = await r.u64("tensor count");
    const kvCount = await r.u64("metadata count");
    // A key/value pair takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
    if (tensorCount * 24n > BigInt(r.remaining)) r.fail(`tensor count ${tensorCount} cannot fit in the ${r.remaining} bytes left in the file`);
    if (kvCount * 13n + tensorCount * 24n > BigInt(r.remaining)) r.fail(`metadata count ${kvCount} cannot fit in the ${r.remaining} bytes left in the file`);

    const entries = new Map<string, GgufEntry>();
    for (let i = 0; i < Number(kvCount); i++) {
      const key = await r.string(`metadata key #${i}`, MAX_NAME_BYTES);
      if (entries.has(key)) r.fail(`duplicate metadata key "${key}"`);
      const type = await r.valueType(`metadata "${key}"`);
      const value = await r.value(type, `metadata "${key}"`);
      entries.set(key, { type, value });
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = entries.get("general.alignment");
    if (al !== undefined) {
      if (al.type !== "u32") r.fail(`general.alignment must be a u32, got ${al.type}`);
      const a = al.value as number;
      if (a === 0 || (a & (a - 1)) !== 0) r.fail(`general.alignment ${a} is not a power of two`);
      alignment = a;
    }

    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    const pending: Array<{ name: string; type: GgmlTypeInfo; dims: number[]; numel: number; offset: number; byteLength: number }> = [];
    for (let i = 0; i < Number(tensorCount); i++) {
      const name = await r.string(`tensor name #${i}`, MAX_NAME_BYTES);
      if (names.has(name)) r.fail(`duplicate tensor name "${name}"`);
      names.add(name);
      const nDims = await r.u32(`tensor "${name}" n_dims`);
      if (nDims > 4) r.fail(`tensor "${name}" has ${nDims} dimensions; GGUF allows at most 4`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(await r.u64n(`tensor "${name}" ne${d}`));
      let numel = 1;
      for (const d of dims) numel *= d;
      if (!Number.isSafeInteger(numel)) r.fail(`tensor "${name}" dims [${dims.join(", ")}] have too many elements`);
      const typeId = await r.u32(`tensor "${name}" type`);
      const type = ggmlTypeById(typeId);
      if (type === undefined) throw new TersorError("E_DTYPE", `${path}: tensor "${name}" has unknown or retired ggml type ${typeId}`);
      const ne0 = dims[0] ?? 1;
      if (ne0 % type.blockSize !== 0) r.fail(`tensor "${name}": ne0 = ${ne0} is not a multiple of the ${type.name} block size ${type.blockSize}`);
      const offset = await r.u64n(`tensor "${name}" offset`);
      if (offset % alignment !== 0) r.fail(`tensor "${name}": data offset ${offset} is not a multiple of the alignment ${alignment}`);
      const byteLength = (numel / type.blockSize) * type.typeSize;
      pending.push({ name, type, dims, numel, offset, byteLength });
    }
    const dataOffset = alignUp(r.pos, alignment);
    if (pending.length > 0 && dataOffset > size) r.fail(`the data section would start at byte ${dataOffset}, past the end of the ${size}-byte file`);
    for (const p of pending) {
      const byteOffset = dataOffset + p.offset;
      if (!Number.isSafeInteger(byteOffset + p.byteLength) || byteOffset + p.byteLength > size) {
        r.fail(`tensor "${p.name}" data [${byteOffset}, ${byteOffset + p.byteLength}) extends beyond the end of the ${size}-byte file (truncated?)`);
      }
      tensors.push(
        Object.freeze({
          name: p.name,
          dtype: p.type.name,
          type: p.type,
          dims: Object.freeze(p.dims),
          shape: Object.freeze([...p.dims].reverse()),
          numel: p.numel,
          offset: p.offset,
          byteOffset,
          byteLength: p.byteLength,
        }),
      );
    }
    const sorted = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!;
      const b = sorted[i]!;
      if (b.offset < a.offset + a.byteLength) {
        r.fail(`tensors "${a.name}" [${a.offset}, ${a.offset + a.byteLength}) and "${b.name}" [${b.offset}, ${b.offset + b.byteLength}) overlap`);
      }
    }
    return makeGgufFile(path, fh, version, alignment, dataOffset, size, GgufMetadata.fromParsed(entries), tensors);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
}

function makeGgufFile(
  path: string,
  fh: FileHandle,
  version: number,
  alignment: number,
  dataOffset: number,
  fileSize: number,
  metadata: GgufMetadata,
  tensors: GgufTensorInfo[],
): GgufFile {
  const file = lazyTensorFile(path, fh, tensors);
  return {
    path,
    version,
    alignment,
    dataOffset,
    fileSize,
    metadata,
    tensors: Object.freeze(tensors),
    get: file.get,
    readBytes: file.readBytes,
    async read(name) {
      const t = file.lookup(name);
      return Tensor.fromBytes(t.dtype, t.shape, await file.readBytes(name));
    },
    close: file.close,
  };
}

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.byteLength) {
      let cap = this.buf.byteLength * 2;
      while (cap < this.length + n) cap *= 2;
      const b = new Uint8Array(cap);
      b.set(this.buf.subarray(0, this.length));
      this.buf = b;
      this.view = new DataView(b.buffer);
    }
    const o = this.length;
    this.length += n;
    return o;
  }
  u8(v: number) {
    this.view.setUint8(this.reserve(1), v);
  }
  u32(v: number) {
    this.view.setUint32(this.reserve(4), v, true);
  }
  u64(v: bigint | number) {
    this.view.setBigUint64(this.reserve(8), BigInt(v), true);
  }
  bytes(b: Uint8Array) {
    const o = this.reserve(b.byteLength);
    this.buf.set(b, o);
  }
  string(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.byteLength);
    this.bytes(b);
  }
  scalar(type: GgufValueType, v: GgufValue) {
    const d = this.view;
    switch (type) {
      case "u8":
        return d.setUint8(this.reserve(1), v as number);
      case "i8":
        return d.setInt8(this.reserve(1), v as number);
      case "u16":
        return d.setUint16(this.reserve(2), v as number, true);
      case "i16":
        return d.setInt16(this.reserve(2), v as number, true);
      case "u32":
        return d.setUint32(this.reserve(4), v as number, true);
      case "i32":
        return d.setInt32(this.reserve(4), v as number, true);
      case "f32":
        return d.setFloat32(this.reserve(4), v as number, true);
      case "f64":
        return d.setFloat64(this.reserve(8), v as number, true);
      case "u64":
        return d.setBigUint64(this.reserve(8), v as bigint, true);
      case "i64":
        return d.setBigInt64(this.reserve(8), v as bigint, true);
      case "bool":
        return d.setUint8(this.reserve(1), v ? 1 : 0);
      case "string":
        return this.string(v as string);
      case "array": {
        const a = v as GgufArray;
        this.u32(ggufValueTypeId(a.itemType));
        this.u64(a.values.length);
        if (ArrayBuffer.isView(a.values)) {
          // Typed arrays hold little-endian values on every platform Node supports.
          this.bytes(new Uint8Array(a.values.buffer, a.values.byteOffset, a.values.byteLength));
        } else {
          for (const x of a.values as readonly GgufValue[]) this.scalar(a.itemType, x);
        }
        return;
      }
    }
  }
  take(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** What {@link writeGguf} writes. */
export interface GgufWriteInput {
  /** Typed metadata, or plain values typed as {@link GgufMetadata.from} does. */
  metadata?: GgufMetadata | Record<string, unknown>;
  /** Tensors in the order to write them: element dtypes f32/f16/bf16/f64/i8/i16/i32/i64 or ggml quantized types. */
  tensors?: Record<string, Tensor> | ReadonlyArray<readonly [string, Tensor]>;
  /** GGUF version to write (3, the default, or 2: same layout). */
  version?: 2 | 3;
}

const WRITE_SLICE = 16 << 20;

/**
 * Writes a GGUF file atomically: header, metadata, tensor infos (dims reversed from the row-major
 * shape, offsets aligned to `general.alignment` or 32), padding, then the tensor data streamed in
 * order, each tensor padded to the alignment.
 */
export async function writeGguf(path: string, input: GgufWriteInput): Promise<void> {
  const metadata = input.metadata instanceof GgufMetadata ? input.metadata : GgufMetadata.from(input.metadata ?? {});
  const version = input.version ?? 3;
  if (version !== 2 && version !== 3) throw new TersorError("E_RANGE", `GGUF version must be 2 or 3, got ${String(version)}`);
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.entry("general.alignment");
  if (al !== undefined) {
    const a = al.value as number;
    if (al.type !== "u32" || a === 0 || (a & (a - 1)) !== 0) throw new TersorError("E_RANGE", `general.alignment must be a u32 power of two`);
    alignment = a;
  }
  const rawList = input.tensors === undefined ? [] : Array.isArray(input.tensors) ? [...(input.tensors as ReadonlyArray<readonly [string, Tensor]>)] : Object.entries(input.tensors as Record<string, Tensor>);
  const seen = new Set<string>();
  const list: Array<{ name: string; t: Tensor; type: GgmlTypeInfo; offset: number }> = [];
  let cursor = 0;
  for (const [name, t] of rawList) {
    if (typeof name !== "string") throw new TersorError("E_RANGE", `tensor names must be strings`);
    if (seen.has(name)) throw new TersorError("E_RANGE", `tensor name "${name}" is given twice`);
    seen.add(name);
    if (!(t instanceof Tensor)) throw new TersorError("E_RANGE", `"${name}" is not a Tensor`);
    const type = ggmlTypeByName(t.dtype);
    if (type === undefined) throw new TersorError("E_DTYPE", `tensor "${name}": GGUF has no ggml type for ${t.dtype}`);
    if (t.rank > 4) throw new TersorError("E_SHAPE", `tensor "${name}" has ${t.rank} dimensions; GGUF allows at most 4`);
    const ne0 = t.shape[t.rank - 1] ?? 1;
    if (ne0 % type.blockSize !== 0) throw new TersorError("E_SHAPE", `tensor "${name}": the last dimension ${ne0} is not a multiple of the ${type.name} block size ${type.blockSize}`);
    cursor = alignUp(cursor, alignment);
    list.push({ name, t, type, offset: cursor });
    cursor += t.byteLength;
  }

  const h = new ByteWriter();
  h.u32(MAGIC);
  h.u32(version);
  h.u64(list.length);
  h.u64(metadata.size);
  for (const [key, e] of metadata) {
    h.string(key);
    h.u32(ggufValueTypeId(e.type));
    h.scalar(e.type, e.value);
  }
  for (const { name, t, type, offset } of list) {
    h.string(name);
    h.u32(t.rank);
    for (let d = t.rank - 1; d >= 0; d--) h.u64(t.shape[d]!);
    h.u32(type.id);
    h.u64(offset);
  }
  const head = h.take();
  const zeros = new Uint8Array(alignment);
  await writeAtomic(path, async (w) => {
    await w.write(head);
    const dataStart = alignUp(head.byteLength, alignment);
    await w.write(zeros.subarray(0, dataStart - head.byteLength));
    let pos = 0;
    for (const { t, offset } of list) {
      if (offset > pos) await w.write(zeros.subarray(0, offset - pos));
      const b = t.bytes();
      for (let i = 0; i < b.byteLength; i += WRITE_SLICE) await w.write(b.subarray(i, Math.min(b.byteLength, i + WRITE_SLICE)));
      pos = offset + b.byteLength;
    }
    const end = alignUp(pos, alignment);
    if (end > pos) await w.write(zeros.subarray(0, end - pos));
  });
}
