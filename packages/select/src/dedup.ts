/**
 * Deduplication: exact (xxHash64 of the normalised text) and MinHash-LSH near-duplicates (Broder
 * 1997; banding as in Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3), with the
 * shingling and permutations of datatrove (word 5-grams, xxHash64, `(a·h + b) mod (2^61 − 1)` with
 * numpy's uint64 wrap-around, 14 bands × 8 rows by default) or bands × rows chosen by datasketch's
 * `optimal_param` for a Jaccard threshold. Candidate pairs are joined by union-find; each cluster
 * keeps its lowest-index document. Also n-gram decontamination against a target set.
 *
 * Sharding: {@link minhashShard} computes a shard's signatures (they depend on the document only),
 * {@link mergeSignatureShards} joins them in input order, and {@link clusterSignatures} gives the
 * same clusters as a single process; {@link mergeSignatureShardsSpilled} does the same merge in
 * constant memory by streaming the shard files through the sorted runs of {@link dedupSpilled}.
 */
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, readFile, readdir, rm, rmdir, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { TersorError, writeAtomic, writeFileAtomic } from "@tersor/core";
import { native } from "@tersor/native";
import { z } from "zod";

import { type SelectDoc, packTexts } from "./io.js";

export const MinhashOptionsSchema = z
  .object({
    ngram: z.number().int().min(1).max(64).default(5),
    numPerm: z.number().int().min(2).max(4096).default(112),
    bands: z.number().int().min(1).optional(),
    rows: z.number().int().min(1).optional(),
    /** When set (and bands/rows are not), bands × rows come from datasketch's optimal_param. */
    threshold: z.number().gt(0).lt(1).optional(),
    seed: z.number().int().min(0).max(0xffffffff).default(1),
    layout: z.enum(["datatrove", "datasketch"]).default("datatrove"),
    /** Jaccard above which a candidate pair counts as a true duplicate in the precision estimate. */
    precisionThreshold: z.number().gt(0).lt(1).optional(),
  })
  .strict();
export type MinhashOptions = z.input<typeof MinhashOptionsSchema>;

/** Bands × rows: given, or datasketch's optimal_param for the threshold (weights 0.5 / 0.5), or datatrove's 14 × 8. */
export function lshParams(o: z.output<typeof MinhashOptionsSchema>): { bands: number; rows: number } {
  if (o.bands !== undefined || o.rows !== undefined) {
    if (o.bands === undefined || o.rows === undefined) throw new TersorError("E_RANGE", "give both bands and rows, or neither");
    if (o.bands * o.rows > o.numPerm) throw new TersorError("E_RANGE", `bands x rows (${o.bands} x ${o.rows}) exceeds the ${o.numPerm} permutations`);
    return { bands: o.bands, rows: o.rows };
  }
  if (o.threshold !== undefined) return optimalParams(o.threshold, o.numPerm);
  if (o.numPerm < 112) throw new TersorError("E_RANGE", `datatrove's default 14 x 8 needs 112 permutations, got ${o.numPerm}; give bands/rows or a threshold`);
  return { bands: 14, rows: 8 };
}

/** datasketch's `optimal_param(threshold, num_perm, 0.5, 0.5)`. */
export function optimalParams(threshold: number, numPerm: number, fpWeight = 0.5, fnWeight = 0.5): { bands: number; rows: number } {
  return native().selectLshOptimalParams(threshold, numPerm, fpWeight, fnWeight);
}

/** 32-bit MinHash signatures of texts (`texts.length × numPerm`). */
export async function minhashSignatures(texts: readonly string[], options: MinhashOptions = {}): Promise<Uint32Array> {
  const o = MinhashOptionsSchema.parse(options);
  const out = new Uint32Array(texts.length * o.numPerm);
  // Batches of ~8 MiB keep memory flat in the text size.
  let start = 0;
  while (start < texts.length) {
    let end = start;
    let bytes = 0;
    while (end < texts.length && (end === start || bytes < 8 << 20)) bytes += texts[end++]!.length;
    const { bytes: b, offsets } = packTexts(texts.slice(start, end));
    out.set(await native().selectMinhashSignatures(b, offsets, o.ngram, o.numPerm, o.seed, o.layout), start * o.numPerm);
    start = end;
  }
  return out;
}

/** MinHash estimate of the Jaccard similarity of rows i and j. */
export function signatureJaccard(sigs: Uint32Array, numPerm: number, i: number, j: number): number {
  let eq = 0;
  for (let k = 0; k < numPerm; k++) eq += sigs[i * numPerm + k] === sigs[j * numPerm + k] ? 1 : 0;
  return eq / numPerm;
}

