/**
 * The teacher-logit cache: the teacher runs once over a corpus and its next-token distributions are
 * stored sparsely, so a student trains against them without the teacher in memory.
 *
 * Two modes:
 * - `topk:K` — the K most probable ids with their log-probabilities and the log of the mass left
 *   out (a `zero` or `uniform` tail when used). Biased: the student never sees the tail's shape.
 * - `sample:K` — Random-Sampling KD (Anshumann et al. 2025, "Sparse logit sampling: accelerating
 *   knowledge distillation in LLMs"): K ids drawn with replacement from the teacher (or the proposal
 *   r ∝ p^(1/τ)), stored as unique ids with importance weights (count/K)·p/r — an unbiased
 *   estimate of the teacher distribution, so the forward-KL gradient matches full KD in expectation.
 *
 * Writing streams one shard at a time through an atomic writer (temporary file + rename); a run
 * that stops leaves only whole shards, and running it again with the same options resumes after
 * them. The format is documented in cache-format.ts.
 * @module
 */
import { promisify } from "node:util";
import { type FileHandle, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { brotliCompress, brotliDecompress, deflateRaw, inflateRaw } from "node:zlib";

import { TersorError, openAtomic, progress, writeFileAtomic, type ProgressMode } from "@tersor/core";
import { native } from "@tersor/native";
import { z } from "zod";

import {
  CACHE_FORMAT_VERSION,
  CHUNK_HEADER_BYTES,
  type CacheCompression,
  type CacheMode,
  type ChunkEntry,
  FOOTER_BYTES,
  HEADER_BYTES,
  INDEX_ENTRY_BYTES,
  type ShardHeader,
  checksum,
  decodeFooter,
  decodeHeader,
  decodeIndex,
  decodePayload,
  encodeChunkHeader,
  encodeFooter,
  encodeHeader,
  encodeIndex,
  encodePayload,
  idBytesFor,
  rawPayloadBytes,
} from "./cache-format.js";

const deflateAsync = promisify(deflateRaw);
const inflateAsync = promisify(inflateRaw);
const brotliAsync = promisify(brotliCompress);
const unbrotliAsync = promisify(brotliDecompress);

/** What the cache needs of a teacher; a `Model` from @tersor/model fits. */
export interface CacheTeacher {
  readonly vocabSize: number;
  readonly maxLength: number;
  readonly prefixToken: number;
  /** Logits `[tokens, vocab]` of every position. */
  forward(tokens: Int32Array): Promise<{ data: Float32Array }>;
}

/** Documents as one concatenated token stream: document i is `tokens[starts[i] .. starts[i+1])`. */
export interface CacheDocuments {
  tokens: ArrayLike<number>;
  starts: ArrayLike<number>;
}

/** `topk:K` or `sample:K` → mode and K. */
export function parseCacheMode(spec: string): { mode: CacheMode; k: number } {
  const m = /^(topk|sample):(\d+)$/.exec(spec.trim());
  if (!m || Number(m[2]) < 1) throw new TersorError("E_RANGE", `cache mode must be topk:K or sample:K with K ≥ 1, got "${spec}"`);
  return { mode: m[1] as CacheMode, k: Number(m[2]) };
}

export const WriteCacheOptionsSchema = z.strictObject({
  /** Output directory (created; holds manifest.json and the shards). */
  dir: z.string().min(1),
  mode: z.enum(["topk", "sample"]),
  k: z.number().int().positive(),
  /** Teacher temperature the distributions are taken at. */
  temperature: z.number().finite().gt(0, "temperature must be > 0").default(1),
  /** Sampled mode: proposal r ∝ p^(1/τ); 1 samples the teacher itself. */
  proposalTemperature: z.number().finite().gt(0, "proposal temperature must be > 0").default(1),
  seed: z.number().int().nonnegative().max(2 ** 52).default(0),
  /** Node 20's zlib has no zstd: deflate (default), brotli or none. */
  compression: z.enum(["none", "deflate", "brotli"]).default("deflate"),
  /** Documents per shard (the unit of resumption). */
  shardDocs: z.number().int().positive().default(256),
  /** Most positions per chunk (the unit of random access). */
  chunkPositions: z.number().int().positive().default(2048),
  /** Token the teacher reads before each document (default: the teacher's prefix token; 257, the byte EOS, matches tersor's packed training stream). */
  prefixToken: z.number().int().nonnegative().optional(),
  /** Free-form description kept in the manifest (teacher name, data sources, …). */
  meta: z.record(z.string(), z.unknown()).default({}),
  /** Named document ranges (e.g. one per domain), kept in the manifest. */
  sections: z.array(z.strictObject({ name: z.string(), firstDoc: z.number().int().nonnegative(), docCount: z.number().int().nonnegative() })).default([]),
  progress: z.enum(["bar", "json", "silent"]).optional(),
});
export type WriteCacheOptions = z.input<typeof WriteCacheOptionsSchema>;

/** manifest.json. */
export interface CacheManifest {
  format: "tersor-teacher-cache";
  version: number;
  mode: CacheMode;
  k: number;
  vocab: number;
  temperature: number;
  proposalTemperature: number;
  seed: number;
  prefixToken: number;
  compression: CacheCompression;
  shardDocs: number;
  chunkPositions: number;
  documents: number;
  /** Token positions in the documents (one distribution each). */
  positions: number;
  meta: Record<string, unknown>;
  sections: { name: string; firstDoc: number; docCount: number }[];
  complete: boolean;
  shards: { file: string; firstDoc: number; docCount: number; positions: number; bytes: number }[];
  /** Bytes on disk per cached position (shards only), and of the uncompressed payload. */
  bytesPerToken?: number;
  rawBytesPerToken?: number;
}

/** What the manifest's parameters must agree on for a resume. */
function paramsOf(m: Pick<CacheManifest, "mode" | "k" | "vocab" | "temperature" | "proposalTemperature" | "seed" | "prefixToken" | "compression" | "shardDocs" | "chunkPositions" | "documents" | "positions">) {
  return { mode: m.mode, k: m.k, vocab: m.vocab, temperature: m.temperature, proposalTemperature: m.proposalTemperature, seed: m.seed, prefixToken: m.prefixToken, compression: m.compression, shardDocs: m.shardDocs, chunkPositions: m.chunkPositions, documents: m.documents, positions: m.positions };
}

const f32 = (x: number) => Math.fround(x);

async function compress(c: CacheCompression, b: Buffer): Promise<Buffer> {
  if (c === "deflate") return deflateAsync(b);
  if (c === "brotli") return brotliAsync(b);
  return b;
}
async function decompress(c: CacheCompression, b: Buffer): Promise<Buffer> {
  if (c === "deflate") return inflateAsync(b);
  if (c === "brotli") return unbrotliAsync(b);
  return b;
}

function shardName(i: number): string {
  return `shard-${String(i).padStart(5, "0")}.tkdc`;
}

async function readManifest(dir: string): Promise<CacheManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, "manifest.json"), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TersorError("E_IO", `${dir}/manifest.json: ${(e as Error).message}`, { cause: e });
  }
  let m: CacheManifest;
  try {
    m = JSON.parse(text) as CacheManifest;
  } catch (e) {
    throw new TersorError("E_FORMAT", `${dir}/manifest.json is not valid JSON: ${(e as Error).message}`);
  }
  if (m.format !== "tersor-teacher-cache") throw new TersorError("E_FORMAT", `${dir}/manifest.json is not a tersor teacher-cache manifest`);
  if (m.version !== CACHE_FORMAT_VERSION) throw new TersorError("E_FORMAT", `${dir}: cache format version ${m.version} is not supported (this tersor reads version ${CACHE_FORMAT_VERSION})`);
  return m;
}

