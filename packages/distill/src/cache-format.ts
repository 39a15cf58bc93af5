/**
 * The teacher-logit cache's binary format, version 1 (all integers and floats little-endian).
 *
 * A cache is a directory: `manifest.json` (what was cached, how, and the list of shards) and shard
 * files `shard-NNNNN.tkdc`, each covering a fixed range of documents. A shard is:
 *
 * ```text
 * header (64 bytes)
 *   0  magic "TKDCACHE"           8 bytes
 *   8  version                    u32 = 1
 *  12  mode                       u8: 1 top-k (ids + log-probs + tail log-mass), 2 sampled (ids + importance weights)
 *  13  compression                u8: 0 none, 1 deflate (raw, RFC 1951), 2 brotli (RFC 7932)
 *  14  id width                   u8: 2 (u16 ids, 0xFFFF pads) when vocab < 65535, else 4 (i32 ids, -1 pads)
 *  15  reserved                   u8 = 0
 *  16  k                          u32 entries per position
 *  20  vocab                      u32 teacher vocabulary
 *  24  temperature                f32
 *  28  proposal temperature       f32 (sampled mode; 1 otherwise)
 *  32  seed                       f64 (an integer)
 *  40  first document            u32
 *  44  documents                 u32
 *  48  crc32 of bytes 0..48       u32
 *  52  reserved                   12 bytes = 0
 * chunks, each: chunk header (24 bytes) then its stored payload
 *   "CHNK", document u32, first position u32, positions u32, raw bytes u32, stored bytes u32
 *   raw payload: ids [positions·k] (id width each), values f32 [positions·k],
 *                and in top-k mode the tail log-mass f32 [positions]; stored = raw or compressed
 * index: one 32-byte entry per chunk, in file order
 *   document u32, first position u32, positions u32, stored bytes u32, raw bytes u32,
 *   crc32 of the stored payload u32, payload offset f64
 * footer (32 bytes)
 *   index offset f64, chunks u32, crc32 of the index u32, positions f64, magic "TKDCEND\0"
 * ```
 *
 * Position p of a document holds the teacher's distribution of the document's token p given the
 * tokens before it (the first one given the model's prefix token). Chunks hold at most
 * `chunkPositions` positions of one document, so any (document, position) is one index lookup and
 * one positioned read away. A shard missing its footer, or whose index checksum or size does not
 * match, is truncated or corrupt (`E_FORMAT`); a payload whose checksum differs is corrupt.
 * Compression: Node 20's zlib has no zstd, so deflate and brotli are offered (or none).
 * @module
 */
import { crc32 } from "node:zlib";

import { TersorError } from "@tersor/core";

export const CACHE_FORMAT_VERSION = 1;
export const SHARD_MAGIC = "TKDCACHE";
export const FOOTER_MAGIC = "TKDCEND\0";
export const CHUNK_MAGIC = "CHNK";
export const HEADER_BYTES = 64;
export const CHUNK_HEADER_BYTES = 24;
export const INDEX_ENTRY_BYTES = 32;
export const FOOTER_BYTES = 32;

export type CacheMode = "topk" | "sample";
export type CacheCompression = "none" | "deflate" | "brotli";

const MODE_CODE: Record<CacheMode, number> = { topk: 1, sample: 2 };
const COMPRESSION_CODE: Record<CacheCompression, number> = { none: 0, deflate: 1, brotli: 2 };

/** What a shard header holds. */
export interface ShardHeader {
  mode: CacheMode;
  compression: CacheCompression;
  idBytes: 2 | 4;
  k: number;
  vocab: number;
  temperature: number;
  proposalTemperature: number;
  seed: number;
  firstDoc: number;
  docCount: number;
}

/** One index entry. */
export interface ChunkEntry {
  doc: number;
  start: number;
  positions: number;
  storedBytes: number;
  rawBytes: number;
  crc: number;
  offset: number;
}

export function checksum(b: Uint8Array): number {
  return crc32(b) >>> 0;
}

export function idBytesFor(vocab: number): 2 | 4 {
  return vocab < 0xffff ? 2 : 4;
}

export function encodeHeader(h: ShardHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(SHARD_MAGIC, 0, "latin1");
  b.writeUInt32LE(CACHE_FORMAT_VERSION, 8);
  b.writeUInt8(MODE_CODE[h.mode], 12);
  b.writeUInt8(COMPRESSION_CODE[h.compression], 13);
  b.writeUInt8(h.idBytes, 14);
  b.writeUInt32LE(h.k, 16);
  b.writeUInt32LE(h.vocab, 20);
  b.writeFloatLE(h.temperature, 24);
  b.writeFloatLE(h.proposalTemperature, 28);
  b.writeDoubleLE(h.seed, 32);
  b.writeUInt32LE(h.firstDoc, 40);
  b.writeUInt32LE(h.docCount, 44);
  b.writeUInt32LE(checksum(b.subarray(0, 48)), 48);
  return b;
}

export function decodeHeader(b: Buffer, file: string): ShardHeader {
  if (b.length < HEADER_BYTES || b.toString("latin1", 0, 8) !== SHARD_MAGIC) throw new TersorError("E_FORMAT", `${file}: not a tersor teacher-cache shard (bad magic)`);
  const version = b.readUInt32LE(8);
  if (version !== CACHE_FORMAT_VERSION) throw new TersorError("E_FORMAT", `${file}: cache format version ${version} is not supported (this tersor reads version ${CACHE_FORMAT_VERSION})`);
  if (checksum(b.subarray(0, 48)) !== b.readUInt32LE(48)) throw new TersorError("E_FORMAT", `${file}: header checksum mismatch (corrupt shard)`);
  const mode = (Object.keys(MODE_CODE) as CacheMode[]).find((m) => MODE_CODE[m] === b.readUInt8(12));
  const compression = (Object.keys(COMPRESSION_CODE) as CacheCompression[]).find((c) => COMPRESSION_CODE[c] === b.readUInt8(13));
  const idBytes = b.readUInt8(14);
  if (!mode || !compression || (idBytes !== 2 && idBytes !== 4)) throw new TersorError("E_FORMAT", `${file}: unknown mode, compression or id width in the header`);
  return {
    mode,
    compression,
    idBytes,
    k: b.readUInt32LE(16),
    vocab: b.readUInt32LE(20),
    temperature: b.readFloatLE(24),
    proposalTemperature: b.readFloatLE(28),
    seed: b.readDoubleLE(32),
    firstDoc: b.readUInt32LE(40),
    docCount: b.readUInt32LE(44),
  };
}

