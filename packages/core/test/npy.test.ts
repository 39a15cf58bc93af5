import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Tensor, TersorError, encodeNpy, parseNpy, parseNpyHeader, readNpy } from "../src/index.js";

/** A .npy file built by hand: magic, version, header length (u16 for v1, u32 for v2/v3), header, data. */
function npy(header: string, data: Uint8Array, major = 1, pad = true): Uint8Array {
  const lenBytes = major === 1 ? 2 : 4;
  let h = header;
  if (pad) {
    const total = 8 + lenBytes + h.length + 1;
    h += " ".repeat((64 - (total % 64)) % 64) + "\n";
  }
  const out = new Uint8Array(8 + lenBytes + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  for (let i = 0; i < h.length; i++) out[8 + lenBytes + i] = h.charCodeAt(i);
  out.set(data, 8 + lenBytes + h.length);
  return out;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function expectFormat(f: () => unknown, pattern: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TersorError);
    expect((e as TersorError).code).toBe("E_FORMAT");
    expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error("expected an E_FORMAT error");
}

describe(".npy reader", () => {
  it("reads a v1 f4 matrix exactly as numpy writes it", () => {
    const f = Float32Array.from([1, 2, 3, 4.5, -5, 6]);
    const t = parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", bytesOf(f)));
    expect(t.dtype).toBe("f32");
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from(t.data as Float32Array)).toEqual([1, 2, 3, 4.5, -5, 6]);
  });

  it("reads a v2 header (u32 length) of f8, and 1-D shapes written (n,)", () => {
    const f = Float64Array.from([0.1, -2.25, 1e300]);
    const bytes = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytesOf(f), 2);
    expect(parseNpyHeader(bytes).version).toEqual([2, 0]);
    const t = parseNpy(bytes);
    expect(t.dtype).toBe("f64");
    expect(t.shape).toEqual([3]);
    expect(Array.from(t.data as Float64Array)).toEqual([0.1, -2.25, 1e300]);
  });

  it("reads <i4, <i8 and |u1, a scalar shape (), double-quoted keys and an unpadded header", () => {
    const i4 = parseNpy(npy(`{"descr": "<i4", "fortran_order": False, "shape": (2,)}`, bytesOf(Int32Array.from([-7, 2 ** 31 - 1])), 1, false));
    expect(Array.from(i4.data as Int32Array)).toEqual([-7, 2 ** 31 - 1]);
    const i8 = parseNpy(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", bytesOf(BigInt64Array.from([-3n, 2n ** 40n]))));
    expect(i8.dtype).toBe("i64");
    expect(Array.from(i8.data as BigInt64Array)).toEqual([-3n, 2n ** 40n]);
    const u1 = parseNpy(npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", Uint8Array.from([0, 1, 254, 255])));
    expect(u1.dtype).toBe("u8");
    expect(Array.from(u1.data as Uint8Array)).toEqual([0, 1, 254, 255]);
    const scalar = parseNpy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", bytesOf(Float64Array.of(2.5))));
    expect(scalar.shape).toEqual([]);
    expect(scalar.data[0]).toBe(2.5);
    const empty = parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", new Uint8Array(0)));
    expect(empty.shape).toEqual([0, 3]);
  });

  it("round-trips encodeNpy and reads files from disk (unaligned data is copied)", async () => {
    const t = Tensor.f32([1, 2, 3, 4, 5, 6], [3, 2]);
    const bytes = encodeNpy(t);
    expect((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64).toBe(0);
    const back = parseNpy(bytes);
    expect(back.shape).toEqual([3, 2]);
    expect(Array.from(back.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    const odd = new Uint8Array(bytes.length + 1);
    odd.set(bytes, 1);
    expect(Array.from(parseNpy(odd.subarray(1)).data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    const path = join(dir, "a.npy");
    await writeFile(path, encodeNpy(new Tensor("i64", [2], BigInt64Array.from([5n, -6n]))));
    const r = await readNpy(path);
    expect(r.dtype).toBe("i64");
    expect(Array.from(r.data as BigInt64Array)).toEqual([5n, -6n]);
  });

  it("rejects malformed, truncated and unsupported files with E_FORMAT", () => {
    const good = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", bytesOf(new Float32Array(4)));
    expectFormat(() => parseNpy(good.subarray(0, good.length - 1)), /truncated data/);
    expectFormat(() => parseNpy(good.subarray(0, 9)), /not a \.npy file/);
    expectFormat(() => parseNpy(good.subarray(0, 40)), /truncated header/);
    const trailing = new Uint8Array(good.length + 4);
    trailing.set(good);
    expectFormat(() => parseNpy(trailing), /unexpected bytes/);
    const notMagic = Uint8Array.from(good);
    notMagic[1] = 0x58;
    expectFormat(() => parseNpy(notMagic), /magic/);
    const v9 = Uint8Array.from(good);
    v9[6] = 9;
    expectFormat(() => parseNpy(v9), /version 9/);
    const data = bytesOf(new Float32Array(4));
    expectFormat(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data)), /fortran_order True/);
    expectFormat(() => parseNpy(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", data)), /unsupported dtype ">f4"/);
    expectFormat(() => parseNpy(npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data)), /unsupported dtype/);
    expectFormat(() => parseNpy(npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", data)), /structured/);
    expectFormat(() => parseNpy(npy("{'descr': '<f4', 'shape': (4,), }", data)), /no "fortran_order"/);
    expectFormat(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", data)), /shape must be/);
    expectFormat(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,) ", data)), /malformed .npy header/);
    expectFormat(() => parseNpy(npy("{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}", data)), /malformed/);
    expectFormat(() => parseNpy(npy("['descr']", data)), /not a dict/);
    expectFormat(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} extra", data)), /unexpected text/);
  });

  it("reports unreadable files as E_IO", async () => {
    await expect(readNpy(join(dir, "missing.npy"))).rejects.toMatchObject({ code: "E_IO" });
  });
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-npy-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});