/** Union-find whose representative is the lowest index of a component. */
export class UnionFind {
  private readonly parent: Uint32Array;
  constructor(n: number) {
    this.parent = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  find(x: number): number {
    const p = this.parent;
    while (p[x] !== x) {
      p[x] = p[p[x]!]!;
      x = p[x]!;
    }
    return x;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
  }
}

/** Per-document dedup decision. */
export interface DedupDecision {
  /** Cluster id: the position (in the deduplicated set) of the cluster's kept document. */
  cluster: number;
  keep: boolean;
  /** "unique", "kept" (first of a cluster), "exact-duplicate" or "near-duplicate". */
  reason: "unique" | "kept" | "exact-duplicate" | "near-duplicate";
}

export interface DedupResult {
  decisions: DedupDecision[];
  documents: number;
  kept: number;
  exactDuplicates: number;
  nearDuplicates: number;
  clusters: number;
  /** Sizes of clusters with more than one document. */
  clusterSizes: number[];
  candidatePairs: number;
  /** Fraction of LSH candidate pairs whose estimated Jaccard is at least the threshold (1 when there are none). */
  estimatedPrecision: number;
  bands: number;
  rows: number;
}

/** Exact keys (xxHash64 of the normalised text) as 16-hex-digit strings. */
export function exactKeys(texts: readonly string[]): string[] {
  const { bytes, offsets } = packTexts(texts);
  const h = native().selectNormalisedHashes(bytes, offsets);
  const out: string[] = new Array(texts.length);
  for (let i = 0; i < texts.length; i++) out[i] = h[2 * i + 1]!.toString(16).padStart(8, "0") + h[2 * i]!.toString(16).padStart(8, "0");
  return out;
}

/**
 * Clusters documents from their exact keys and MinHash signatures (in input order). `mode`:
 * "exact" uses the keys only; "minhash" both (exact copies are always near-duplicates too).
 */
export async function clusterSignatures(
  keys: readonly string[],
  sigs: Uint32Array | null,
  options: MinhashOptions & { mode?: "exact" | "minhash" } = {},
): Promise<DedupResult> {
  const { mode = "minhash", ...rest } = options;
  const o = MinhashOptionsSchema.parse(rest);
  const n = keys.length;
  const uf = new UnionFind(n);
  const exactTwin = new Uint8Array(n);
  const first = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const f = first.get(keys[i]!);
    if (f === undefined) first.set(keys[i]!, i);
    else {
      uf.union(f, i);
      exactTwin[i] = 1;
    }
  }
  let bands = 0;
  let rows = 0;
  let candidatePairs = 0;
  let precision = 1;
  if (mode === "minhash") {
    if (!sigs || sigs.length !== n * o.numPerm) throw new TersorError("E_SHAPE", `signatures must hold ${n} x ${o.numPerm} values`);
    ({ bands, rows } = lshParams(o));
    const pairs = n > 1 ? await native().selectLshCandidatePairs(sigs, n, o.numPerm, bands, rows) : new Uint32Array(0);
    candidatePairs = pairs.length / 2;
    const thr = o.precisionThreshold ?? o.threshold ?? Math.pow(1 / bands, 1 / rows);
    let good = 0;
    for (let p = 0; p < pairs.length; p += 2) {
      uf.union(pairs[p]!, pairs[p + 1]!);
      if (signatureJaccard(sigs, o.numPerm, pairs[p]!, pairs[p + 1]!) >= thr) good++;
    }
    precision = candidatePairs ? good / candidatePairs : 1;
  }
  return decide(n, uf, exactTwin, { candidatePairs, estimatedPrecision: precision, bands, rows });
}

/** Decisions from the components: each keeps its lowest index; the others are exact or near duplicates. */
function decide(n: number, uf: UnionFind, exactTwin: Uint8Array, lsh: { candidatePairs: number; estimatedPrecision: number; bands: number; rows: number }): DedupResult {
  const size = new Map<number, number>();
  for (let i = 0; i < n; i++) size.set(uf.find(i), (size.get(uf.find(i)) ?? 0) + 1);
  const clusterOf = new Map<number, number>();
  const decisions: DedupDecision[] = new Array(n);
  let kept = 0;
  let exact = 0;
  let near = 0;
  for (let i = 0; i < n; i++) {
    const root = uf.find(i);
    if (root === i) clusterOf.set(i, kept++);
    const cluster = clusterOf.get(root)!;
    if (root === i) decisions[i] = { cluster, keep: true, reason: size.get(root)! > 1 ? "kept" : "unique" };
    else if (exactTwin[i]) {
      decisions[i] = { cluster, keep: false, reason: "exact-duplicate" };
      exact++;
    } else {
      decisions[i] = { cluster, keep: false, reason: "near-duplicate" };
      near++;
    }
  }
  const clusterSizes = [...size.values()].filter((s) => s > 1).sort((a, b) => b - a);
  return { decisions, documents: n, kept, exactDuplicates: exact, nearDuplicates: near, clusters: kept, clusterSizes, ...lsh };
}

/** Deduplicates documents held in memory. */
export async function dedupDocs(docs: readonly SelectDoc[], options: MinhashOptions & { mode?: "exact" | "minhash" } = {}): Promise<DedupResult> {
  const texts = docs.map((d) => d.text);
  const { mode = "minhash", ...rest } = options;
  const sigs = mode === "minhash" ? await minhashSignatures(texts, rest) : null;
  return clusterSignatures(exactKeys(texts), sigs, options);
}

// ---- sharding -------------------------------------------------------------------------------------

