import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { TersorError, parquetMetadata, readParquet } from "../src/index.js";

let dir: string;
let file: string;
const ROWS = 35;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-parquet-"));
  file = join(dir, "data.parquet");
  const ids = Array.from({ length: ROWS }, (_, i) => i);
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "id", data: ids, type: "INT32" },
      { name: "text", data: ids.map((i) => `row ${i} ${"é".repeat(i % 3)}`), type: "STRING" },
      { name: "score", data: ids.map((i) => i / 4), type: "DOUBLE" },
      { name: "big", data: ids.map((i) => BigInt(i) * 10_000_000_000n), type: "INT64" },
      { name: "flag", data: ids.map((i) => i % 2 === 0), type: "BOOLEAN" },
      { name: "maybe", data: ids.map((i) => (i % 5 === 0 ? null : i)), type: "INT32" },
    ],
    rowGroupSize: 10,
    kvMetadata: [{ key: "source", value: "tersor-test" }],
  });
  await writeFile(file, new Uint8Array(buf));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function expectError(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    expect((e as TersorError).code, (e as Error).message).toBe(code);
    expect((e as Error).message).toMatch(re);
    return;
  }
  throw new Error(`expected a TersorError ${code}`);
}

describe("parquetMetadata", () => {
  it("summarizes schema, rows and row groups", async () => {
    const m = await parquetMetadata(file);
    expect(m.numRows).toBe(ROWS);
    expect(m.columnNames).toEqual(["id", "text", "score", "big", "flag", "maybe"]);
    expect(m.schema.find((c) => c.name === "text")).toMatchObject({ type: "BYTE_ARRAY", logicalType: expect.stringMatching(/^(STRING|UTF8)$/) });
    expect(m.schema.find((c) => c.name === "big")!.type).toBe("INT64");
    expect(m.rowGroups.map((g) => g.numRows)).toEqual([10, 10, 10, 5]);
    expect(m.rowGroups.map((g) => g.rowStart)).toEqual([0, 10, 20, 30]);
    expect(m.rowGroups.every((g) => g.compressedBytes > 0)).toBe(true);
    expect(m.keyValueMetadata["source"]).toBe("tersor-test");
    expect(typeof m.raw.num_rows).toBe("bigint");
  });
});

describe("readParquet", () => {
  it("yields every row as an object, in order", async () => {
    const rows = await collect(readParquet(file));
    expect(rows).toHaveLength(ROWS);
    expect(rows[0]).toEqual({ id: 0, text: "row 0 ", score: 0, big: 0n, flag: true, maybe: null });
    expect(rows[7]).toEqual({ id: 7, text: "row 7 é", score: 1.75, big: 70_000_000_000n, flag: false, maybe: 7 });
    expect(rows.map((r) => r["id"])).toEqual(Array.from({ length: ROWS }, (_, i) => i));
  });

  it("reads selected columns and row groups", async () => {
    const rows = await collect(readParquet(file, { columns: ["score", "id"], rowGroups: [3, 1] }));
    expect(rows.map((r) => r["id"])).toEqual([30, 31, 32, 33, 34, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(Object.keys(rows[0]!).sort()).toEqual(["id", "score"]);
  });

  it("decodes one row group at a time: rows of good groups arrive before a corrupt later group fails", async () => {
    const m = await parquetMetadata(file);
    const raw = Buffer.from(await readFile(file));
    for (const c of m.raw.row_groups[3]!.columns) {
      const start = Number(c.meta_data!.data_page_offset);
      raw.fill(0xff, start, start + Number(c.meta_data!.total_compressed_size));
    }
    const corrupt = join(dir, "corrupt-last-group.parquet");
    await writeFile(corrupt, raw);
    const seen: unknown[] = [];
    const run = async () => {
      for await (const r of readParquet(corrupt)) seen.push(r["id"]);
    };
    await expectError(run(), "E_FORMAT", /invalid Parquet file/);
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const it = readParquet(file);
    expect((await it.next()).value).toMatchObject({ id: 0 });
    await it.return(undefined);
  });

  it("rejects unknown columns and row groups", async () => {
    await expectError(collect(readParquet(file, { columns: ["nope"] })), "E_RANGE", /no column "nope"/);
    await expectError(collect(readParquet(file, { rowGroups: [4] })), "E_RANGE", /row group 4 does not exist/);
  });

  it("maps malformed files to E_FORMAT and missing files to E_IO", async () => {
    const bad = join(dir, "bad.parquet");
    await writeFile(bad, "PAR1 this is not a parquet file at all PAR0");
    await expectError(parquetMetadata(bad), "E_FORMAT", /invalid Parquet file/);
    await expectError(collect(readParquet(bad)), "E_FORMAT", /invalid Parquet file/);
    const tiny = join(dir, "tiny.parquet");
    await writeFile(tiny, "PAR1");
    await expectError(parquetMetadata(tiny), "E_FORMAT", /too short/);
    const raw = await readFile(file);
    const truncated = join(dir, "truncated.parquet");
    await writeFile(truncated, raw.subarray(0, raw.byteLength - 100));
    await expectError(parquetMetadata(truncated), "E_FORMAT", /invalid Parquet file/);
    const lenLie = Buffer.from(raw);
    lenLie.writeUInt32LE(0x7fffffff, lenLie.byteLength - 8);
    const lying = join(dir, "lying.parquet");
    await writeFile(lying, lenLie);
    await expectError(parquetMetadata(lying), "E_FORMAT", /metadata length/);
    await expectError(parquetMetadata(join(dir, "missing.parquet")), "E_IO", /missing\.parquet/);
    await expectError(collect(readParquet(dir)), "E_IO", /not a regular file/);
  });
});