/** An opened shard: header, index, and a handle for positioned reads. */
interface OpenShard {
  file: string;
  header: ShardHeader;
  entries: ChunkEntry[];
  positions: number;
  bytes: number;
  fh: FileHandle;
}

/** Opens and checks a shard (header, footer, index checksum, size). Truncated or corrupt → `E_FORMAT`. */
async function openShard(file: string): Promise<OpenShard> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (e) {
    throw new TersorError("E_IO", `${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    if (size < HEADER_BYTES + FOOTER_BYTES) throw new TersorError("E_FORMAT", `${file}: truncated cache shard (${size} bytes, no room for a header and a footer)`);
    const hb = Buffer.alloc(HEADER_BYTES);
    await fh.read(hb, 0, HEADER_BYTES, 0);
    const header = decodeHeader(hb, file);
    const fb = Buffer.alloc(FOOTER_BYTES);
    await fh.read(fb, 0, FOOTER_BYTES, size - FOOTER_BYTES);
    const footer = decodeFooter(fb);
    if (!footer) throw new TersorError("E_FORMAT", `${file}: truncated cache shard (no footer: the index checksum cannot be verified)`);
    const indexBytes = footer.chunks * INDEX_ENTRY_BYTES;
    if (footer.indexOffset + indexBytes + FOOTER_BYTES !== size) throw new TersorError("E_FORMAT", `${file}: truncated or corrupt cache shard (index at ${footer.indexOffset} of ${indexBytes} bytes does not end at the footer; file is ${size} bytes)`);
    const ib = Buffer.alloc(indexBytes);
    await fh.read(ib, 0, indexBytes, footer.indexOffset);
    if (checksum(ib) !== footer.indexCrc) throw new TersorError("E_FORMAT", `${file}: index checksum mismatch (truncated or corrupt cache shard)`);
    const entries = decodeIndex(ib);
    let positions = 0;
    for (const e of entries) {
      if (e.offset + e.storedBytes > footer.indexOffset) throw new TersorError("E_FORMAT", `${file}: chunk of document ${e.doc} lies past the index (corrupt shard)`);
      positions += e.positions;
    }
    return { file, header, entries, positions, bytes: size, fh };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Per-position teacher targets of one document range. */
export interface CacheSlice {
  mode: CacheMode;
  k: number;
  /** `[positions, k]` ids (`-1` pads). */
  ids: Int32Array;
  /** `[positions, k]` log-probabilities (topk) or importance weights (sample). */
  values: Float32Array;
  /** topk: `[positions]` log of the mass outside the k ids. */
  tailLogMass?: Float32Array;
}

/** Summary of a written cache. */
export interface CacheSummary {
  dir: string;
  manifest: CacheManifest;
  /** Shards written by this call (the others were already complete). */
  shardsWritten: number;
  shardsSkipped: number;
}

/**
 * Runs `teacher` over `docs` and writes the cache to `options.dir` (see the module comment).
 * Teacher-side positions: the model reads `[prefix] ++ doc[0 .. n−1)` and position p stores its
 * distribution of `doc[p]`; documents longer than the context are read in windows that keep half a
 * context of history. Resumes an interrupted cache with the same options; other options over an
 * existing cache → `E_RANGE`.
 */
export async function writeTeacherCache(teacher: CacheTeacher, docs: CacheDocuments, options: WriteCacheOptions): Promise<CacheSummary> {
  const parsed = WriteCacheOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `invalid cache options: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  const V = teacher.vocabSize;
  if (o.k > V) throw new TersorError("E_RANGE", `k = ${o.k} exceeds the teacher's vocabulary of ${V}`);
  const nDocs = docs.starts.length - 1;
  if (nDocs < 1) throw new TersorError("E_RANGE", "the cache needs at least one document");
  for (let i = 0; i < docs.tokens.length; i++) {
    const t = docs.tokens[i]!;
    if (!(t >= 0 && t < V)) throw new TersorError("E_RANGE", `document token ${t} at stream offset ${i} is not an id of the teacher's vocabulary [0, ${V})`);
  }
  const totalPositions = docs.starts[nDocs]! - docs.starts[0]!;
  const prefix = o.prefixToken ?? teacher.prefixToken;
  if (!(prefix >= 0 && prefix < V)) throw new TersorError("E_RANGE", `prefix token ${prefix} is not in the teacher's vocabulary [0, ${V})`);
  const idBytes = idBytesFor(V);
  const base: CacheManifest = {
    format: "tersor-teacher-cache",
    version: CACHE_FORMAT_VERSION,
    mode: o.mode,
    k: o.k,
    vocab: V,
    temperature: f32(o.temperature),
    proposalTemperature: f32(o.mode === "sample" ? o.proposalTemperature : 1),
    seed: o.seed,
    prefixToken: prefix,
    compression: o.compression,
    shardDocs: o.shardDocs,
    chunkPositions: o.chunkPositions,
    documents: nDocs,
    positions: totalPositions,
    meta: o.meta,
    sections: o.sections,
    complete: false,
    shards: [],
  };
  const existing = await readManifest(o.dir);
  if (existing) {
    const a = paramsOf(existing);
    const b = paramsOf(base);
    const diff = (Object.keys(a) as (keyof typeof a)[]).filter((key) => a[key] !== b[key]);
    if (diff.length > 0) {
      throw new TersorError("E_RANGE", `${o.dir} holds a cache written with other options (${diff.map((key) => `${key}: ${String(a[key])} there, ${String(b[key])} now`).join("; ")}); use another directory`);
    }
  }
  if (!existing || existing.complete) await writeFileAtomic(join(o.dir, "manifest.json"), JSON.stringify(base, null, 2) + "\n");

  const bar = progress({ label: "distill cache", total: totalPositions, unit: "tokens", ...(o.progress ? { mode: o.progress as ProgressMode } : {}) });
  const nShards = Math.ceil(nDocs / o.shardDocs);
  const shards: CacheManifest["shards"] = [];
  let written = 0;
  let skipped = 0;
  let rawTotal = 0;
  try {
    for (let s = 0; s < nShards; s++) {
      const firstDoc = s * o.shardDocs;
      const docCount = Math.min(o.shardDocs, nDocs - firstDoc);
      const file = join(o.dir, shardName(s));
      const header: ShardHeader = { mode: o.mode, compression: o.compression, idBytes, k: o.k, vocab: V, temperature: base.temperature, proposalTemperature: base.proposalTemperature, seed: o.seed, firstDoc, docCount };
      const done = await reuseShard(file, header);
      if (done) {
        shards.push({ file: shardName(s), firstDoc, docCount, positions: done.positions, bytes: done.bytes });
        rawTotal += rawPayloadBytes(o.mode, idBytes, o.k, done.positions);
        bar.tick(done.positions);
        skipped++;
        continue;
      }
      const w = await openAtomic(file);
      try {
        await w.write(encodeHeader(header));
        const entries: ChunkEntry[] = [];
        let offset = HEADER_BYTES;
        let positions = 0;
        for (let d = firstDoc; d < firstDoc + docCount; d++) {
          const begin = docs.starts[d]!;
          const n = docs.starts[d + 1]! - begin;
          const toks = Int32Array.from({ length: n }, (_, i) => docs.tokens[begin + i]!);
          const doc = await sparsifyDocument(teacher, toks, o, begin, prefix);
          for (let c = 0; c < n; c += o.chunkPositions) {
            const m = Math.min(o.chunkPositions, n - c);
            const raw = encodePayload(o.mode, idBytes, o.k, m, doc.ids.subarray(c * o.k, (c + m) * o.k), doc.values.subarray(c * o.k, (c + m) * o.k), doc.tail?.subarray(c, c + m));
            const stored = await compress(o.compression, raw);
            const entry = { doc: d, start: c, positions: m, rawBytes: raw.length, storedBytes: stored.length };
            await w.write(encodeChunkHeader(entry));
            offset += CHUNK_HEADER_BYTES;
            await w.write(stored);
            entries.push({ ...entry, crc: checksum(stored), offset });
            offset += stored.length;
          }
          positions += n;
          bar.tick(n);
        }
        const index = encodeIndex(entries);
        await w.write(index);
        await w.write(encodeFooter(offset, entries.length, checksum(index), positions));
        await w.commit();
        shards.push({ file: shardName(s), firstDoc, docCount, positions, bytes: offset + index.length + FOOTER_BYTES });
        rawTotal += rawPayloadBytes(o.mode, idBytes, o.k, positions);
        written++;
      } catch (e) {
        await w.abort();
        throw e;
      }
    }
  } finally {
    bar.stop();
  }
  const bytes = shards.reduce((a, s) => a + s.bytes, 0);
  const manifest: CacheManifest = { ...base, complete: true, shards, bytesPerToken: totalPositions > 0 ? bytes / totalPositions : 0, rawBytesPerToken: totalPositions > 0 ? rawTotal / totalPositions : 0 };
  await writeFileAtomic(join(o.dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return { dir: o.dir, manifest, shardsWritten: written, shardsSkipped: skipped };
}

/** A complete shard with the expected header is kept on resume; anything else is rewritten. */
async function reuseShard(file: string, want: ShardHeader): Promise<{ positions: number; bytes: number } | undefined> {
  try {
    await stat(file);
  } catch {
    return undefined;
  }
  let s: OpenShard;
  try {
    s = await openShard(file);
  } catch {
    return undefined;
  }
  await s.fh.close();
  const h = s.header;
  const same = (Object.keys(want) as (keyof ShardHeader)[]).every((key) => h[key] === want[key]);
  return same ? { positions: s.positions, bytes: s.bytes } : undefined;
}

/** Teacher distributions of one document, sparsified: `[n, k]` ids and values (and `[n]` tail). */
async function sparsifyDocument(teacher: CacheTeacher, toks: Int32Array, o: z.output<typeof WriteCacheOptionsSchema>, streamOffset: number, prefix: number): Promise<{ ids: Int32Array; values: Float32Array; tail?: Float32Array }> {
  const n = toks.length;
  const V = teacher.vocabSize;
  const k = o.k;
  const ids = new Int32Array(n * k);
  const values = new Float32Array(n * k);
  const tail = o.mode === "topk" ? new Float32Array(n) : undefined;
  const W = teacher.maxLength;
  if (W < 2) throw new TersorError("E_RANGE", `the teacher's context length ${W} is too short to cache`);
  const C = Math.floor(W / 2);
  const run = async (input: Int32Array, fromRow: number, a: number, b: number) => {
    const logits = (await teacher.forward(input)).data;
    const rows = logits.subarray(fromRow * V, (fromRow + (b - a)) * V);
    if (o.mode === "topk") {
      const r = await native().distillTopK(rows, b - a, V, k, o.temperature);
      ids.set(r.ids, a * k);
      values.set(r.logprobs, a * k);
      tail!.set(r.tailLogMass, a);
    } else {
      const r = await native().distillSample(rows, b - a, V, k, o.temperature, o.proposalTemperature, o.seed, streamOffset + a);
      ids.set(r.ids, a * k);
      values.set(r.weights, a * k);
    }
  };
  // First window: the prefix token then doc[0 .. len−1); row i predicts doc[i].
  const first = Math.min(n, W);
  const input = new Int32Array(first);
  input[0] = prefix;
  input.set(toks.subarray(0, first - 1), 1);
  await run(input, 0, 0, first);
  // Later windows: C tokens of history, rows C.. predict doc[a .. b).
  for (let a = first; a < n; ) {
    const b = Math.min(n, a + W - C);
    await run(toks.slice(a - C - 1, b - 1), C, a, b);
    a = b;
  }
  return tail ? { ids, values, tail } : { ids, values };
}

/** A complete cache opened for random access by (document, position). */
export class TeacherCache {
  private readonly byDoc: Map<number, { shard: OpenShard; entries: ChunkEntry[] }>;
  private readonly lru = new Map<string, { ids: Int32Array; values: Float32Array; tail?: Float32Array }>();
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly manifest: CacheManifest,
    private readonly shards: OpenShard[],
  ) {
    this.byDoc = new Map();
    for (const s of shards) {
      for (const e of s.entries) {
        let d = this.byDoc.get(e.doc);
        if (!d) this.byDoc.set(e.doc, (d = { shard: s, entries: [] }));
        d.entries.push(e);
      }
    }
    for (const d of this.byDoc.values()) d.entries.sort((a, b) => a.start - b.start);
  }

  /** Opens `dir`: an incomplete cache, a truncated shard or a checksum mismatch → `E_FORMAT`. */
  static async open(dir: string): Promise<TeacherCache> {
    const m = await readManifest(dir);
    if (!m) throw new TersorError("E_IO", `${dir} holds no teacher cache (no manifest.json)`);
    if (!m.complete) throw new TersorError("E_FORMAT", `${dir}: the cache is incomplete (its writer stopped); run \`tersor distill cache\` again with the same options to resume it`);
    const shards: OpenShard[] = [];
    try {
      for (const s of m.shards) {
        const sh = await openShard(join(dir, s.file));
        shards.push(sh);
        if (sh.positions !== s.positions) throw new TersorError("E_FORMAT", `${join(dir, s.file)}: holds ${sh.positions} positions, the manifest says ${s.positions}`);
      }
    } catch (e) {
      for (const s of shards) await s.fh.close();
      throw e;
    }
    return new TeacherCache(dir, m, shards);
  }

  get mode(): CacheMode {
    return this.manifest.mode;
  }
  get k(): number {
    return this.manifest.k;
  }
  get vocab(): number {
    return this.manifest.vocab;
  }
  get documents(): number {
    return this.manifest.documents;
  }

  /** Positions cached for document `doc`. */
  positionsOf(doc: number): number {
    const d = this.byDoc.get(doc);
    if (!d) return 0;
    const last = d.entries[d.entries.length - 1]!;
    return last.start + last.positions;
  }

  private async chunk(shard: OpenShard, e: ChunkEntry) {
    const key = `${e.doc}:${e.start}`;
    const hit = this.lru.get(key);
    if (hit) {
      this.lru.delete(key);
      this.lru.set(key, hit);
      return hit;
    }
    const stored = Buffer.alloc(e.storedBytes);
    const { bytesRead } = await shard.fh.read(stored, 0, e.storedBytes, e.offset);
    if (bytesRead !== e.storedBytes) throw new TersorError("E_FORMAT", `${shard.file}: truncated chunk of document ${e.doc}`);
    if (checksum(stored) !== e.crc) throw new TersorError("E_FORMAT", `${shard.file}: checksum mismatch in the chunk of document ${e.doc} at position ${e.start} (corrupt shard)`);
    let raw: Buffer;
    try {
      raw = await decompress(shard.header.compression, stored);
    } catch (err) {
      throw new TersorError("E_FORMAT", `${shard.file}: cannot decompress the chunk of document ${e.doc}: ${(err as Error).message}`);
    }
    if (raw.length !== e.rawBytes) throw new TersorError("E_FORMAT", `${shard.file}: chunk of document ${e.doc} decompresses to ${raw.length} bytes, expected ${e.rawBytes}`);
    const out = decodePayload(shard.header.mode, shard.header.idBytes, shard.header.k, e.positions, raw);
    this.lru.set(key, out);
    if (this.lru.size > 64) this.lru.delete(this.lru.keys().next().value!);
    return out;
  }

  /** Targets of positions `[start, start + count)` of document `doc`. Out of range → `E_RANGE`. */
  async read(doc: number, start: number, count: number): Promise<CacheSlice> {
    if (this.closed) throw new TersorError("E_IO", `${this.dir}: the cache is closed`);
    const d = this.byDoc.get(doc);
    const have = this.positionsOf(doc);
    if (!d || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > have) {
      throw new TersorError("E_RANGE", `${this.dir}: positions [${start}, ${start + count}) of document ${doc} are not in the cache (it holds ${this.documents} documents; this one has ${have} positions)`);
    }
    const k = this.k;
    const ids = new Int32Array(count * k);
    const values = new Float32Array(count * k);
    const tail = this.mode === "topk" ? new Float32Array(count) : undefined;
    for (const e of d.entries) {
      const lo = Math.max(start, e.start);
      const hi = Math.min(start + count, e.start + e.positions);
      if (lo >= hi) continue;
      const c = await this.chunk(d.shard, e);
      ids.set(c.ids.subarray((lo - e.start) * k, (hi - e.start) * k), (lo - start) * k);
      values.set(c.values.subarray((lo - e.start) * k, (hi - e.start) * k), (lo - start) * k);
      if (tail) tail.set(c.tail!.subarray(lo - e.start, hi - e.start), lo - start);
    }
    return tail ? { mode: this.mode, k, ids, values, tailLogMass: tail } : { mode: this.mode, k, ids, values };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.shards) await s.fh.close();
  }
}
