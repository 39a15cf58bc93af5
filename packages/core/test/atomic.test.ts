import { pbkdf2 } from "node:crypto";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { openAtomic, progress, writeAtomic, writeFileAtomic } from "../src/index.js";

describe("atomic output", () => {
  it("replaces the destination only on success and leaves no temp files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-atomic-"));
    const path = join(dir, "out.bin");
    await writeFile(path, "old");
    await expect(
      writeAtomic(path, async (w) => {
        await w.write("half of the new conte");
        throw new Error("disk on fire");
      }),
    ).rejects.toThrow("disk on fire");
    expect(await readFile(path, "utf8")).toBe("old");
    expect(await readdir(dir)).toEqual(["out.bin"]);

    await writeFileAtomic(path, "new content");
    expect(await readFile(path, "utf8")).toBe("new content");
    expect(await readdir(dir)).toEqual(["out.bin"]);
  });

  it("creates missing parent directories", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-atomic-"));
    const path = join(dir, "a", "b", "c.txt");
    await writeFileAtomic(path, new Uint8Array([104, 105]));
    expect(await readFile(path, "utf8")).toBe("hi");
  });
});

describe("progress", () => {
  it("writes JSON lines in json mode, with the final state", () => {
    const lines: string[] = [];
    const stream = { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const p = progress({ label: "docs", total: 10, unit: "docs", mode: "json", stream });
    for (let i = 0; i < 10; i++) p.tick();
    p.stop();
    const last = JSON.parse(lines.at(-1)!);
    expect(last).toMatchObject({ progress: "docs", done: 10, total: 10, unit: "docs", final: true });
  });
});

describe("atomic output under back-pressure", () => {
  it("writes many chunks without leaking listeners", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-atomic-"));
    const path = join(dir, "big.bin");
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    const chunk = new Uint8Array(1 << 16).fill(7);
    await writeAtomic(path, async (w) => {
      for (let i = 0; i < 200; i++) await w.write(chunk);
    });
    await new Promise((r) => setTimeout(r, 10));
    process.off("warning", onWarning);
    expect(warnings).not.toContain("MaxListenersExceededWarning");
    expect((await readFile(path)).byteLength).toBe(200 << 16);
  });
});

describe("atomic output aborted at once", () => {
  it("leaves no temporary file when abort comes before the stream has opened it", async () => {
    // The temporary file is opened on libuv's thread pool; with the pool busy the open lands after
    // abort() returns unless abort waits for the stream to close (a file used to stay behind).
    const dir = await mkdtemp(join(tmpdir(), "tersor-abort-"));
    for (let i = 0; i < 20; i++) {
      const busy = Array.from({ length: 8 }, () => new Promise((res) => pbkdf2("x", "y", 20000, 32, "sha256", res)));
      const w = await openAtomic(join(dir, `f${i}`));
      await w.abort();
      await Promise.all(busy);
    }
    await new Promise((res) => setTimeout(res, 300));
    expect(await readdir(dir)).toEqual([]);
  });
});
