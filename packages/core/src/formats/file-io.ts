/** File helpers shared by the format readers (internal to @tersor/core). */
import type { FileHandle } from "node:fs/promises";

import { TersorError } from "@tersor/native";

/** A file-system error as E_IO naming what was being done; TersorErrors pass through. */
export function fsError(e: unknown, what: string): TersorError {
  if (e instanceof TersorError) return e;
  const err = e as NodeJS.ErrnoException;
  return new TersorError("E_IO", `${what}: ${err.code ? `${err.code} ` : ""}${err.message ?? String(e)}`, { cause: e });
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
