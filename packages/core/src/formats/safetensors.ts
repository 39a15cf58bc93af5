/**
 * safetensors: an 8-byte little-endian header length N, N bytes of UTF-8 JSON describing every
 * tensor (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`),
 * then the byte buffer the offsets point into.
 *
 * The reader keeps a file handle open, reads and validates the header only, and reads each tensor
 * on demand by its offsets; the writer streams the tensors to an atomic temporary file.
 */
import type { FileHandle } from "node:fs/promises";
import { isAbsolute, join, normalize, sep } from "node:path";

import { TersorError } from "@tersor/native";

import { writeAtomic } from "../atomic.js";
import { type DType, isElementDType } from "../dtype.js";
import { pathExists } from "../paths.js";
import { Tensor } from "../tensor.js";
import { fsError, lazyTensorFile, openFile, readExact } from "./file-io.js";

/** Every dtype name the safetensors format defines. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "F8_E8M0"
  | "F4"
  | "F6_E2M3"
  | "F6_E3M2"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "C64"
  | "F64"
  | "I64"
  | "U64";

/** Bits per element of each safetensors dtype (the F4/F6 types are packed below a byte). */
const BITS: Record<SafetensorsDType, number> = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

/** safetensors dtype → tersor dtype, for the dtypes a {@link Tensor} can hold. */
const TO_CORE: Partial<Record<SafetensorsDType, DType>> = {
  BOOL: "bool",
  U8: "u8",
  I8: "i8",
  I16: "i16",
  F16: "f16",
  BF16: "bf16",
  I32: "i32",
  F32: "f32",
  F64: "f64",
  I64: "i64",
};

const FROM_CORE: Partial<Record<DType, SafetensorsDType>> = Object.fromEntries(
  Object.entries(TO_CORE).map(([k, v]) => [v, k as SafetensorsDType]),
) as Partial<Record<DType, SafetensorsDType>>;

/** The header may not be larger than this (the limit the reference implementation uses). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** True when `d` is a dtype name safetensors defines. */
export function isSafetensorsDType(d: string): d is SafetensorsDType {
  return Object.prototype.hasOwnProperty.call(BITS, d);
}

/** The tersor dtype a safetensors dtype reads as, or undefined when a Tensor cannot hold it. */
export function safetensorsToDType(d: SafetensorsDType): DType | undefined {
  return TO_CORE[d];
}

/** The safetensors dtype a tersor dtype is written as, or undefined (quantized dtypes). */
export function dtypeToSafetensors(d: DType): SafetensorsDType | undefined {
  return FROM_CORE[d];
}

/** One tensor described by a safetensors header. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  /** The tersor dtype `read` returns, or undefined when only `readBytes` can read it. */
  readonly tersorDType: DType | undefined;
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly numel: number;
  /** Absolute position of the first byte in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
  /** The `data_offsets` as stored: relative to the start of the byte buffer. */
  readonly dataOffsets: readonly [number, number];
  /** The file holding the tensor. */
  readonly file: string;
}

/** A set of tensors read lazily: one safetensors file or a (sharded) checkpoint directory. */
export interface SafetensorsSource {
  /** Tensors in file order (by offset; shard by shard for a directory). */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** The `__metadata__` string map (merged over the shards for a directory). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensor called `name`, or undefined. */
  get(name: string): SafetensorsTensorInfo | undefined;
  /** Reads one tensor (`E_DTYPE` for dtypes a Tensor cannot hold; use `readBytes`). */
  read(name: string): Promise<Tensor>;
  /** Reads one tensor's raw little-endian bytes, whatever its dtype. */
  readBytes(name: string): Promise<Uint8Array>;
  /** Closes the file handle(s). Idempotent. */
  close(): Promise<void>;
}

/** One open safetensors file. */
export interface SafetensorsFile extends SafetensorsSource {
  readonly path: string;
  /** The N of the 8-byte length prefix. */
  readonly headerLength: number;
  /** Absolute position of the byte buffer (8 + N). */
  readonly dataOffset: number;
  readonly fileSize: number;
}

/** A checkpoint directory: one `model.safetensors` or shards listed by `model.safetensors.index.json`. */
export interface SafetensorsDir extends SafetensorsSource {
  readonly dir: string;
  /** The shard files, in the order they were opened. */
  readonly files: readonly string[];
  /** The index's own `metadata` object (e.g. `total_size`), empty without an index. */
  readonly indexMetadata: Readonly<Record<string, unknown>>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Number of elements of a validated shape, or an E_FORMAT error when it is not addressable. */
function shapeNumel(shape: readonly number[], where: string): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new TersorError("E_FORMAT", `${where}: shape [${shape.join(", ")}] has too many elements`);
  }
  return n;
}

