/**
 * JSON Lines: one JSON value per line. The reader streams in constant memory (bounded by
 * `maxLineBytes`), accepts LF and CRLF, a last line without a newline and gzip input; the writer
 * streams to an atomic temporary file.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";

import { TersorError } from "@tersor/native";

import { openAtomic } from "../atomic.js";
import { fsError } from "./file-io.js";

/** What happens to a line that is not valid UTF-8 JSON (or is too long). */
export type BadLinePolicy = "error" | "skip";

export interface ReadJsonlOptions {
  /** `"error"` (default): throw `E_FORMAT` naming the line; `"skip"`: count it and go on. */
  onBadLine?: BadLinePolicy;
  /** Longest accepted line in bytes (default 64 MiB); longer lines are bad lines. */
  maxLineBytes?: number;
  /** Gunzip the input: `"auto"` (default) detects the gzip magic bytes of a file; streams are plain unless `true`. */
  gzip?: boolean | "auto";
  /** Name used in messages for a stream source (default `"<stream>"`). */
  name?: string;
  /** Called for each skipped line (1-based line number and why). */
  onSkip?: (line: number, reason: string) => void;
  /** Called once when the input is exhausted, with the final counts. */
  onDone?: (stats: JsonlStats) => void;
}

/** Counts kept while reading. */
export interface JsonlStats {
  /** Lines seen so far (including empty and skipped ones). */
  lines: number;
  /** Records yielded. */
  records: number;
  /** Bad lines skipped (with `onBadLine: "skip"`). */
  skipped: number;
  /** Empty (or whitespace-only) lines ignored. */
  empty: number;
  /** The first few skipped line numbers. */
  skippedLines: number[];
}

/** An async iterable of records, with live {@link JsonlStats}. Iterate it once. */
export interface JsonlReader<T> extends AsyncIterable<T> {
  readonly stats: JsonlStats;
}

const DEFAULT_MAX_LINE = 64 << 20;
const KEEP_SKIPPED = 100;

