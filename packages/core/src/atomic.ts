import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { finished } from "node:stream/promises";

import { TersorError } from "@tersor/native";

/** The temporary path used while writing `path` (same directory, so the rename is atomic). */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, "r");
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename itself is still atomic.
  }
}

/** A write stream to a temporary file that becomes `path` only on {@link AtomicWriter.commit}. */
export interface AtomicWriter {
  /** Appends bytes (awaits back-pressure). */
  write(chunk: Uint8Array | string): Promise<void>;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  /** Flushes, fsyncs and renames the temporary file to the destination. */
  commit(): Promise<void>;
  /** Removes the temporary file; the destination is untouched. */
  abort(): Promise<void>;
}

/**
 * Opens an atomic writer: everything goes to a temporary file beside `path`, which is fsynced and
 * renamed over `path` on commit. A crash or an error never leaves a half-written `path`.
 */
export async function openAtomic(path: string): Promise<AtomicWriter> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const stream = createWriteStream(tmp, { flags: "wx" });
  let bytes = 0;
  let failed: Error | undefined;
  stream.on("error", (e) => {
    failed = e;
  });
  let done = false;
  const w: AtomicWriter = {
    get bytesWritten() {
      return bytes;
    },
    async write(chunk) {
      if (done) throw new TersorError("E_IO", `write after commit/abort of ${path}`);
      if (failed) throw new TersorError("E_IO", `writing ${path}: ${failed.message}`, { cause: failed });
      bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
      if (!stream.write(chunk)) {
        await new Promise<void>((res, rej) => {
          const onDrain = () => {
            stream.off("error", onError);
            res();
          };
          const onError = (e: Error) => {
            stream.off("drain", onDrain);
            rej(new TersorError("E_IO", `writing ${path}: ${e.message}`, { cause: e }));
          };
          stream.once("drain", onDrain);
          stream.once("error", onError);
        });
      }
    },
    async commit() {
      if (done) return;
      done = true;
      try {
        stream.end();
        await finished(stream);
        const h = await open(tmp, "r+");
        try {
          await h.sync();
        } finally {
          await h.close();
        }
        await rename(tmp, path);
        await fsyncDir(dirname(path));
      } catch (e) {
        await rm(tmp, { force: true });
        throw new TersorError("E_IO", `writing ${path}: ${(e as Error).message}`, { cause: e });
      }
    },
    async abort() {
      if (done) return;
      done = true;
      // The stream opens its file asynchronously: removing the file before the stream has closed
      // races that open (on a busy machine the file appeared after the rm and stayed behind).
      const closed = stream.closed ? Promise.resolve() : new Promise<void>((res) => stream.once("close", () => res()));
      stream.destroy();
      await closed;
      await rm(tmp, { force: true });
    },
  };
  return w;
}

/**
 * Runs `produce` against an atomic writer for `path`: commits when it resolves, removes the temporary
 * file when it throws (and rethrows).
 */
export async function writeAtomic(path: string, produce: (w: AtomicWriter) => Promise<void>): Promise<void> {
  const w = await openAtomic(path);
  try {
    await produce(w);
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.commit();
}

/** Writes a whole buffer or string to `path` atomically. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await writeAtomic(path, (w) => w.write(data));
}