/** What one shard writes for `dedup merge`: positions, ids, exact keys and signatures. */
export interface SignatureShard {
  format: "tersor-dedup-shard/1";
  numPerm: number;
  options: MinhashOptions & { mode?: "exact" | "minhash" };
  indices: number[];
  ids: string[];
  keys: string[];
  /** Signatures as base64 of little-endian uint32 (indices.length × numPerm). */
  signatures: string;
  /** Decontamination done by the shard: the target spec, the n-gram size and each document's shared n-gram count. */
  decontam?: { target: string; ngram: number; overlap: number[] };
}

export async function minhashShard(docs: readonly SelectDoc[], options: MinhashOptions & { mode?: "exact" | "minhash" } = {}): Promise<SignatureShard> {
  const { mode = "minhash", ...rest } = options;
  const o = MinhashOptionsSchema.parse(rest);
  const texts = docs.map((d) => d.text);
  const sigs = mode === "minhash" ? await minhashSignatures(texts, rest) : new Uint32Array(0);
  return {
    format: "tersor-dedup-shard/1",
    numPerm: o.numPerm,
    options,
    indices: docs.map((d) => d.index),
    ids: docs.map((d) => d.id),
    keys: exactKeys(texts),
    signatures: Buffer.from(sigs.buffer, sigs.byteOffset, sigs.byteLength).toString("base64"),
  };
}

/** The shard file (`tersor-dedup-shard/2`, JSONL): a header line, then one line per document in input order. */
interface ShardFileHeader {
  format: "tersor-dedup-shard/2";
  numPerm: number;
  options: SignatureShard["options"];
  decontam?: { target: string; ngram: number };
}
interface ShardFileRow {
  index: number;
  id: string;
  key: string;
  /** The document's signature, base64 of little-endian uint32 ("" in exact mode). */
  sig: string;
  /** Shared n-grams with the decontamination target, when the shard decontaminated. */
  overlap?: number;
}

const b64ToU32 = (s: string): Uint32Array => {
  const buf = Buffer.from(s, "base64");
  if (buf.byteLength % 4) throw new TersorError("E_FORMAT", "a signature is not a whole number of uint32 words");
  return new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};
