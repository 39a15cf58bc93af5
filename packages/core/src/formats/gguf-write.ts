/**
 * A streaming GGUF writer: the header (metadata and every tensor's name, shape, ggml type and
 * offset) is written first from declared shapes and types, then each tensor's bytes are appended in
 * declaration order as they are produced, so a model can be converted or quantized one tensor at a
 * time without holding it whole. The file appears only on {@link GgufStreamWriter.commit}
 * (atomic rename); {@link GgufStreamWriter.abort} leaves nothing behind.
 *
 * Layout (GGUF v3, little-endian): magic, version, tensor count, metadata count, metadata, tensor
 * infos (dims innermost first), padding to the alignment (`general.alignment`, default 32), data
 * with every tensor aligned.
 */
import { TersorError } from "@tersor/native";

import { type AtomicWriter, openAtomic } from "../atomic.js";
import { ggmlTypeByName, type GgmlTypeName } from "../ggml.js";
import { GGUF_DEFAULT_ALIGNMENT, GgufMetadata, ggufValueTypeId, type GgufArray, type GgufValue, type GgufValueType } from "./gguf.js";

/** A tensor declared up front: row-major shape (at most 4 dims) and ggml type. */
export interface GgufTensorDecl {
  name: string;
  shape: readonly number[];
  type: GgmlTypeName;
}

export interface GgufStreamWriter {
  /** Bytes each declared tensor must have, by name. */
  readonly sizes: ReadonlyMap<string, number>;
  /** Appends the next tensor's bytes (tensors in declaration order; exactly its size). */
  writeTensor(name: string, bytes: Uint8Array): Promise<void>;
  /** Checks every tensor was written, then renames the file into place. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}

class Bytes {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array) {
    this.parts.push(b);
    this.length += b.byteLength;
  }
  num(type: GgufValueType, v: number | bigint | boolean) {
    const size = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[type as "u8"];
    const b = new Uint8Array(size);
    const d = new DataView(b.buffer);
    switch (type) {
      case "u8": d.setUint8(0, v as number); break;
      case "i8": d.setInt8(0, v as number); break;
      case "bool": d.setUint8(0, v ? 1 : 0); break;
      case "u16": d.setUint16(0, v as number, true); break;
      case "i16": d.setInt16(0, v as number, true); break;
      case "u32": d.setUint32(0, v as number, true); break;
      case "i32": d.setInt32(0, v as number, true); break;
      case "f32": d.setFloat32(0, v as number, true); break;
      case "u64": d.setBigUint64(0, BigInt(v as number), true); break;
      case "i64": d.setBigInt64(0, BigInt(v as number), true); break;
      case "f64": d.setFloat64(0, v as number, true); break;
      default: throw new TersorError("E_RANGE", `not a numeric GGUF type: ${type}`);
    }
    this.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.num("u64", b.byteLength);
    this.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  value(type: GgufValueType, v: GgufValue) {
    if (type === "string") return this.str(v as string);
    if (type === "array") {
      const a = v as GgufArray;
      this.num("u32", ggufValueTypeId(a.itemType));
      this.num("u64", a.values.length);
      for (const x of a.values as Iterable<GgufValue>) this.value(a.itemType, x);
      return;
    }
    this.num(type, v as number);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/** Opens a streaming GGUF writer for `path` with `metadata` (typed, or plain values as GgufMetadata.from types them) and the tensors to come. */
export async function openGgufWriter(path: string, metadata: GgufMetadata | Record<string, unknown>, tensors: readonly GgufTensorDecl[]): Promise<GgufStreamWriter> {
  const md = metadata instanceof GgufMetadata ? metadata : GgufMetadata.from(metadata);
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = md.entry("general.alignment");
  if (al !== undefined) {
    const a = al.value as number;
    if (al.type !== "u32" || a === 0 || (a & (a - 1)) !== 0) throw new TersorError("E_RANGE", "general.alignment must be a u32 power of two");
    alignment = a;
  }
  const sizes = new Map<string, number>();
  const offsets: number[] = [];
  let cursor = 0;
  const h = new Bytes();
  h.num("u32", 0x46554747);
  h.num("u32", 3);
  h.num("u64", tensors.length);
  h.num("u64", md.size);
  for (const [k, e] of md) {
    h.str(k);
    h.num("u32", ggufValueTypeId(e.type));
    h.value(e.type, e.value);
  }
  for (const t of tensors) {
    if (sizes.has(t.name)) throw new TersorError("E_RANGE", `tensor "${t.name}" is declared twice`);
    const type = ggmlTypeByName(t.type);
    if (type === undefined) throw new TersorError("E_DTYPE", `tensor "${t.name}": unknown ggml type ${t.type}`);
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new TersorError("E_SHAPE", `tensor "${t.name}": shape [${t.shape.join(", ")}] must have 1 to 4 positive dimensions`);
    const ne0 = t.shape[t.shape.length - 1]!;
    if (ne0 % type.blockSize !== 0) throw new TersorError("E_SHAPE", `tensor "${t.name}": the last dimension ${ne0} is not a multiple of the ${t.type} block size ${type.blockSize}`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bytes = (numel / type.blockSize) * type.typeSize;
    cursor = align(cursor, alignment);
    offsets.push(cursor);
    sizes.set(t.name, bytes);
    cursor += bytes;
    h.str(t.name);
    h.num("u32", t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) h.num("u64", t.shape[d]!);
    h.num("u32", type.id);
    h.num("u64", offsets[offsets.length - 1]!);
  }
  const head = h.concat();
  const w: AtomicWriter = await openAtomic(path);
  const zeros = new Uint8Array(alignment);
  try {
    await w.write(head);
    await w.write(zeros.subarray(0, align(head.byteLength, alignment) - head.byteLength));
  } catch (e) {
    await w.abort();
    throw e;
  }
  let next = 0;
  let pos = 0;
  return {
    sizes,
    async writeTensor(name, bytes) {
      const t = tensors[next];
      if (t === undefined || t.name !== name) throw new TersorError("E_RANGE", `expected tensor ${t === undefined ? "(none: all written)" : `"${t.name}"`}, got "${name}"`);
      if (bytes.byteLength !== sizes.get(name)) throw new TersorError("E_SHAPE", `tensor "${name}" needs ${sizes.get(name)} bytes, got ${bytes.byteLength}`);
      if (offsets[next]! > pos) await w.write(zeros.subarray(0, offsets[next]! - pos));
      await w.write(bytes);
      pos = offsets[next]! + bytes.byteLength;
      next++;
    },
    async commit() {
      if (next !== tensors.length) {
        await w.abort();
        throw new TersorError("E_RANGE", `only ${next} of ${tensors.length} declared tensors were written`);
      }
      const end = align(pos, alignment);
      if (end > pos) await w.write(zeros.subarray(0, end - pos));
      await w.commit();
    },
    abort: () => w.abort(),
  };
}
