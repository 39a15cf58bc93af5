import { TersorError } from "@tersor/native";
import { ByteWriter, ParquetWriter, schemaFromColumnData } from "hyparquet-writer";
import type { BasicType, ColumnSource } from "hyparquet-writer";
import { z } from "zod";

import { openAtomic } from "../atomic.js";

/** A column of a Parquet file written by {@link writeParquet}. */
export interface ParquetColumnSpec {
  name: string;
  /** Parquet type (hyparquet-writer's BasicType): "STRING", "INT32", "INT64", "DOUBLE", "BOOLEAN", "JSON", … */
  type: BasicType;
  /** Allow null values (default true). */
  nullable?: boolean;
}

export const WriteParquetOptionsSchema = z
  .object({
    /** Rows per row group (default 10,000). Memory holds one row group at a time. */
    rowGroupSize: z.number().int().min(1).default(10_000),
    /** Compression codec (default SNAPPY). */
    codec: z.enum(["SNAPPY", "UNCOMPRESSED"]).default("SNAPPY"),
    /** Key/value metadata stored in the footer. */
    metadata: z.record(z.string(), z.string()).optional(),
  })
  .strict();

export type WriteParquetOptions = z.input<typeof WriteParquetOptionsSchema>;

/**
 * A hyparquet ByteWriter that hands its bytes over in chunks instead of growing one buffer for the
 * whole file, so a file of any size is written with one row group in memory.
 */
class ChunkedWriter extends ByteWriter {
  readonly chunks: Uint8Array[] = [];
  private readonly chunkBytes = 1 << 20;

  override ensure(size: number): void {
    if (this.index > this.chunkBytes) this.drainBuffer();
    super.ensure(size);
  }
  drainBuffer(): void {
    if (this.index === 0) return;
    this.chunks.push(new Uint8Array(this.buffer.slice(0, this.index)));
    this.index = 0;
  }
  override finish(): void {
    this.drainBuffer();
  }
  override getBuffer(): ArrayBuffer {
    throw new Error("ChunkedWriter streams its bytes; there is no whole buffer");
  }
  override getBytes(): Uint8Array<ArrayBuffer> {
    throw new Error("ChunkedWriter streams its bytes; there is no whole buffer");
  }
}

/**
 * Writes rows (objects keyed by column name) to a Parquet file through hyparquet-writer, one row
 * group at a time, atomically (a temporary file renamed into place; nothing is left behind on error).
 * Returns the number of rows written.
 */
export async function writeParquet(
  path: string,
  columns: readonly ParquetColumnSpec[],
  rows: Iterable<Record<string, unknown>> | AsyncIterable<Record<string, unknown>>,
  options: WriteParquetOptions = {},
): Promise<number> {
  const parsed = WriteParquetOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `writeParquet options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  if (columns.length === 0) throw new TersorError("E_SHAPE", "writeParquet needs at least one column");
  const names = new Set<string>();
  for (const c of columns) {
    if (names.has(c.name)) throw new TersorError("E_SHAPE", `writeParquet: column "${c.name}" appears twice`);
    names.add(c.name);
  }
  const out = await openAtomic(path);
  let count = 0;
  try {
    const writer = new ChunkedWriter();
    let pw: ParquetWriter | undefined;
    let batch: Record<string, unknown>[] = [];
    const flushBatch = async () => {
      if (batch.length === 0 && pw) return;
      const columnData: ColumnSource[] = columns.map((c) => ({
        name: c.name,
        type: c.type,
        nullable: c.nullable ?? true,
        data: batch.map((r) => {
          const v = r[c.name];
          if (v === undefined || v === null) {
            if (c.nullable === false) throw new TersorError("E_RANGE", `writeParquet: row ${count + batch.indexOf(r)} has no value for the non-nullable column "${c.name}"`);
            return null;
          }
          return v;
        }),
      }));
      pw ??= new ParquetWriter({
        writer,
        schema: schemaFromColumnData({ columnData }),
        codec: o.codec,
        ...(o.metadata ? { kvMetadata: Object.entries(o.metadata).map(([key, value]) => ({ key, value })) } : {}),
        createdBy: "tersor",
      });
      if (batch.length > 0) pw.write({ columnData, rowGroupSize: batch.length });
      count += batch.length;
      batch = [];
      writer.drainBuffer();
      for (const chunk of writer.chunks.splice(0)) await out.write(chunk);
    };
    for await (const row of rows) {
      batch.push(row);
      if (batch.length >= o.rowGroupSize) await flushBatch();
    }
    await flushBatch();
    pw!.finish();
    for (const chunk of writer.chunks.splice(0)) await out.write(chunk);
  } catch (e) {
    await out.abort();
    if (e instanceof TersorError) throw e;
    throw new TersorError("E_FORMAT", `writing Parquet ${path}: ${(e as Error).message}`, { cause: e });
  }
  await out.commit();
  return count;
}