/** Parses and validates a header; returns the tensors sorted by offset and the metadata. */
function parseHeader(
  path: string,
  json: unknown,
  bufferLength: number,
  dataOffset: number,
): { tensors: SafetensorsTensorInfo[]; metadata: Record<string, string> } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TersorError("E_FORMAT", `${path}: the safetensors header must be a JSON object`);
  }
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null) continue;
      if (typeof entry !== "object" || Array.isArray(entry)) {
        throw new TersorError("E_FORMAT", `${path}: "__metadata__" must be an object of strings`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") throw new TersorError("E_FORMAT", `${path}: "__metadata__" value for "${k}" must be a string, got ${describe(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${path}: tensor "${name}"`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new TersorError("E_FORMAT", `${where}: entry must be an object with dtype, shape and data_offsets`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string") throw new TersorError("E_FORMAT", `${where}: missing or non-string "dtype"`);
    if (!isSafetensorsDType(dtype)) {
      throw new TersorError("E_DTYPE", `${where}: unknown safetensors dtype "${dtype.slice(0, 40)}"; known: ${Object.keys(BITS).join(", ")}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new TersorError("E_FORMAT", `${where}: "shape" must be an array of non-negative integers, got ${describe(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new TersorError("E_FORMAT", `${where}: "data_offsets" must be two non-negative integers, got ${describe(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new TersorError("E_FORMAT", `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > bufferLength) {
      throw new TersorError("E_FORMAT", `${where}: data_offsets [${begin}, ${end}] extend beyond the ${bufferLength}-byte data buffer (truncated file?)`);
    }
    const dims = shape as number[];
    const numel = shapeNumel(dims, where);
    const bits = BITS[dtype];
    const expected = (numel * bits) / 8;
    if (!Number.isSafeInteger(expected)) {
      throw new TersorError("E_FORMAT", `${where}: ${numel} elements of ${dtype} (${bits} bits each) is not a whole number of bytes`);
    }
    if (end - begin !== expected) {
      throw new TersorError(
        "E_FORMAT",
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype}[${dims.join(", ")}] needs ${expected}`,
      );
    }
    tensors.push({
      name,
      dtype,
      tersorDType: TO_CORE[dtype],
      shape: Object.freeze([...dims]),
      numel,
      byteOffset: dataOffset + begin,
      byteLength: end - begin,
      dataOffsets: Object.freeze([begin, end] as const),
      file: path,
    });
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  for (let i = 1; i < tensors.length; i++) {
    const prev = tensors[i - 1]!;
    const cur = tensors[i]!;
    if (cur.dataOffsets[0] < prev.dataOffsets[1]) {
      throw new TersorError(
        "E_FORMAT",
        `${path}: tensors "${prev.name}" [${prev.dataOffsets.join(", ")}] and "${cur.name}" [${cur.dataOffsets.join(", ")}] overlap`,
      );
    }
  }
  return { tensors, metadata };
}

function tensorFromBytes(info: SafetensorsTensorInfo, bytes: Uint8Array): Tensor {
  const d = info.tersorDType;
  if (d === undefined) {
    throw new TersorError("E_DTYPE", `${info.file}: tensor "${info.name}" has dtype ${info.dtype}, which a tersor Tensor cannot hold; use readBytes`);
  }
  return Tensor.fromBytes(d, info.shape, bytes);
}

/**
 * Opens a safetensors file: reads and validates the header only (`E_FORMAT` for malformed or
 * truncated files, `E_DTYPE` for unknown dtypes, `E_IO` when it cannot be read). Tensors are read
 * on demand; call `close()` when done.
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const { fh, size } = await openFile(path);
  try {
    if (size < 8) {
      throw new TersorError("E_FORMAT", `${path}: ${size} bytes is too short for a safetensors file (it starts with an 8-byte header length)`);
    }
    const lenBuf = new Uint8Array(8);
    await readExact(fh, lenBuf, 0, path);
    const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
      throw new TersorError("E_FORMAT", `${path}: header length ${n} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
    }
    const headerLength = Number(n);
    if (8 + headerLength > size) {
      throw new TersorError("E_FORMAT", `${path}: header length ${headerLength} runs past the end of the ${size}-byte file (truncated?)`);
    }
    if (headerLength < 2) throw new TersorError("E_FORMAT", `${path}: header length ${headerLength} is too short for a JSON object`);
    const headerBytes = new Uint8Array(headerLength);
    await readExact(fh, headerBytes, 8, path);
    if (headerBytes[0] !== 0x7b) throw new TersorError("E_FORMAT", `${path}: the safetensors header must be a JSON object starting with "{"`);
    let text: string;
    try {
      text = utf8.decode(headerBytes);
    } catch {
      throw new TersorError("E_FORMAT", `${path}: the safetensors header is not valid UTF-8`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TersorError("E_FORMAT", `${path}: the safetensors header is not valid JSON: ${(e as Error).message}`);
    }
    const dataOffset = 8 + headerLength;
    const { tensors, metadata } = parseHeader(path, json, size - dataOffset, dataOffset);
    return makeFile(path, fh, size, headerLength, dataOffset, tensors, metadata);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
}

function makeFile(
  path: string,
  fh: FileHandle,
  fileSize: number,
  headerLength: number,
  dataOffset: number,
  tensors: SafetensorsTensorInfo[],
  metadata: Record<string, string>,
): SafetensorsFile {
  const file = lazyTensorFile(path, fh, tensors);
  return {
    path,
    headerLength,
    dataOffset,
    fileSize,
    tensors: Object.freeze(tensors),
    metadata: Object.freeze(metadata),
    get: file.get,
    readBytes: file.readBytes,
    async read(name) {
      const t = file.lookup(name);
      if (t.tersorDType === undefined) return tensorFromBytes(t, new Uint8Array(0));
      return tensorFromBytes(t, await file.readBytes(name));
    },
    close: file.close,
  };
}

/** The index file that lists the shards of a sharded checkpoint. */
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";

/**
 * Opens a checkpoint directory as one merged view: the shards listed by
 * `model.safetensors.index.json` (every file must exist, every mapped tensor must be in its file,
 * tensor names must be unique across shards), or else a single `model.safetensors`.
 */
export async function openSafetensorsDir(dir: string): Promise<SafetensorsDir> {
  const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
  if (await pathExists(indexPath)) return await openIndexed(dir, indexPath);
  const single = join(dir, "model.safetensors");
  if (await pathExists(single)) {
    const f = await openSafetensors(single);
    return merged(dir, [f], {}, undefined);
  }
  if (!(await pathExists(dir))) throw new TersorError("E_IO", `cannot open ${dir}: no such file or directory`);
  throw new TersorError("E_FORMAT", `${dir}: no ${SAFETENSORS_INDEX_FILE} and no model.safetensors in this directory`);
}

async function openIndexed(dir: string, indexPath: string): Promise<SafetensorsDir> {
  const { fh, size } = await openFile(indexPath);
  let json: unknown;
  try {
    if (size > SAFETENSORS_MAX_HEADER_BYTES) throw new TersorError("E_FORMAT", `${indexPath}: ${size} bytes is too large for an index file`);
    const buf = new Uint8Array(size);
    await readExact(fh, buf, 0, indexPath);
    let text: string;
    try {
      text = utf8.decode(buf);
    } catch {
      throw new TersorError("E_FORMAT", `${indexPath}: not valid UTF-8`);
    }
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TersorError("E_FORMAT", `${indexPath}: not valid JSON: ${(e as Error).message}`);
    }
  } finally {
    await fh.close().catch(() => {});
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new TersorError("E_FORMAT", `${indexPath}: must be a JSON object`);
  const { weight_map: weightMap, metadata: indexMeta } = json as { weight_map?: unknown; metadata?: unknown };
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new TersorError("E_FORMAT", `${indexPath}: "weight_map" must be an object mapping tensor names to shard files`);
  }
  if (indexMeta !== undefined && indexMeta !== null && (typeof indexMeta !== "object" || Array.isArray(indexMeta))) {
    throw new TersorError("E_FORMAT", `${indexPath}: "metadata" must be an object`);
  }
  const map = new Map<string, string>();
  const shards: string[] = [];
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof file !== "string" || file === "") throw new TersorError("E_FORMAT", `${indexPath}: weight_map entry "${name}" must be a file name`);
    const norm = normalize(file);
    if (isAbsolute(file) || norm === ".." || norm.startsWith(`..${sep}`)) {
      throw new TersorError("E_FORMAT", `${indexPath}: shard "${file}" is outside the checkpoint directory`);
    }
    map.set(name, file);
    if (!shards.includes(file)) shards.push(file);
  }
  for (const s of shards) {
    if (!(await pathExists(join(dir, s)))) throw new TersorError("E_FORMAT", `${indexPath}: shard "${s}" listed in weight_map does not exist in ${dir}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const s of shards) files.push(await openSafetensors(join(dir, s)));
    for (const [name, file] of map) {
      const f = files[shards.indexOf(file)]!;
      if (f.get(name) === undefined) throw new TersorError("E_FORMAT", `${indexPath}: weight_map puts "${name}" in ${file}, but that shard has no such tensor`);
    }
    return merged(dir, files, (indexMeta ?? {}) as Record<string, unknown>, indexPath);
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
}

async function merged(dir: string, files: SafetensorsFile[], indexMetadata: Record<string, unknown>, indexPath: string | undefined): Promise<SafetensorsDir> {
  const byName = new Map<string, { info: SafetensorsTensorInfo; file: SafetensorsFile }>();
  const tensors: SafetensorsTensorInfo[] = [];
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  try {
    for (const f of files) {
      for (const [k, v] of Object.entries(f.metadata)) if (!(k in metadata)) metadata[k] = v;
      for (const t of f.tensors) {
        const prev = byName.get(t.name);
        if (prev !== undefined) {
          throw new TersorError("E_FORMAT", `${indexPath ?? dir}: tensor "${t.name}" appears in both ${prev.file.path} and ${f.path}`);
        }
        byName.set(t.name, { info: t, file: f });
        tensors.push(t);
      }
    }
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
  const lookup = (name: string) => {
    const e = byName.get(name);
    if (e === undefined) throw new TersorError("E_RANGE", `${dir}: no tensor named "${name}"`);
    return e.file;
  };
  return {
    dir,
    files: files.map((f) => f.path),
    indexMetadata: Object.freeze({ ...indexMetadata }),
    tensors: Object.freeze(tensors),
    metadata: Object.freeze(metadata),
    get: (name) => byName.get(name)?.info,
    read: async (name) => await lookup(name).read(name),
    readBytes: async (name) => await lookup(name).readBytes(name),
    async close() {
      await Promise.all(files.map((f) => f.close()));
    },
  };
}

/** Tensors to write: a record (in key order) or name/tensor pairs (in the order given). */
export type NamedTensors = Record<string, Tensor> | ReadonlyArray<readonly [string, Tensor]>;

function namedEntries(tensors: NamedTensors): Array<readonly [string, Tensor]> {
  const list = Array.isArray(tensors) ? [...(tensors as ReadonlyArray<readonly [string, Tensor]>)] : Object.entries(tensors as Record<string, Tensor>);
  const seen = new Set<string>();
  for (const [name, t] of list) {
    if (typeof name !== "string" || name === "") throw new TersorError("E_RANGE", `tensor names must be non-empty strings`);
    if (seen.has(name)) throw new TersorError("E_RANGE", `tensor name "${name}" is given twice`);
    if (!(t instanceof Tensor)) throw new TersorError("E_RANGE", `"${name}" is not a Tensor`);
    seen.add(name);
  }
  return list;
}

/** Largest single write: tensor data goes out in slices of this size. */
const WRITE_SLICE = 16 << 20;

/**
 * Writes tensors to a safetensors file, atomically: the header (padded with spaces to a multiple of
 * 8 bytes), then each tensor's bytes in the order given, streamed without building the whole file.
 * Quantized dtypes have no safetensors equivalent (`E_DTYPE`).
 */
export async function writeSafetensors(path: string, tensors: NamedTensors, metadata?: Record<string, string>): Promise<void> {
  const list = namedEntries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new TersorError("E_FORMAT", `safetensors metadata values must be strings; "${k}" is ${typeof v}`);
    }
    header["__metadata__"] = { ...metadata };
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__") throw new TersorError("E_RANGE", `"__metadata__" is reserved and cannot name a tensor`);
    const dtype = isElementDType(t.dtype) ? FROM_CORE[t.dtype] : undefined;
    if (dtype === undefined) throw new TersorError("E_DTYPE", `tensor "${name}": safetensors has no dtype for ${t.dtype}`);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.byteLength] };
    offset += t.byteLength;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.from(json, "utf8");
  const padded = Math.ceil(raw.byteLength / 8) * 8;
  json += " ".repeat(padded - raw.byteLength);
  const head = Buffer.alloc(8 + padded);
  head.writeBigUInt64LE(BigInt(padded), 0);
  head.write(json, 8, "utf8");
  await writeAtomic(path, async (w) => {
    await w.write(head);
    for (const [, t] of list) {
      const b = t.bytes();
      for (let i = 0; i < b.byteLength; i += WRITE_SLICE) await w.write(b.subarray(i, Math.min(b.byteLength, i + WRITE_SLICE)));
    }
  });
}