function isWhitespaceOnly(b: Uint8Array): boolean {
  for (let i = 0; i < b.byteLength; i++) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/** zlib's errors (codes Z_*) mean corrupt gzip input, E_FORMAT; everything else is fsError's E_IO. */
function ioError(e: unknown, what: string): TersorError {
  const err = e as NodeJS.ErrnoException | null | undefined;
  if (!(e instanceof TersorError) && typeof err?.code === "string" && err.code.startsWith("Z_")) {
    return new TersorError("E_FORMAT", `${what}: corrupt gzip data (${err.message})`, { cause: e });
  }
  return fsError(e, what);
}

async function isGzipFile(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw ioError(e, `cannot open ${path}`);
  }
  try {
    const b = new Uint8Array(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } catch (e) {
    throw ioError(e, `reading ${path}`);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Reads JSON Lines from a file path (gzip detected by content) or a byte stream. Yields each
 * parsed value; empty lines are ignored. Bad lines (not UTF-8, not JSON, longer than
 * `maxLineBytes`) throw `E_FORMAT` with the path and 1-based line number, or are counted in
 * `stats.skipped` with `onBadLine: "skip"`.
 */
export function readJsonl<T = unknown>(source: string | AsyncIterable<Uint8Array | string>, options: ReadJsonlOptions = {}): JsonlReader<T> {
  const policy = options.onBadLine ?? "error";
  if (policy !== "error" && policy !== "skip") throw new TersorError("E_RANGE", `onBadLine must be "error" or "skip", got "${String(policy)}"`);
  const maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE;
  if (!Number.isSafeInteger(maxLine) || maxLine < 1) throw new TersorError("E_RANGE", `maxLineBytes must be a positive integer, got ${maxLine}`);
  const name = typeof source === "string" ? source : (options.name ?? "<stream>");
  const stats: JsonlStats = { lines: 0, records: 0, skipped: 0, empty: 0, skippedLines: [] };
  let started = false;

  async function* run(): AsyncGenerator<T> {
    let input: AsyncIterable<Uint8Array | string>;
    const cleanups: Array<() => void> = [];
    if (typeof source === "string") {
      const gz = options.gzip === true || ((options.gzip ?? "auto") === "auto" && (await isGzipFile(source)));
      const file = createReadStream(source, { highWaterMark: 1 << 16 });
      cleanups.push(() => file.destroy());
      if (gz) {
        const gunzip = createGunzip();
        file.on("error", (e) => gunzip.destroy(e));
        cleanups.push(() => gunzip.destroy());
        input = file.pipe(gunzip);
      } else {
        input = file;
      }
    } else if (options.gzip === true) {
      const gunzip = createGunzip();
      cleanups.push(() => gunzip.destroy());
      const src = Readable.from(source);
      src.on("error", (e) => gunzip.destroy(e));
      input = src.pipe(gunzip);
    } else {
      input = source;
    }

    const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const withBom = new TextDecoder("utf-8", { fatal: true });
    let parts: Uint8Array[] = [];
    let partLen = 0;
    let overlong = false; // discarding the rest of a line longer than maxLine

    const bad = (reason: string): void => {
      if (policy === "error") throw new TersorError("E_FORMAT", `${name}:${stats.lines}: ${reason}`);
      stats.skipped++;
      if (stats.skippedLines.length < KEEP_SKIPPED) stats.skippedLines.push(stats.lines);
      options.onSkip?.(stats.lines, reason);
    };

    /** Handles one complete line; returns the parsed value or undefined (skipped / empty). */
    const finishLine = (bytes: Uint8Array): { value: T } | undefined => {
      stats.lines++;
      if (overlong) {
        overlong = false;
        return undefined; // already reported when it crossed the limit
      }
      let end = bytes.byteLength;
      if (end > 0 && bytes[end - 1] === 0x0d) end--;
      const line = bytes.subarray(0, end);
      if (line.byteLength > maxLine) {
        bad(`line is ${line.byteLength} bytes, longer than maxLineBytes (${maxLine})`);
        return undefined;
      }
      if (isWhitespaceOnly(line)) {
        stats.empty++;
        return undefined;
      }
      let text: string;
      try {
        text = (stats.lines === 1 ? withBom : fatal).decode(line);
      } catch {
        bad("line is not valid UTF-8");
        return undefined;
      }
      try {
        return { value: JSON.parse(text) as T };
      } catch (e) {
        bad(`invalid JSON: ${(e as Error).message}`);
        return undefined;
      }
    };

    try {
      for await (const raw of input) {
        const chunk = typeof raw === "string" ? Buffer.from(raw, "utf8") : raw;
        let start = 0;
        while (start < chunk.byteLength) {
          const nl = chunk.indexOf(0x0a, start);
          if (nl === -1) {
            const rest = chunk.subarray(start);
            if (!overlong) {
              if (partLen + rest.byteLength > maxLine + 1) {
                // Too long already: report now (the line number is the next one) and drop bytes until the newline.
                stats.lines++;
                bad(`line is longer than maxLineBytes (${maxLine})`);
                stats.lines--;
                overlong = true;
                parts = [];
                partLen = 0;
              } else {
                parts.push(rest);
                partLen += rest.byteLength;
              }
            }
            break;
          }
          const piece = chunk.subarray(start, nl);
          start = nl + 1;
          let line: Uint8Array;
          if (partLen === 0) line = piece;
          else {
            if (!overlong) parts.push(piece);
            line = overlong ? piece : Buffer.concat(parts, partLen + piece.byteLength);
            parts = [];
            partLen = 0;
          }
          const r = finishLine(line);
          if (r !== undefined) {
            stats.records++;
            yield r.value;
          }
        }
      }
      if (partLen > 0 || overlong) {
        const r = finishLine(Buffer.concat(parts, partLen));
        parts = [];
        partLen = 0;
        if (r !== undefined) {
          stats.records++;
          yield r.value;
        }
      }
    } catch (e) {
      throw ioError(e, `reading ${name}`);
    } finally {
      for (const c of cleanups) c();
    }
    options.onDone?.(stats);
  }

  return {
    stats,
    [Symbol.asyncIterator]() {
      if (started) throw new TersorError("E_RANGE", `a JSONL reader can be iterated only once (${name})`);
      started = true;
      return run();
    },
  };
}

export interface WriteJsonlOptions {
  /** Gzip the output (default: when the path ends in `.gz`). */
  gzip?: boolean;
}

/**
 * Writes records as JSON Lines, one `JSON.stringify` per line, streaming to an atomic temporary
 * file (gzip when the path ends in `.gz`). Returns the number of records written. A record that
 * JSON cannot represent (undefined, a function, a bigint, a cycle) is `E_FORMAT` and nothing is
 * written.
 */
export async function writeJsonl(path: string, records: AsyncIterable<unknown> | Iterable<unknown>, options: WriteJsonlOptions = {}): Promise<number> {
  const gzip = options.gzip ?? path.endsWith(".gz");
  let count = 0;
  async function* lines(): AsyncGenerator<Buffer> {
    let batch = "";
    for await (const rec of records as AsyncIterable<unknown>) {
      let s: string | undefined;
      try {
        s = JSON.stringify(rec);
      } catch (e) {
        throw new TersorError("E_FORMAT", `${path}: record ${count + 1} cannot be written as JSON: ${(e as Error).message}`);
      }
      if (s === undefined) throw new TersorError("E_FORMAT", `${path}: record ${count + 1} (${typeof rec}) cannot be written as JSON`);
      count++;
      batch += s + "\n";
      if (batch.length >= 1 << 16) {
        yield Buffer.from(batch, "utf8");
        batch = "";
      }
    }
    if (batch.length > 0) yield Buffer.from(batch, "utf8");
  }
  const w = await openAtomic(path);
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.write(chunk).then(() => cb(), cb);
    },
  });
  try {
    const src = Readable.from(lines(), { objectMode: false });
    if (gzip) await pipeline(src, createGzip(), sink);
    else await pipeline(src, sink);
  } catch (e) {
    await w.abort();
    if (e instanceof TersorError) throw e;
    throw new TersorError("E_IO", `writing ${path}: ${(e as Error).message}`, { cause: e });
  }
  await w.commit();
  return count;
}
