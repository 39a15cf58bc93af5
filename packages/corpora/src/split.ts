import { TersorError } from "@tersor/core";

import { SPLITS, type HashSplit, type Split } from "./types.js";

const TWO32 = 4294967296;

/**
 * FNV-1a 64 of the UTF-8 bytes of `s` (offset basis 0xcbf29ce484222325, prime 0x100000001b3),
 * returned as [high 32 bits, low 32 bits] (computed without BigInt, for speed).
 */
export function fnv1a64Parts(s: string): [number, number] {
  const bytes = Buffer.from(s, "utf8");
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]!) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64
    const t = lo * 0x1b3; // < 2^41, exact
    const tLo = t % TWO32;
    const carry = (t - tLo) / TWO32;
    hi = (Math.imul(hi, 0x1b3) + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = tLo;
  }
  return [hi, lo];
}

/** FNV-1a 64 of the UTF-8 bytes of `s`, as a bigint. */
export function fnv1a64(s: string): bigint {
  const [hi, lo] = fnv1a64Parts(s);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * The split a document id falls in: `bucket = FNV-1a-64(UTF-8 of id) mod 100`; buckets 0–89 are
 * train (90 %), 90–94 validation (5 %), 95–99 test (5 %). It depends on the id alone, so adding or
 * removing other documents never moves a document to another split.
 */
export function splitOf(id: string): HashSplit {
  const [hi, lo] = fnv1a64Parts(id);
  const bucket = ((hi % 100) * 96 + (lo % 100)) % 100; // 2^32 mod 100 = 96
  return bucket < 90 ? "train" : bucket < 95 ? "validation" : "test";
}

/** Checks a split name; throws TersorError E_RANGE for anything else. */
export function checkSplit(split: unknown): Split {
  if (split === undefined) return "all";
  if (typeof split === "string" && (SPLITS as readonly string[]).includes(split)) return split as Split;
  throw new TersorError("E_RANGE", `unknown split ${JSON.stringify(split)}; expected one of ${SPLITS.join(", ")}`);
}

/** True when document `id` belongs to `split`. */
export function inSplit(id: string, split: Split): boolean {
  return split === "all" || splitOf(id) === split;
}