const u32ToB64 = (a: Uint32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");

/** Writes a shard file: a header line, then one line per document in input order (streamed by `dedup merge`). */
export async function writeSignatureShard(path: string, shard: SignatureShard): Promise<void> {
  const mode = shard.options.mode ?? "minhash";
  const k = shard.numPerm;
  const sigs = b64ToU32(shard.signatures);
  const n = shard.indices.length;
  if (shard.ids.length !== n || shard.keys.length !== n || (mode === "minhash" && sigs.length !== n * k) || (shard.decontam && shard.decontam.overlap.length !== n))
    throw new TersorError("E_SHAPE", "a dedup shard's indices, ids, keys, signatures and overlaps must have one entry per document");
  for (let r = 1; r < n; r++) if (shard.indices[r]! <= shard.indices[r - 1]!) throw new TersorError("E_RANGE", "a dedup shard's documents must be in input order");
  const header: ShardFileHeader = { format: "tersor-dedup-shard/2", numPerm: k, options: shard.options, ...(shard.decontam ? { decontam: { target: shard.decontam.target, ngram: shard.decontam.ngram } } : {}) };
  await writeAtomic(path, async (w) => {
    let buf = JSON.stringify(header) + "\n";
    for (let r = 0; r < n; r++) {
      const row: ShardFileRow = { index: shard.indices[r]!, id: shard.ids[r]!, key: shard.keys[r]!, sig: mode === "minhash" ? u32ToB64(sigs.subarray(r * k, (r + 1) * k)) : "" };
      if (shard.decontam) row.overlap = shard.decontam.overlap[r]!;
      buf += JSON.stringify(row) + "\n";
      if (buf.length >= 1 << 20) {
        await w.write(buf);
        buf = "";
      }
    }
    await w.write(buf);
  });
}

/**
 * Streams one shard's documents (in input order) into a shard file in batches: signatures, exact
 * keys and, with `decontaminate`, each document's shared n-gram count with the target (texts are
 * never all in memory). Returns the number of documents written. The file equals
 * {@link writeSignatureShard} of {@link minhashShard} (plus the decontamination counts).
 */
export async function writeMinhashShardStream(
  path: string,
  docs: AsyncIterable<SelectDoc> | Iterable<SelectDoc>,
  options: MinhashOptions & { mode?: "exact" | "minhash" } = {},
  extra: { decontaminate?: { target: string; ngram: number; texts: readonly string[] }; onProgress?: (done: number) => void } = {},
): Promise<number> {
  const { mode = "minhash", ...rest } = options;
  const o = MinhashOptionsSchema.parse(rest);
  const k = o.numPerm;
  const dc = extra.decontaminate;
  if (dc && dc.texts.length === 0) throw new TersorError("E_RANGE", "the decontamination target is empty");
  const header: ShardFileHeader = { format: "tersor-dedup-shard/2", numPerm: k, options, ...(dc ? { decontam: { target: dc.target, ngram: dc.ngram } } : {}) };
  let n = 0;
  let last = -1;
  await writeAtomic(path, async (w) => {
    await w.write(JSON.stringify(header) + "\n");
    let pending: SelectDoc[] = [];
    let bytes = 0;
    const flush = async () => {
      if (!pending.length) return;
      const texts = pending.map((d) => d.text);
      const sigs = mode === "minhash" ? await minhashSignatures(texts, rest) : new Uint32Array(0);
      const keys = exactKeys(texts);
      const overlap = dc ? await ngramOverlap(texts, dc.texts, dc.ngram) : null;
      let buf = "";
      pending.forEach((d, r) => {
        const row: ShardFileRow = { index: d.index, id: d.id, key: keys[r]!, sig: mode === "minhash" ? u32ToB64(sigs.subarray(r * k, (r + 1) * k)) : "" };
        if (overlap) row.overlap = overlap[r]!;
        buf += JSON.stringify(row) + "\n";
      });
      await w.write(buf);
      n += pending.length;
      pending = [];
      bytes = 0;
      extra.onProgress?.(n);
    };
    for await (const d of docs) {
      if (d.index <= last) throw new TersorError("E_RANGE", "a dedup shard's documents must be in input order");
      last = d.index;
      pending.push(d);
      bytes += d.text.length;
      if (pending.length >= 2000 || bytes >= 8 << 20) await flush();
    }
    await flush();
  });
  return n;
}

/** One shard file opened for streaming: its header and its rows in file order. */
async function openShardFile(path: string): Promise<{ header: ShardFileHeader; rows: AsyncIterator<ShardFileRow>; close: () => void }> {
  const stream = createReadStream(path, { encoding: "utf8" });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  const lines = rl[Symbol.asyncIterator]();
  const close = () => {
    rl.close();
    stream.destroy();
  };
  let lineNo = 0;
  const next = async (): Promise<unknown> => {
    for (;;) {
      let r: IteratorResult<string>;
      try {
        r = await lines.next();
      } catch (e) {
        throw new TersorError("E_IO", `cannot read ${path}: ${(e as Error).message}`);
      }
      if (r.done) return undefined;
      lineNo++;
      if (!r.value.trim()) continue;
      try {
        return JSON.parse(r.value);
      } catch (e) {
        throw new TersorError("E_FORMAT", `${path}:${lineNo}: ${(e as Error).message}`);
      }
    }
  };
  try {
    const first = (await next()) as (ShardFileHeader | SignatureShard | { format?: unknown }) | undefined;
    if (first && first.format === "tersor-dedup-shard/1") {
      // The earlier single-JSON format: already whole in memory.
      const v1 = first as SignatureShard;
      close();
      const k = v1.numPerm;
      const mode = v1.options.mode ?? "minhash";
      const sigs = b64ToU32(v1.signatures);
      let r = 0;
      return {
        header: { format: "tersor-dedup-shard/2", numPerm: k, options: v1.options, ...(v1.decontam ? { decontam: { target: v1.decontam.target, ngram: v1.decontam.ngram } } : {}) },
        rows: {
          next: async () => {
            if (r >= v1.indices.length) return { done: true, value: undefined };
            const row: ShardFileRow = { index: v1.indices[r]!, id: v1.ids[r]!, key: v1.keys[r]!, sig: mode === "minhash" ? u32ToB64(sigs.subarray(r * k, (r + 1) * k)) : "" };
            if (v1.decontam) row.overlap = v1.decontam.overlap[r] ?? 0;
            r++;
            return { done: false, value: row };
          },
        },
        close: () => undefined,
      };
    }
    if (!first || first.format !== "tersor-dedup-shard/2") throw new TersorError("E_FORMAT", `${path}: not a dedup shard file (write one with tersor dedup --shard i/N --signatures <path>)`);
    return {
      header: first as ShardFileHeader,
      rows: {
        next: async () => {
          const v = (await next()) as ShardFileRow | undefined;
          if (v === undefined) return { done: true, value: undefined };
          if (typeof v !== "object" || v === null || !Number.isInteger(v.index) || typeof v.key !== "string" || !/^[0-9a-f]{16}$/.test(v.key) || typeof v.sig !== "string")
            throw new TersorError("E_FORMAT", `${path}:${lineNo}: not a dedup shard row`);
          return { done: false, value: v };
        },
      },
      close,
    };
  } catch (e) {
    close();
    if (e instanceof TersorError) throw e;
    throw new TersorError("E_IO", `cannot read ${path}: ${(e as Error).message}`);
  }
}

export async function readSignatureShard(path: string): Promise<SignatureShard> {
  const f = await openShardFile(path);
  const indices: number[] = [];
  const ids: string[] = [];
  const keys: string[] = [];
  const sigs: Uint32Array[] = [];
  const overlap: number[] = [];
  try {
    for (let r = await f.rows.next(); !r.done; r = await f.rows.next()) {
      indices.push(r.value.index);
      ids.push(r.value.id);
      keys.push(r.value.key);
      sigs.push(b64ToU32(r.value.sig));
      overlap.push(r.value.overlap ?? 0);
    }
  } finally {
    f.close();
  }
  const all = new Uint32Array(sigs.reduce((a, s) => a + s.length, 0));
  let at = 0;
  for (const s of sigs) {
    all.set(s, at);
    at += s.length;
  }
  const h = f.header;
  return { format: "tersor-dedup-shard/1", numPerm: h.numPerm, options: h.options, indices, ids, keys, signatures: u32ToB64(all), ...(h.decontam ? { decontam: { ...h.decontam, overlap } } : {}) };
}

/** One document of a shard stream: its input position, id, exact key, signature and decontamination count. */
export interface ShardRecord {
  index: number;
  id: string;
  key: string;
  sig: Uint32Array;
  overlap: number;
}

/**
 * Opens shard files for streaming: checks that they share the options and decontamination target,
 * and yields their documents k-way merged in input order (one row per file in memory), failing
 * when a position repeats or a file is out of order.
 */
export async function streamSignatureShards(paths: readonly string[]): Promise<{ numPerm: number; options: SignatureShard["options"]; decontam?: { target: string; ngram: number }; records: AsyncGenerator<ShardRecord> }> {
  if (paths.length === 0) throw new TersorError("E_RANGE", "no shards to merge");
  const files: Awaited<ReturnType<typeof openShardFile>>[] = [];
  try {
    for (const p of paths) files.push(await openShardFile(p));
    const h0 = files[0]!.header;
    const opt = JSON.stringify(h0.options);
    for (const f of files) {
      if (JSON.stringify(f.header.options) !== opt || f.header.numPerm !== h0.numPerm) throw new TersorError("E_RANGE", "shards were made with different options");
      if ((f.header.decontam?.target ?? null) !== (h0.decontam?.target ?? null) || (f.header.decontam?.ngram ?? null) !== (h0.decontam?.ngram ?? null))
        throw new TersorError("E_RANGE", "shards were made with different --decontaminate targets or n-gram sizes");
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  const h0 = files[0]!.header;
  const k = h0.numPerm;
  const mode = h0.options.mode ?? "minhash";
  async function* records(): AsyncGenerator<ShardRecord> {
    try {
      const heads: (ShardFileRow | undefined)[] = [];
      for (const f of files) {
        const r = await f.rows.next();
        heads.push(r.done ? undefined : r.value);
      }
      let last = -1;
      for (;;) {
        // The file whose next row has the lowest position (a linear scan: shard counts are small).
        let best = -1;
        for (let s = 0; s < heads.length; s++) if (heads[s] && (best < 0 || heads[s]!.index < heads[best]!.index)) best = s;
        if (best < 0) return;
        const row = heads[best]!;
        if (row.index === last) throw new TersorError("E_RANGE", `document ${row.index} appears in two shards`);
        if (row.index < last) throw new TersorError("E_FORMAT", `${paths[best]}: documents out of input order at position ${row.index}`);
        last = row.index;
        const sig = mode === "minhash" ? b64ToU32(row.sig) : new Uint32Array(0);
        if (sig.length !== (mode === "minhash" ? k : 0)) throw new TersorError("E_FORMAT", `${paths[best]}: document ${row.index} has ${sig.length} signature values, expected ${k}`);
        const nx = await files[best]!.rows.next();
        heads[best] = nx.done ? undefined : nx.value;
        yield { index: row.index, id: row.id, key: row.key, sig, overlap: row.overlap ?? 0 };
      }
    } finally {
      for (const f of files) f.close();
    }
  }
  return { numPerm: k, options: h0.options, ...(h0.decontam ? { decontam: h0.decontam } : {}), records: records() };
}

/** A Uint32Array that grows by doubling. */
class U32List {
  data = new Uint32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const d = new Uint32Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = v;
  }
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}

/**
 * `dedup merge` in constant memory in the corpus size (besides the union-find's 4 bytes and the
 * decisions per document): streams the shard files k-way merged in input order through the sorted-
 * run machinery of {@link dedupSpilled} (signatures appended to a signature file, exact-key and
 * band records sorted into run files under `memory`, runs k-way merged into a union-find over the
 * global positions, precision from signatures read back from disk by position). Gives exactly the
 * clusters, candidate pairs and precision of one process over the whole input. Returns each
 * position's input index and, when the shards decontaminated, its shared n-gram count.
 */
export async function mergeSignatureShardsSpilled(
  paths: readonly string[],
  o: Omit<SpilledDedupOptions, "minhash"> = {},
): Promise<{ result: DedupResult; indices: Uint32Array; options: SignatureShard["options"]; decontam?: { target: string; ngram: number; overlap: Uint32Array } }> {
  const s = await streamSignatureShards(paths);
  const mode = s.options.mode ?? "minhash";
  const indices = new U32List();
  const overlap = new U32List();
  async function* tap(): AsyncGenerator<ShardRecord> {
    for await (const r of s.records) {
      indices.push(r.index);
      if (s.decontam) overlap.push(r.overlap);
      yield r;
    }
  }
  const header = { format: "tersor-dedup-merge-runs/1", input: o.inputKey ?? [...paths], options: s.options };
  const result = await spillCluster(
    tap(),
    (r) => 96 + 2 * r.id.length,
    async (batch) => {
      const hashes = new Uint32Array(2 * batch.length);
      const sigs = new Uint32Array(mode === "minhash" ? batch.length * s.numPerm : 0);
      batch.forEach((r, i) => {
        hashes[2 * i] = parseInt(r.key.slice(8), 16);
        hashes[2 * i + 1] = parseInt(r.key.slice(0, 8), 16);
        if (mode === "minhash") sigs.set(r.sig, i * s.numPerm);
      });
      return { hashes, sigs };
    },
    header,
    { ...o, minhash: s.options },
  );
  return { result, indices: indices.view(), options: s.options, ...(s.decontam ? { decontam: { ...s.decontam, overlap: overlap.view() } } : {}) };
}

/** Joins shards in input order; every shard must share the options; positions must not repeat. */
export function mergeSignatureShards(shards: readonly SignatureShard[]): {
  indices: number[];
  ids: string[];
  keys: string[];
  signatures: Uint32Array;
  options: SignatureShard["options"];
  /** Per document (input order), the decontamination counts when the shards decontaminated. */
  decontam?: { target: string; ngram: number; overlap: number[] };
} {
  if (shards.length === 0) throw new TersorError("E_RANGE", "no shards to merge");
  const opt = JSON.stringify(shards[0]!.options);
  for (const s of shards) if (JSON.stringify(s.options) !== opt) throw new TersorError("E_RANGE", "shards were made with different options");
  const d0 = shards[0]!.decontam;
  for (const s of shards)
    if ((s.decontam?.target ?? null) !== (d0?.target ?? null) || (s.decontam?.ngram ?? null) !== (d0?.ngram ?? null))
      throw new TersorError("E_RANGE", "shards were made with different --decontaminate targets or n-gram sizes");
  const overlapOf = new Map<number, number>();
  if (d0) for (const s of shards) s.indices.forEach((index, r) => overlapOf.set(index, s.decontam!.overlap[r] ?? 0));
  const k = shards[0]!.numPerm;
  const mode = shards[0]!.options.mode ?? "minhash";
  const rows: { index: number; id: string; key: string; sig: Uint32Array }[] = [];
  for (const s of shards) {
    const buf = Buffer.from(s.signatures, "base64");
    const sig = new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    s.indices.forEach((index, r) => rows.push({ index, id: s.ids[r]!, key: s.keys[r]!, sig: mode === "minhash" ? sig.subarray(r * k, (r + 1) * k) : new Uint32Array(0) }));
  }
  rows.sort((a, b) => a.index - b.index);
  for (let i = 1; i < rows.length; i++) if (rows[i]!.index === rows[i - 1]!.index) throw new TersorError("E_RANGE", `document ${rows[i]!.index} appears in two shards`);
  const signatures = new Uint32Array(mode === "minhash" ? rows.length * k : 0);
  if (mode === "minhash") rows.forEach((r, i) => signatures.set(r.sig, i * k));
  const decontam = d0 ? { target: d0.target, ngram: d0.ngram, overlap: rows.map((r) => overlapOf.get(r.index)!) } : undefined;
  return { indices: rows.map((r) => r.index), ids: rows.map((r) => r.id), keys: rows.map((r) => r.key), signatures, options: shards[0]!.options, decontam };
}

// ---- decontamination ------------------------------------------------------------------------------

/** Per document, the number of its word n-grams (default 13) found in the target texts. */
export async function ngramOverlap(texts: readonly string[], targets: readonly string[], n = 13): Promise<Uint32Array> {
  if (targets.length === 0) throw new TersorError("E_RANGE", "the decontamination target is empty");
  const d = packTexts(texts);
  const t = packTexts(targets);
  return native().selectNgramOverlap(d.bytes, d.offsets, t.bytes, t.offsets, n);
}

// ---- streaming, spilled, resumable ----------------------------------------------------------------

export interface StreamDedupOptions {
  minhash?: MinhashOptions & { mode?: "exact" | "minhash" };
  /** Where per-batch signatures go (a JSONL checkpoint); a matching one is resumed. */
  spillPath: string;
  /** Documents per batch (default 2000). */
  batchDocs?: number;
  /** Progress: documents done so far. */
  onProgress?: (done: number) => void;
}

interface SpillBatch {
  indices: number[];
  keys: string[];
  signatures: string;
}

/**
 * Pass 1 of a constant-text-memory dedup: streams the documents in batches, writing each batch's
 * positions, exact keys and signatures to the spill file (only ~4·numPerm bytes per document stay
 * for the clustering; texts are never held). A spill left by an interrupted run with the same input
 * and options is resumed: its complete batches are kept and their documents skipped. Returns the
 * clustering; pass 2 is the caller re-reading the input to write the kept records in order.
 */
export async function dedupStream(docs: AsyncIterable<SelectDoc>, inputKey: string, o: StreamDedupOptions): Promise<DedupResult> {
  const { appendFile, readFile: rf, writeFile: wf } = await import("node:fs/promises");
  const mh = o.minhash ?? {};
  const { mode = "minhash", ...rest } = mh;
  const parsed = MinhashOptionsSchema.parse(rest);
  const header = JSON.stringify({ format: "tersor-dedup-spill/1", input: inputKey, options: mh });
  const batches: SpillBatch[] = [];
  let resumeDocs = 0;
  try {
    const lines = (await rf(o.spillPath, "utf8")).split("\n");
    if (lines[0] === header) {
      // Only complete lines (a torn last line from a crash is dropped).
      for (const l of lines.slice(1, lines.length - 1)) {
        const b = JSON.parse(l) as SpillBatch;
        batches.push(b);
        resumeDocs += b.indices.length;
      }
    }
  } catch {
    // no spill yet
  }
  await wf(o.spillPath, header + "\n" + batches.map((b) => JSON.stringify(b) + "\n").join(""));
  const size = o.batchDocs ?? 2000;
  let seen = 0;
  let pending: SelectDoc[] = [];
  const flush = async () => {
    if (!pending.length) return;
    const texts = pending.map((d) => d.text);
    const sigs = mode === "minhash" ? await minhashSignatures(texts, rest) : new Uint32Array(0);
    const b: SpillBatch = { indices: pending.map((d) => d.index), keys: exactKeys(texts), signatures: Buffer.from(sigs.buffer, sigs.byteOffset, sigs.byteLength).toString("base64") };
    await appendFile(o.spillPath, JSON.stringify(b) + "\n");
    batches.push(b);
    pending = [];
    o.onProgress?.(seen);
  };
  for await (const d of docs) {
    seen++;
    if (seen <= resumeDocs) continue;
    pending.push(d);
    if (pending.length >= size) await flush();
  }
  await flush();
  const keys: string[] = [];
  const n = batches.reduce((a, b) => a + b.indices.length, 0);
  const sigs = new Uint32Array(mode === "minhash" ? n * parsed.numPerm : 0);
  let at = 0;
  for (const b of batches) {
    keys.push(...b.keys);
    if (mode === "minhash") {
      const buf = Buffer.from(b.signatures, "base64");
      sigs.set(new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), at * parsed.numPerm);
    }
    at += b.indices.length;
  }
  return clusterSignatures(keys, mode === "minhash" ? sigs : null, mh);
}

// ---- constant memory: sorted runs on disk ---------------------------------------------------------

/** Parses a memory budget: bytes, or a number with KB/MB/GB (powers of 1024), e.g. "256MB". */
export function parseMemory(spec: string | number): number {
  if (typeof spec === "number") {
    if (!Number.isFinite(spec) || spec < 1) throw new TersorError("E_RANGE", `memory budget must be a positive number of bytes, got ${spec}`);
    return Math.floor(spec);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB)?\s*$/i.exec(spec);
  if (!m) throw new TersorError("E_RANGE", `memory budget must look like 256MB, 1GB or a byte count, got "${spec}"`);
  const unit = (m[2] ?? "B").toUpperCase().replace("I", "");
  const mult = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[unit as "B" | "KB" | "MB" | "GB"];
  const v = Math.floor(Number(m[1]) * mult);
  if (v < 1) throw new TersorError("E_RANGE", `memory budget must be positive, got "${spec}"`);
  return v;
}

export interface SpilledDedupOptions {
  minhash?: MinhashOptions & { mode?: "exact" | "minhash" };
  /** Memory budget for the in-memory part of a run (texts, signatures, band records): bytes or "256MB". Default 256 MiB. */
  memory?: string | number;
  /**
   * Work directory for the run files and the signature file (they go in its subdirectory
   * `tersor-dedup-run`). Default: a fresh directory under the OS temp dir. A manifest left there by
   * an interrupted (killed) run with the same `inputKey` and options is resumed: its complete runs
   * are kept and their documents skipped. The files are removed at the end, also on error; the
   * given directory only when it is then empty.
   */
  workDir?: string;
  /** Identifies the input for resuming (e.g. its path). */
  inputKey?: string;
  /** Progress: documents done so far. */
  onProgress?: (done: number) => void;
}

interface SpillManifest {
  header: string;
  runs: { file: string; first: number; n: number }[];
}

/**
 * Constant-memory dedup: streams the documents in runs bounded by the memory budget; per run, the
 * MinHash signatures are appended to a signature file and the (key, document) records of the exact
 * key and of every LSH band are sorted and written to a run file (native `selectLshSpillRun`). The
 * runs are then k-way merged per band (`selectLshMergeRuns`): adjacent equal keys are the candidate
 * pairs, joined in a union-find over document positions (4 bytes each; texts and signatures are
 * never all in memory). Gives exactly the clusters of {@link dedupDocs} on the same documents
 * (positions are the streaming order).
 */
export async function dedupSpilled(docs: AsyncIterable<SelectDoc> | Iterable<SelectDoc>, o: SpilledDedupOptions = {}): Promise<DedupResult> {
  const mh = o.minhash ?? {};
  const { mode = "minhash", ...rest } = mh;
  const header = { format: "tersor-dedup-runs/1", input: o.inputKey ?? null, options: mh };
  return spillCluster(
    docs,
    (d) => 3 * d.text.length,
    async (batch) => {
      const texts = batch.map((d) => d.text);
      const { bytes: b, offsets } = packTexts(texts);
      return { hashes: native().selectNormalisedHashes(b, offsets), sigs: mode === "minhash" ? await minhashSignatures(texts, rest) : new Uint32Array(0) };
    },
    header,
    o,
  );
}

/**
 * The sorted-run machinery of {@link dedupSpilled} over any stream of documents in position order:
 * `cost` is an item's in-memory size beyond its signature and band records, `prepare` gives a
 * batch's exact hashes ((low, high) words per document) and signatures (empty in exact mode).
 */
async function spillCluster<T>(
  items: AsyncIterable<T> | Iterable<T>,
  cost: (item: T) => number,
  prepare: (batch: T[]) => Promise<{ hashes: Uint32Array; sigs: Uint32Array }>,
  headerFields: Record<string, unknown>,
  o: SpilledDedupOptions,
): Promise<DedupResult> {
  const mh = o.minhash ?? {};
  const { mode = "minhash", ...rest } = mh;
  const parsed = MinhashOptionsSchema.parse(rest);
  const { bands, rows } = mode === "minhash" ? lshParams(parsed) : { bands: 0, rows: 0 };
  const budget = parseMemory(o.memory ?? "256MB");
  const k = parsed.numPerm;
  const perDoc = mode === "minhash" ? 4 * k + 2 * 12 * (1 + bands) : 2 * 12;
  // The files live in a subdirectory this function owns; the given directory itself is only
  // removed when that leaves it empty (never anything else in it).
  let dir: string;
  if (o.workDir) {
    dir = join(o.workDir, "tersor-dedup-run");
    await mkdir(dir, { recursive: true });
  } else dir = await mkdtemp(join(tmpdir(), "tersor-dedup-"));
  const manifestPath = join(dir, "manifest.json");
  const sigPath = join(dir, "signatures.u32");
  const header = JSON.stringify({ ...headerFields, memory: budget });
  try {
    let manifest: SpillManifest = { header, runs: [] };
    try {
      const m = JSON.parse(await readFile(manifestPath, "utf8")) as SpillManifest;
      if (m.header === header) manifest = m;
    } catch {
      // no manifest: a fresh run
    }
    if (manifest.runs.length === 0) for (const f of await readdir(dir)) await rm(join(dir, f), { force: true });
    let done = manifest.runs.reduce((a, r) => a + r.n, 0);
    // The signature file holds exactly the documents of the complete runs.
    const sigFile = await open(sigPath, "a");
    await sigFile.close();
    await truncate(sigPath, mode === "minhash" ? done * k * 4 : 0);
    const skip = done;
    let seen = 0;
    let pending: T[] = [];
    let bytes = 0;
    const flush = async () => {
      if (!pending.length) return;
      const first = done;
      const { hashes, sigs } = await prepare(pending);
      if (hashes.length !== 2 * pending.length || sigs.length !== (mode === "minhash" ? pending.length * k : 0))
        throw new TersorError("E_SHAPE", "internal: a batch's hashes or signatures have the wrong size");
      const file = `run-${String(manifest.runs.length).padStart(6, "0")}.bin`;
      await native().selectLshSpillRun(join(dir, file), sigs, hashes, pending.length, first, k, bands || 1, rows || 1);
      if (sigs.length) {
        const fh = await open(sigPath, "a");
        try {
          await fh.write(new Uint8Array(sigs.buffer, sigs.byteOffset, sigs.byteLength));
        } finally {
          await fh.close();
        }
      }
      done += pending.length;
      manifest.runs.push({ file, first, n: pending.length });
      await writeFileAtomic(manifestPath, JSON.stringify(manifest));
      pending = [];
      bytes = 0;
      o.onProgress?.(done);
    };
    for await (const d of items) {
      if (seen++ < skip) continue;
      pending.push(d);
      bytes += cost(d) + perDoc;
      if (bytes >= budget) await flush();
    }
    await flush();
    const n = done;
    if (seen !== n) throw new TersorError("E_IO", `the input changed since the interrupted run (${n} documents spilled, ${seen} read)`);
    const uf = new UnionFind(n);
    const exactTwin = new Uint8Array(n);
    let candidatePairs = 0;
    let precision = 1;
    if (n > 0) {
      const thr = o.minhash?.precisionThreshold ?? parsed.threshold ?? (bands ? Math.pow(1 / bands, 1 / rows) : 1);
      const merged = await native().selectLshMergeRuns(manifest.runs.map((r) => join(dir, r.file)), mode === "minhash" ? sigPath : "", k, thr);
      for (let p = 0; p < merged.exact.length; p += 2) {
        uf.union(merged.exact[p]!, merged.exact[p + 1]!);
        exactTwin[merged.exact[p]!] = 1;
      }
      for (let p = 0; p < merged.lsh.length; p += 2) uf.union(merged.lsh[p]!, merged.lsh[p + 1]!);
      candidatePairs = merged.lsh.length / 2;
      precision = candidatePairs ? merged.above / candidatePairs : 1;
    }
    return decide(n, uf, exactTwin, { candidatePairs, estimatedPrecision: precision, bands, rows });
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (o.workDir) await rmdir(o.workDir).catch(() => undefined);
  }
}
