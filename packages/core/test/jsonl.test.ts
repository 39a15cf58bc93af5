import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type JsonlStats, TersorError, readJsonl, writeJsonl } from "../src/index.js";

let dir: string;
let n = 0;
const tmp = (name = "d.jsonl") => join(dir, `${n++}-${name}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-jsonl-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function fileWith(bytes: Uint8Array | string, name?: string): Promise<string> {
  const p = tmp(name);
  await writeFile(p, bytes);
  return p;
}

async function expectError(p: Promise<unknown>, code: string, re: RegExp): Promise<TersorError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    const err = e as TersorError;
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(re);
    return err;
  }
  throw new Error(`expected a TersorError ${code} matching ${re}`);
}

/** Yields the bytes one at a time (worst case for line splitting). */
async function* byteByByte(b: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.byteLength; i++) yield b.subarray(i, i + 1);
}

describe("readJsonl", () => {
  it("reads LF and CRLF lines, skips empty lines, and takes a last line without newline", async () => {
    const p = await fileWith('{"a":1}\r\n\n  \r\n[1,2]\n"str"\r\n\n{"b":"ü"}');
    const r = readJsonl(p);
    expect(await collect(r)).toEqual([{ a: 1 }, [1, 2], "str", { b: "ü" }]);
    expect(r.stats).toMatchObject({ lines: 7, records: 4, skipped: 0, empty: 3 });
  });

  it("handles a UTF-8 BOM, a trailing newline and an empty file", async () => {
    expect(await collect(readJsonl(await fileWith("\uFEFF{\"x\":1}\n")))).toEqual([{ x: 1 }]);
    const r = readJsonl(await fileWith(""));
    expect(await collect(r)).toEqual([]);
    expect(r.stats.lines).toBe(0);
  });

  it("splits lines correctly when chunks cut anywhere (multi-byte characters, CR LF)", async () => {
    const text = '{"k":"日本語"}\r\n{"e":"🎉"}\n\n{"n":null}\r\n';
    const r = readJsonl(byteByByte(Buffer.from(text)), { name: "bytes" });
    expect(await collect(r)).toEqual([{ k: "日本語" }, { e: "🎉" }, { n: null }]);
    expect(r.stats.records).toBe(3);
  });

  it("reads string chunks and a Node stream", async () => {
    async function* strings() {
      yield '{"a":';
      yield "1}\n{";
      yield '"a":2}';
    }
    expect(await collect(readJsonl(strings()))).toEqual([{ a: 1 }, { a: 2 }]);
    const p = await fileWith('{"s":1}\n{"s":2}\n');
    expect(await collect(readJsonl(createReadStream(p, { highWaterMark: 3 })))).toEqual([{ s: 1 }, { s: 2 }]);
  });

  it("fails on a non-UTF-8 line with the path and line number", async () => {
    const bytes = Buffer.concat([Buffer.from('{"ok":1}\n\n{"ok":2}\n'), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x0a]), Buffer.from('{"ok":3}\n')]);
    const p = await fileWith(bytes);
    const seen: unknown[] = [];
    const run = async () => {
      for await (const x of readJsonl(p)) seen.push(x);
    };
    const err = await expectError(run(), "E_FORMAT", /:4: line is not valid UTF-8/);
    expect(err.message).toContain(p);
    expect(seen).toEqual([{ ok: 1 }, { ok: 2 }]);
  });

  it("skips bad lines with a count when asked", async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"ok":1}\n'),
      Buffer.from([0xc3, 0x28, 0x0a]), // invalid UTF-8 sequence
      Buffer.from("{not json}\n"),
      Buffer.from('{"ok":2}\r\n'),
      Buffer.from([0xed, 0xa0, 0x80, 0x0a]), // a UTF-16 surrogate encoded in UTF-8: invalid
      Buffer.from('{"ok":3}'),
    ]);
    const p = await fileWith(bytes);
    const skipped: Array<[number, string]> = [];
    let done: JsonlStats | undefined;
    const r = readJsonl(p, { onBadLine: "skip", onSkip: (line, reason) => skipped.push([line, reason]), onDone: (s) => (done = { ...s }) });
    expect(await collect(r)).toEqual([{ ok: 1 }, { ok: 2 }, { ok: 3 }]);
    expect(r.stats.skipped).toBe(3);
    expect(r.stats.skippedLines).toEqual([2, 3, 5]);
    expect(skipped.map(([l]) => l)).toEqual([2, 3, 5]);
    expect(skipped[0]![1]).toMatch(/UTF-8/);
    expect(skipped[1]![1]).toMatch(/invalid JSON/);
    expect(done).toMatchObject({ lines: 6, records: 3, skipped: 3 });
  });

  it("fails on invalid JSON with the line number", async () => {
    const p = await fileWith('{"a":1}\n{"a":\n');
    await expectError(collect(readJsonl(p)), "E_FORMAT", /:2: invalid JSON/);
    await expectError(collect(readJsonl(byteByByte(Buffer.from("1\n2\nx\n")), { name: "stdin" })), "E_FORMAT", /^stdin:3: invalid JSON/);
  });

  it("bounds line length: error or skip, without buffering the whole line", async () => {
    const long = `{"x":"${"a".repeat(5000)}"}`;
    const p = await fileWith(`{"a":1}\n${long}\n{"a":2}\n${long}`);
    await expectError(collect(readJsonl(p, { maxLineBytes: 1000 })), "E_FORMAT", /:2: line is .*longer than maxLineBytes \(1000\)/);
    const r = readJsonl(p, { maxLineBytes: 1000, onBadLine: "skip" });
    expect(await collect(r)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(r.stats).toMatchObject({ skipped: 2, skippedLines: [2, 4], lines: 4 });
    // Same through one-byte chunks (the line crosses the limit before its newline arrives).
    const r2 = readJsonl(byteByByte(await readFile(p)), { maxLineBytes: 1000, onBadLine: "skip" });
    expect(await collect(r2)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(r2.stats.skippedLines).toEqual([2, 4]);
    expect(await collect(readJsonl(p, { maxLineBytes: 6000 }))).toHaveLength(4);
  });

  it("reads gzip input, detected by content", async () => {
    const body = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ i, s: "x".repeat(i % 50) })).join("\n") + "\n";
    const gz = await fileWith(gzipSync(body), "d.jsonl.gz");
    const out = await collect(readJsonl<{ i: number }>(gz));
    expect(out).toHaveLength(1000);
    expect(out[999]!.i).toBe(999);
    const misnamed = await fileWith(gzipSync('{"a":1}\n'), "plain-name.jsonl");
    expect(await collect(readJsonl(misnamed))).toEqual([{ a: 1 }]);
    expect(await collect(readJsonl(byteByByte(gzipSync('{"z":9}')), { gzip: true }))).toEqual([{ z: 9 }]);
    const corrupt = gzipSync(body);
    corrupt[corrupt.byteLength - 20]! ^= 0xff;
    corrupt[40]! ^= 0xff;
    await expectError(collect(readJsonl(await fileWith(corrupt, "bad.jsonl.gz"))), "E_FORMAT", /gzip|invalid JSON|UTF-8/);
  });

  it("stops reading when the consumer breaks, and can only be iterated once", async () => {
    const p = await fileWith(Array.from({ length: 10000 }, (_, i) => String(i)).join("\n"));
    const r = readJsonl<number>(p);
    for await (const x of r) if (x === 5) break;
    expect(r.stats.records).toBe(6);
    expect(() => r[Symbol.asyncIterator]()).toThrow(TersorError);
  });

  it("maps a missing file to E_IO and bad options to E_RANGE", async () => {
    await expectError(collect(readJsonl(join(dir, "missing.jsonl"))), "E_IO", /missing\.jsonl/);
    await expectError(collect(readJsonl(join(dir, "missing.jsonl"), { gzip: false })), "E_IO", /missing\.jsonl/);
    expect(() => readJsonl("x", { onBadLine: "ignore" as "skip" })).toThrow(/onBadLine/);
    expect(() => readJsonl("x", { maxLineBytes: 0 })).toThrow(/maxLineBytes/);
  });
});

describe("writeJsonl", () => {
  it("round trips records from sync and async iterables", async () => {
    const records = [{ a: 1, s: "ü\n\"quoted\"" }, [1, 2, 3], null, "text", 42, { nested: { deep: [true, false] } }];
    const p = tmp();
    expect(await writeJsonl(p, records)).toBe(records.length);
    const text = await readFile(p, "utf8");
    expect(text.split("\n")).toHaveLength(records.length + 1);
    expect(text.endsWith("\n")).toBe(true);
    expect(await collect(readJsonl(p))).toEqual(records);

    async function* gen() {
      for (let i = 0; i < 50_000; i++) yield { i, v: `value-${i}` };
    }
    const p2 = tmp();
    expect(await writeJsonl(p2, gen())).toBe(50_000);
    let count = 0;
    for await (const r of readJsonl<{ i: number }>(p2)) {
      expect(r.i).toBe(count);
      count++;
    }
    expect(count).toBe(50_000);
  });

  it("gzips .gz output", async () => {
    const p = tmp("out.jsonl.gz");
    await writeJsonl(p, [{ a: 1 }, { a: 2 }]);
    const raw = await readFile(p);
    expect(raw[0]).toBe(0x1f);
    expect(raw[1]).toBe(0x8b);
    expect(gunzipSync(raw).toString()).toBe('{"a":1}\n{"a":2}\n');
    expect(await collect(readJsonl(p))).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it("fails on records JSON cannot hold, leaving no file", async () => {
    const sub = await mkdtemp(join(dir, "w-"));
    const p = join(sub, "x.jsonl");
    await expectError(writeJsonl(p, [{ a: 1 }, { b: 2n }]), "E_FORMAT", /record 2 cannot be written/);
    await expectError(writeJsonl(p, [{ a: 1 }, undefined]), "E_FORMAT", /record 2/);
    async function* failing() {
      yield 1;
      throw new TersorError("E_RANGE", "source failed");
    }
    await expectError(writeJsonl(p, failing()), "E_RANGE", /source failed/);
    expect(await readdir(sub)).toEqual([]);
  });
});
