/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): the magic `\x93NUMPY`, a version, a
 * little-endian header length (u16 in v1, u32 in v2/v3), then a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` and the raw C-order data.
 * Read: little-endian `<f4` `<f8` `<i4` `<i8` and `|u1`, C order only. Anything else, and every
 * malformed or truncated file, is an `E_FORMAT` error naming the file.
 */
import { readFile } from "node:fs/promises";

import { TersorError } from "@tersor/native";

import { Tensor } from "../tensor.js";

/** The dtypes `.npy` files are read as. */
export type NpyDType = "f32" | "f64" | "i32" | "i64" | "u8";

const DESCR: Record<string, NpyDType> = { "<f4": "f32", "<f8": "f64", "<i4": "i32", "<i8": "i64", "|u1": "u8", "<u1": "u8" };
const ITEM: Record<NpyDType, number> = { f32: 4, f64: 8, i32: 4, i64: 8, u8: 1 };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** What a `.npy` header says. */
export interface NpyHeader {
  /** Format version [major, minor]. */
  version: [number, number];
  /** The numpy dtype string (e.g. `<f4`). */
  descr: string;
  dtype: NpyDType;
  shape: number[];
  /** Byte offset of the data. */
  dataOffset: number;
}

type PyValue = string | boolean | number | PyValue[] | null | { [k: string]: PyValue };

/** A parser for the Python literals numpy writes in headers: dicts, tuples/lists, strings, ints, True/False/None. */
class PyLiteral {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly where: string,
  ) {}

  private fail(msg: string): never {
    throw new TersorError("E_FORMAT", `${this.where}: malformed .npy header (${msg} at character ${this.i}): ${JSON.stringify(this.s.slice(0, 200))}`);
  }
  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }
  private eat(c: string): boolean {
    this.ws();
    if (this.s[this.i] === c) {
      this.i++;
      return true;
    }
    return false;
  }

  parseAll(): PyValue {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) this.fail("unexpected text after the dict");
    return v;
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.i];
    if (c === "{") return this.dict();
    if (c === "(") return this.seq("(", ")");
    if (c === "[") return this.seq("[", "]");
    if (c === "'" || c === '"') return this.str();
    const m = /^(?:True|False|None|[+-]?\d+L?)/.exec(this.s.slice(this.i));
    if (!m) this.fail("expected a value");
    this.i += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    if (m[0] === "None") return null;
    const n = Number(m[0].replace(/L$/, ""));
    if (!Number.isSafeInteger(n)) this.fail(`integer ${m[0]} is too large`);
    return n;
  }

  private str(): string {
    const q = this.s[this.i]!;
    const end = this.s.indexOf(q, this.i + 1);
    if (end < 0) this.fail("unterminated string");
    const out = this.s.slice(this.i + 1, end);
    if (out.includes("\\")) this.fail("escapes in strings are not supported");
    this.i = end + 1;
    return out;
  }

  private seq(open: string, close: string): PyValue[] {
    this.eat(open);
    const out: PyValue[] = [];
    for (;;) {
      if (this.eat(close)) return out;
      out.push(this.value());
      if (this.eat(",")) continue;
      if (this.eat(close)) return out;
      this.fail(`expected "," or "${close}"`);
    }
  }

  private dict(): { [k: string]: PyValue } {
    this.eat("{");
    const out: { [k: string]: PyValue } = {};
    for (;;) {
      if (this.eat("}")) return out;
      this.ws();
      const c = this.s[this.i];
      if (c !== "'" && c !== '"') this.fail("dict keys must be strings");
      const k = this.str();
      if (!this.eat(":")) this.fail('expected ":"');
      out[k] = this.value();
      if (this.eat(",")) continue;
      if (this.eat("}")) return out;
      this.fail('expected "," or "}"');
    }
  }
}

/** Parses the magic, version and header dict of `.npy` bytes (no data check). */
export function parseNpyHeader(bytes: Uint8Array, name = "<npy>"): NpyHeader {
  const bad = (msg: string): never => {
    throw new TersorError("E_FORMAT", `${name}: ${msg}`);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) bad("not a .npy file (no \\x93NUMPY magic)");
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3) bad(`unsupported .npy format version ${major}.${minor}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) bad("truncated header length");
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lenBytes;
  if (start + hlen > bytes.length) bad(`truncated header: it claims ${hlen} bytes, ${bytes.length - start} remain`);
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(bytes.subarray(start, start + hlen));
  } catch {
    return bad("the header is not valid text");
  }
  const parsed = new PyLiteral(text.trim(), name).parseAll();
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return bad("the header is not a dict");
  const d = parsed as Record<string, PyValue>;
  for (const k of ["descr", "fortran_order", "shape"]) if (!(k in d)) bad(`the header has no "${k}"`);
  const descr = d["descr"];
  if (typeof descr !== "string") return bad("descr must be a string (structured dtypes are not supported)");
  const dtype = DESCR[descr];
  if (!dtype) return bad(`unsupported dtype "${descr}" (supported: <f4, <f8, <i4, <i8, |u1)`);
  if (d["fortran_order"] !== false) bad(d["fortran_order"] === true ? "fortran_order True is not supported (save a C-order array)" : "fortran_order must be True or False");
  const shape = d["shape"];
  if (!Array.isArray(shape) || shape.some((v) => typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)) bad("shape must be a tuple of non-negative integers");
  return { version: [major, minor], descr, dtype, shape: shape as number[], dataOffset: start + hlen };
}

