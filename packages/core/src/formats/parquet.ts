/**
 * Parquet reading through hyparquet (with hyparquet-compressors for every codec): rows are decoded
 * one row group at a time, from an async buffer that reads byte ranges of an open file handle.
 */
import type { FileHandle } from "node:fs/promises";

import { TersorError } from "@tersor/native";
import { type AsyncBuffer, type FileMetaData, type SchemaElement, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { compressors } from "hyparquet-compressors";

import { fsError, openFile } from "./file-io.js";

export interface ReadParquetOptions {
  /** Top-level columns to read (default: all). Unknown names are `E_RANGE`. */
  columns?: readonly string[];
  /** Row group indices to read, in the order given (default: all, in file order). */
  rowGroups?: readonly number[];
}

/** One leaf or group of the Parquet schema. */
export interface ParquetColumnInfo {
  /** Dotted path from the root. */
  name: string;
  /** Physical type (undefined for groups). */
  type: string | undefined;
  /** Logical or converted type, if any (e.g. "STRING", "TIMESTAMP"). */
  logicalType: string | undefined;
  repetition: string | undefined;
  /** Child count for groups. */
  children: number;
}

export interface ParquetRowGroupInfo {
  index: number;
  numRows: number;
  /** Index of the group's first row in the file. */
  rowStart: number;
  totalByteSize: number;
  /** Compressed bytes across its column chunks. */
  compressedBytes: number;
}

/** A summary of a Parquet footer. */
export interface ParquetInfo {
  path: string;
  numRows: number;
  /** Top-level column names. */
  columnNames: string[];
  /** Every schema element below the root, depth first. */
  schema: ParquetColumnInfo[];
  rowGroups: ParquetRowGroupInfo[];
  createdBy: string | undefined;
  keyValueMetadata: Record<string, string | undefined>;
  /** hyparquet's full footer (bigints kept). */
  raw: FileMetaData;
}

/** Anything hyparquet throws about the bytes becomes E_FORMAT; our own errors pass through. */
function formatError(e: unknown, path: string): TersorError {
  if (e instanceof TersorError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new TersorError("E_FORMAT", `${path}: invalid Parquet file: ${msg}`, { cause: e });
}

/** A hyparquet AsyncBuffer over a file handle: each slice is one positioned read. */
function fileAsyncBuffer(fh: FileHandle, size: number, path: string): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const e = Math.min(end ?? size, size);
      if (!(Number.isSafeInteger(start) && start >= 0 && Number.isSafeInteger(e) && start <= e)) {
        throw new TersorError("E_FORMAT", `${path}: invalid Parquet file: byte range [${start}, ${end}) is outside the ${size}-byte file`);
      }
      const buf = new Uint8Array(e - start);
      let done = 0;
      while (done < buf.byteLength) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, done, buf.byteLength - done, start + done));
        } catch (err) {
          throw fsError(err, `reading ${path}`);
        }
        if (n === 0) throw new TersorError("E_FORMAT", `${path}: unexpected end of file at byte ${start + done}`);
        done += n;
      }
      return buf.buffer;
    },
  };
}

async function openParquet(path: string): Promise<{ fh: FileHandle; file: AsyncBuffer; metadata: FileMetaData }> {
  const { fh, size } = await openFile(path);
  try {
    if (size < 12) throw new TersorError("E_FORMAT", `${path}: ${size} bytes is too short for a Parquet file`);
    const file = fileAsyncBuffer(fh, size, path);
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(file);
    } catch (e) {
      throw formatError(e, path);
    }
    return { fh, file, metadata };
  } catch (e) {
    await fh.close().catch(() => {});
    throw fsError(e, `reading ${path}`);
  }
}

function toNumber(v: bigint | number | undefined): number {
  return v === undefined ? 0 : Number(v);
}

function logicalOf(el: SchemaElement): string | undefined {
  return el.logical_type?.type ?? el.converted_type ?? undefined;
}

function summarize(path: string, md: FileMetaData): ParquetInfo {
  const tree = parquetSchema(md);
  const schema: ParquetColumnInfo[] = [];
  const walk = (node: typeof tree, prefix: string[]) => {
    for (const c of node.children) {
      const p = [...prefix, c.element.name];
      schema.push({
        name: p.join("."),
        type: c.element.type,
        logicalType: logicalOf(c.element),
        repetition: c.element.repetition_type,
        children: c.children.length,
      });
      walk(c, p);
    }
  };
  walk(tree, []);
  let rowStart = 0;
  const rowGroups = md.row_groups.map((rg, index) => {
    const numRows = toNumber(rg.num_rows);
    const info: ParquetRowGroupInfo = {
      index,
      numRows,
      rowStart,
      totalByteSize: toNumber(rg.total_byte_size),
      compressedBytes: rg.columns.reduce((s, c) => s + toNumber(c.meta_data?.total_compressed_size), 0),
    };
    rowStart += numRows;
    return info;
  });
  const kv: Record<string, string | undefined> = {};
  for (const { key, value } of md.key_value_metadata ?? []) kv[key] = value;
  return {
    path,
    numRows: toNumber(md.num_rows),
    columnNames: tree.children.map((c) => c.element.name),
    schema,
    rowGroups,
    createdBy: md.created_by,
    keyValueMetadata: kv,
    raw: md,
  };
}

/** Reads a Parquet footer: schema, row count, row groups, key/value metadata. */
export async function parquetMetadata(path: string): Promise<ParquetInfo> {
  const { fh, metadata } = await openParquet(path);
  try {
    return summarize(path, metadata);
  } catch (e) {
    throw formatError(e, path);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Reads the rows of a Parquet file as objects (`{column: value}`; INT64 as bigint), decoding one
 * row group at a time so memory is bounded by the largest row group. `E_FORMAT` for a malformed
 * file, `E_RANGE` for unknown columns or row group indices, `E_IO` when it cannot be read.
 */
export async function* readParquet(path: string, options: ReadParquetOptions = {}): AsyncGenerator<Record<string, unknown>> {
  const { fh, file, metadata } = await openParquet(path);
  try {
    const info = summarize(path, metadata);
    const columns = options.columns === undefined ? undefined : [...options.columns];
    for (const c of columns ?? []) {
      if (!info.columnNames.includes(c)) {
        throw new TersorError("E_RANGE", `${path}: no column "${c}"; columns: ${info.columnNames.join(", ")}`);
      }
    }
    const groups = options.rowGroups ?? info.rowGroups.map((g) => g.index);
    for (const g of groups) {
      if (!Number.isInteger(g) || g < 0 || g >= info.rowGroups.length) {
        throw new TersorError("E_RANGE", `${path}: row group ${g} does not exist (the file has ${info.rowGroups.length})`);
      }
    }
    for (const g of groups) {
      const rg = info.rowGroups[g]!;
      if (rg.numRows === 0) continue;
      let rows: Record<string, unknown>[];
      try {
        rows = await parquetReadObjects({
          file,
          metadata,
          ...(columns ? { columns } : {}),
          rowStart: rg.rowStart,
          rowEnd: rg.rowStart + rg.numRows,
          compressors,
        });
      } catch (e) {
        throw formatError(e, path);
      }
      for (const row of rows) yield row;
    }
  } finally {
    await fh.close().catch(() => {});
  }
}
