/** File helpers shared by the format readers (internal to @tersor/core). */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";

import { TersorError } from "@tersor/native";

/** A file-system error as E_IO naming what was being done; TersorErrors pass through. */
export function fsError(e: unknown, what: string): TersorError {
  if (e instanceof TersorError) return e;
  const err = e as NodeJS.ErrnoException | null | undefined;
  return new TersorError("E_IO", `${what}: ${err?.code ? `${err.code} ` : ""}${err?.message ?? String(e)}`, { cause: e });
}

/** Fills `buf` from `position`; a short read means the file is shorter than its header says (E_FORMAT). */
export async function readExact(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, buf.byteLength - done, position + done));
    } catch (e) {
      throw fsError(e, `reading ${path}`);
    }
    if (n === 0) {
      throw new TersorError("E_FORMAT", `${path}: unexpected end of file at byte ${position + done} (wanted ${buf.byteLength} bytes at ${position}); the file is truncated`);
    }
    done += n;
  }
}

/** Opens a regular file for reading and returns it with its size; E_IO otherwise (nothing left open). */
export async function openFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw fsError(e, `cannot open ${path}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new TersorError("E_IO", `${path} is not a regular file`);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw fsError(e, `cannot stat ${path}`);
  }
}

/** A tensor's byte range within a file, as the format readers describe it. */
export interface TensorByteRange {
  readonly name: string;
  /** Absolute position of the tensor's bytes in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Name lookup, lazy byte reads and closing over one open tensor file. */
export interface LazyTensorFile<T extends TensorByteRange> {
  get(name: string): T | undefined;
  /** The tensor, or E_RANGE naming the file and the missing name. */
  lookup(name: string): T;
  /** Reads one tensor's bytes on demand (E_IO after close). */
  readBytes(name: string): Promise<Uint8Array>;
  /** Closes the file once; later calls do nothing. */
  close(): Promise<void>;
}

/** The lazy-read machinery shared by the safetensors and GGUF readers: nothing is read until asked. */
export function lazyTensorFile<T extends TensorByteRange>(path: string, fh: FileHandle, tensors: readonly T[]): LazyTensorFile<T> {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  let closed = false;
  const lookup = (name: string): T => {
    const t = byName.get(name);
    if (t === undefined) throw new TersorError("E_RANGE", `${path}: no tensor named "${name}"`);
    return t;
  };
  return {
    get: (name) => byName.get(name),
    lookup,
    async readBytes(name) {
      const t = lookup(name);
      if (closed) throw new TersorError("E_IO", `${path}: read after close`);
      const buf = new Uint8Array(t.byteLength);
      await readExact(fh, buf, t.byteOffset, path);
      return buf;
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close().catch(() => {});
    },
  };
}
