import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { parquetMetadata, readParquet, writeParquet } from "../src/index.js";

describe("writeParquet", () => {
  it("writes row groups that readParquet reads back, streaming from an async iterable", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-pq-"));
    const path = join(dir, "docs.parquet");
    async function* rows() {
      for (let i = 0; i < 2500; i++) yield { id: `doc-${i}`, n: i, score: i / 8, text: i % 7 === 0 ? null : `text ${"é".repeat(i % 5)} ${i}` };
    }
    const n = await writeParquet(
      path,
      [
        { name: "id", type: "STRING", nullable: false },
        { name: "n", type: "INT32" },
        { name: "score", type: "DOUBLE" },
        { name: "text", type: "STRING" },
      ],
      rows(),
      { rowGroupSize: 1000, metadata: { producer: "test" } },
    );
    expect(n).toBe(2500);
    const meta = await parquetMetadata(path);
    expect(meta.numRows).toBe(2500);
    expect(meta.rowGroups.map((g) => g.numRows)).toEqual([1000, 1000, 500]);
    const back: Record<string, unknown>[] = [];
    for await (const r of readParquet(path)) back.push(r);
    expect(back.length).toBe(2500);
    expect(back[7]).toEqual({ id: "doc-7", n: 7, score: 7 / 8, text: null });
    expect(back[2498]).toEqual({ id: "doc-2498", n: 2498, score: 2498 / 8, text: `text ${"é".repeat(3)} 2498` });
    expect(back[2499]!["text"]).toBeNull();
    expect(await readdir(dir)).toEqual(["docs.parquet"]);
  });

  it("leaves no file behind on bad input", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-pq-"));
    const path = join(dir, "bad.parquet");
    await expect(writeParquet(path, [{ name: "id", type: "STRING", nullable: false }], [{ id: "a" }, { other: 1 }])).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(writeParquet(path, [], [])).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(writeParquet(path, [{ name: "a", type: "INT32" }, { name: "a", type: "INT32" }], [])).rejects.toMatchObject({ code: "E_SHAPE" });
    expect(await readdir(dir)).toEqual([]);
  });
});