export function encodeChunkHeader(e: Omit<ChunkEntry, "crc" | "offset">): Buffer {
  const b = Buffer.alloc(CHUNK_HEADER_BYTES);
  b.write(CHUNK_MAGIC, 0, "latin1");
  b.writeUInt32LE(e.doc, 4);
  b.writeUInt32LE(e.start, 8);
  b.writeUInt32LE(e.positions, 12);
  b.writeUInt32LE(e.rawBytes, 16);
  b.writeUInt32LE(e.storedBytes, 20);
  return b;
}

export function encodeIndex(entries: readonly ChunkEntry[]): Buffer {
  const b = Buffer.alloc(entries.length * INDEX_ENTRY_BYTES);
  entries.forEach((e, i) => {
    const o = i * INDEX_ENTRY_BYTES;
    b.writeUInt32LE(e.doc, o);
    b.writeUInt32LE(e.start, o + 4);
    b.writeUInt32LE(e.positions, o + 8);
    b.writeUInt32LE(e.storedBytes, o + 12);
    b.writeUInt32LE(e.rawBytes, o + 16);
    b.writeUInt32LE(e.crc, o + 20);
    b.writeDoubleLE(e.offset, o + 24);
  });
  return b;
}

export function decodeIndex(b: Buffer): ChunkEntry[] {
  const out: ChunkEntry[] = [];
  for (let o = 0; o + INDEX_ENTRY_BYTES <= b.length; o += INDEX_ENTRY_BYTES) {
    out.push({
      doc: b.readUInt32LE(o),
      start: b.readUInt32LE(o + 4),
      positions: b.readUInt32LE(o + 8),
      storedBytes: b.readUInt32LE(o + 12),
      rawBytes: b.readUInt32LE(o + 16),
      crc: b.readUInt32LE(o + 20),
      offset: b.readDoubleLE(o + 24),
    });
  }
  return out;
}

export function encodeFooter(indexOffset: number, chunks: number, indexCrc: number, positions: number): Buffer {
  const b = Buffer.alloc(FOOTER_BYTES);
  b.writeDoubleLE(indexOffset, 0);
  b.writeUInt32LE(chunks, 8);
  b.writeUInt32LE(indexCrc, 12);
  b.writeDoubleLE(positions, 16);
  b.write(FOOTER_MAGIC, 24, "latin1");
  return b;
}

export function decodeFooter(b: Buffer): { indexOffset: number; chunks: number; indexCrc: number; positions: number } | undefined {
  if (b.length !== FOOTER_BYTES || b.toString("latin1", 24, 32) !== FOOTER_MAGIC) return undefined;
  return { indexOffset: b.readDoubleLE(0), chunks: b.readUInt32LE(8), indexCrc: b.readUInt32LE(12), positions: b.readDoubleLE(16) };
}

/** Raw payload size of `positions` positions. */
export function rawPayloadBytes(mode: CacheMode, idBytes: number, k: number, positions: number): number {
  return positions * k * (idBytes + 4) + (mode === "topk" ? positions * 4 : 0);
}

/** Serialises one chunk's ids, values (and tail) into the raw payload layout. */
export function encodePayload(mode: CacheMode, idBytes: 2 | 4, k: number, positions: number, ids: Int32Array, values: Float32Array, tail?: Float32Array): Buffer {
  const n = positions * k;
  const b = Buffer.alloc(rawPayloadBytes(mode, idBytes, k, positions));
  let o = 0;
  if (idBytes === 2) {
    for (let i = 0; i < n; i++, o += 2) b.writeUInt16LE(ids[i]! < 0 ? 0xffff : ids[i]!, o);
  } else {
    for (let i = 0; i < n; i++, o += 4) b.writeInt32LE(ids[i]!, o);
  }
  Buffer.from(values.buffer, values.byteOffset, n * 4).copy(b, o);
  o += n * 4;
  if (mode === "topk") Buffer.from(tail!.buffer, tail!.byteOffset, positions * 4).copy(b, o);
  return b;
}

/** The inverse of `encodePayload`. */
export function decodePayload(mode: CacheMode, idBytes: 2 | 4, k: number, positions: number, b: Buffer): { ids: Int32Array; values: Float32Array; tail?: Float32Array } {
  const n = positions * k;
  const ids = new Int32Array(n);
  let o = 0;
  if (idBytes === 2) {
    for (let i = 0; i < n; i++, o += 2) {
      const v = b.readUInt16LE(o);
      ids[i] = v === 0xffff ? -1 : v;
    }
  } else {
    for (let i = 0; i < n; i++, o += 4) ids[i] = b.readInt32LE(o);
  }
  const values = new Float32Array(n);
  Buffer.from(values.buffer).set(b.subarray(o, o + n * 4));
  o += n * 4;
  if (mode !== "topk") return { ids, values };
  const tail = new Float32Array(positions);
  Buffer.from(tail.buffer).set(b.subarray(o, o + positions * 4));
  return { ids, values, tail };
}