/** Parses `.npy` bytes into a Tensor (a copy of the data, so it is aligned). */
export function parseNpy(bytes: Uint8Array, name = "<npy>"): Tensor<NpyDType> {
  const h = parseNpyHeader(bytes, name);
  let numel = 1;
  for (const s of h.shape) numel *= s;
  if (!Number.isSafeInteger(numel)) throw new TersorError("E_FORMAT", `${name}: shape [${h.shape.join(", ")}] is too large`);
  const need = numel * ITEM[h.dtype];
  const have = bytes.length - h.dataOffset;
  if (have < need) throw new TersorError("E_FORMAT", `${name}: truncated data: shape [${h.shape.join(", ")}] of ${h.descr} needs ${need} bytes, the file has ${have}`);
  if (have > need) throw new TersorError("E_FORMAT", `${name}: ${have - need} unexpected bytes after the data of shape [${h.shape.join(", ")}]`);
  const copy = bytes.slice(h.dataOffset, h.dataOffset + need);
  return Tensor.fromBytes(h.dtype, h.shape, copy);
}

/** Reads a `.npy` file into a Tensor (`f32`, `f64`, `i32`, `i64` or `u8`). */
export async function readNpy(path: string): Promise<Tensor<NpyDType>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TersorError("E_IO", `cannot read ${path}: ${err.code ?? ""} ${err.message}`.trim(), { cause: e });
  }
  return parseNpy(bytes, path);
}

const DESCR_OF: Partial<Record<string, string>> = { f32: "<f4", f64: "<f8", i32: "<i4", i64: "<i8", u8: "|u1" };

/** The bytes of a version 1.0 `.npy` file holding `t` (f32, f64, i32, i64 or u8), header padded to 64 bytes as numpy does. */
export function encodeNpy(t: Tensor): Uint8Array {
  const descr = DESCR_OF[t.dtype];
  if (!descr) throw new TersorError("E_DTYPE", `.npy export supports f32, f64, i32, i64 and u8 tensors, not ${t.dtype}`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  if (header.length > 65535) throw new TersorError("E_SHAPE", "the .npy header is too long for format 1.0");
  const data = t.bytes();
  const out = new Uint8Array(10 + header.length + data.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(data, 10 + header.length);
  return out;
}
