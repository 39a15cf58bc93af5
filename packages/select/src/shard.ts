/**
 * Sharded selection (`tersor select --shard i/N` then `tersor select merge`): each shard computes
 * what depends on its own documents only, the merge does the global decision, so the merged
 * result equals one process over the whole input.
 *
 * - random: the per-document key `1 − u(seed, id)` (xxHash64 of the id), global top-k.
 * - stratified: the id and domain; the merge computes the per-domain quotas and the seeded keys.
 * - DSIR (Xie et al. 2023): the shard's summed raw feature counts and each document's hashed
 *   feature sequence; the merge sums the counts (integers: exact), fits the raw and target models,
 *   computes the log-importance weights in the native order and draws the Gumbel top-k with noise
 *   that is a function of (seed, id).
 * - ZIP-FIT: each document's alignment (mean NCD to the target, per document): global top-k.
 * - gopher: per-document rule decisions; the merge keeps those that pass.
 * - perplexity: each document's perplexity under the model and its ranking score (low
 *   perplexity, or closeness to the target's median perplexity, which every shard computes from
 *   the same target): global top-k.
 *
 * Methods that need the whole pool at once (RS2's permutation schedule, set functions, k-center,
 * QUESTS, GIO, RDS+, NovelSelect) refuse `--shard` with a clear error.
 */
import { readFile } from "node:fs/promises";

import { TersorError } from "@tersor/core";
import { native } from "@tersor/native";

import { gopherFilter } from "./filters.js";
import { type SelectDoc, resolveBudget, writeJsonlAtomic } from "./io.js";
import type { SelectMethod, SelectResult } from "./run.js";
import { DEFAULT_SELECT_MODEL, openSelectModel, perplexities } from "./model.js";
import { dsirCounts, dsirModelFromCounts, gumbelTopK, idUniform, selectStratified, topK, zipfitScores } from "./selectors.js";

export const SHARDABLE_METHODS = ["random", "stratified", "dsir", "zipfit", "gopher", "perplexity"] as const;
export type ShardableMethod = (typeof SHARDABLE_METHODS)[number];

export interface SelectShardHeader {
  format: "tersor-select-shard/1";
  method: ShardableMethod;
  seed: number;
  level: number;
  /** perplexity: the model, tokens per document and the keep rule. */
  perplexity?: { model: string; maxTokens: number; keep: "low" | "target" };
  /** DSIR: buckets, n-gram order, this shard's summed raw counts and the target's counts. */
  dsir?: { numBuckets: number; ngrams: number; rawCounts: number[]; targetCounts: number[] };
}

export interface SelectShardRow {
  index: number;
  id: string;
  domain?: string;
  /** Ranking score (null in the file for −∞). */
  score?: number | null;
  /** perplexity: the document's perplexity (null in the file for NaN). */
  value?: number | null;
  /** gopher: passes all rules; reason lists the failed rules. */
  keep?: boolean;
  reason?: string;
  /** DSIR: the document's feature buckets in featuriser order, base64 of little-endian uint32. */
  features?: string;
}

export interface SelectShard {
  header: SelectShardHeader;
  rows: SelectShardRow[];
}

export function isShardable(method: SelectMethod): method is ShardableMethod {
  return (SHARDABLE_METHODS as readonly string[]).includes(method);
}

function refuse(method: string): never {
  throw new TersorError(
    "E_RANGE",
    `--shard is not supported for --method ${method}: it needs the whole pool at once; shardable methods: ${SHARDABLE_METHODS.join(", ")}`,
  );
}

/** One shard's per-document data for {@link mergeSelectShards}. */
export async function selectShard(
  docs: readonly SelectDoc[],
  target: readonly string[] | null,
  options: {
    method: SelectMethod;
    seed?: number;
    level?: number;
    numBuckets?: number;
    ngrams?: number;
    /** perplexity: model (default ref-small), tokens per document (default 256), keep rule (default "low"). */
    model?: string;
    maxTokens?: number;
    perplexityKeep?: "low" | "target";
  },
): Promise<SelectShard> {
  const method = options.method;
  if (!isShardable(method)) refuse(method);
  const seed = options.seed ?? 0;
  const level = options.level ?? 9;
  const header: SelectShardHeader = { format: "tersor-select-shard/1", method, seed, level };
  const texts = docs.map((d) => d.text);
  const base = docs.map((d) => ({ index: d.index, id: d.id }));
  if ((method === "dsir" || method === "zipfit") && (!target || target.length === 0))
    throw new TersorError("E_RANGE", target ? "the target is empty" : `--method ${method} needs --target`);
  switch (method) {
    case "random":
      return { header, rows: base.map((r) => ({ ...r, score: 1 - idUniform(r.id, seed) })) };
    case "stratified":
      return { header, rows: docs.map((d) => ({ index: d.index, id: d.id, domain: d.domain })) };
    case "zipfit": {
      const s = texts.length ? await zipfitScores(texts, target!, level) : new Float64Array(0);
      return { header, rows: base.map((r, i) => ({ ...r, score: s[i]! })) };
    }
    case "perplexity": {
      const keep = options.perplexityKeep ?? "low";
      if (keep !== "low" && keep !== "target") throw new TersorError("E_RANGE", `--perplexity-keep must be low or target, got "${String(keep)}"`);
      const maxTokens = options.maxTokens ?? 256;
      if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new TersorError("E_RANGE", `maxTokens must be an integer >= 2, got ${maxTokens}`);
      const name = options.model ?? DEFAULT_SELECT_MODEL;
      header.perplexity = { model: name, maxTokens, keep };
      const model = await openSelectModel(name);
      const ppl = await perplexities(model, texts, maxTokens);
      let score = Array.from(ppl, (p) => (Number.isFinite(p) ? -p : -Infinity));
      if (keep === "target") {
        if (!target || target.length === 0) throw new TersorError("E_RANGE", "--perplexity-keep target needs a non-empty --target");
        const tp = Array.from(await perplexities(model, target, maxTokens)).filter(Number.isFinite).sort((a, b) => a - b);
        const med = tp[Math.floor(tp.length / 2)]!;
        score = Array.from(ppl, (p) => (Number.isFinite(p) ? -Math.abs(Math.log(p) - Math.log(med)) : -Infinity));
      }
      return { header, rows: base.map((r, i) => ({ ...r, score: score[i]!, value: ppl[i]! })) };
    }
    case "gopher": {
      const g = gopherFilter(texts);
      return { header, rows: base.map((r, i) => ({ ...r, keep: g.keep[i]!, reason: g.reasons[i]!.join(",") })) };
    }
    case "dsir": {
      const numBuckets = options.numBuckets ?? 10000;
      const ngrams = options.ngrams ?? 2;
      header.dsir = {
        numBuckets,
        ngrams,
        rawCounts: Array.from(await dsirCounts(texts, numBuckets, ngrams)),
        targetCounts: Array.from(await dsirCounts(target!, numBuckets, ngrams)),
      };
      return {
        header,
        rows: base.map((r, i) => {
          const f = native().selectDsirFeatures(texts[i]!, numBuckets, ngrams);
          return { ...r, features: Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("base64") };
        }),
      };
    }
  }
}

export async function writeSelectShard(path: string, shard: SelectShard): Promise<void> {
  await writeJsonlAtomic(path, [shard.header, ...shard.rows]);
}

export async function readSelectShard(path: string): Promise<SelectShard> {
  let lines: string[];
  try {
    lines = (await readFile(path, "utf8")).split("\n").filter((l) => l.trim());
  } catch (e) {
    throw new TersorError("E_IO", `cannot read ${path}: ${(e as Error).message}`);
  }
  const parse = (l: string, n: number) => {
    try {
      return JSON.parse(l) as unknown;
    } catch (e) {
      throw new TersorError("E_FORMAT", `${path}:${n}: ${(e as Error).message}`);
    }
  };
  const header = lines.length ? (parse(lines[0]!, 1) as SelectShardHeader) : null;
  if (!header || header.format !== "tersor-select-shard/1") throw new TersorError("E_FORMAT", `${path}: not a select shard file (write one with tersor select --shard i/N --scores <path>)`);
  return { header, rows: lines.slice(1).map((l, i) => parse(l, i + 2) as SelectShardRow) };
}

/**
 * Joins shards and makes the global selection. Returns the documents in input order (position,
 * id) and the result, with the same kept set, scores and reasons as {@link runSelect} on the whole
 * input.
 */
export function mergeSelectShards(shards: readonly SelectShard[], budget?: string | number): { docs: { index: number; id: string }[]; result: SelectResult } {
  if (shards.length === 0) throw new TersorError("E_RANGE", "no shards to merge");
  const h0 = shards[0]!.header;
  const same = (h: SelectShardHeader) =>
    h.method === h0.method &&
    h.seed === h0.seed &&
    h.level === h0.level &&
    (h.dsir?.numBuckets ?? 0) === (h0.dsir?.numBuckets ?? 0) &&
    (h.dsir?.ngrams ?? 0) === (h0.dsir?.ngrams ?? 0) &&
    JSON.stringify(h.perplexity ?? null) === JSON.stringify(h0.perplexity ?? null);
  for (const s of shards) if (!same(s.header)) throw new TersorError("E_RANGE", "the shards were made with different methods or options");
  const rows = shards.flatMap((s) => s.rows).sort((a, b) => a.index - b.index);
  for (let i = 1; i < rows.length; i++) if (rows[i]!.index === rows[i - 1]!.index) throw new TersorError("E_RANGE", `document ${rows[i]!.index} appears in two shards`);
  const n = rows.length;
  if (n === 0) throw new TersorError("E_RANGE", "the shards hold no documents");
  const docs = rows.map((r) => ({ index: r.index, id: r.id }));
  const ids = rows.map((r) => r.id);
  const method = h0.method;
  const mark = (kept: number[], scores: (number | null)[], why: string, details: Record<string, unknown> = {}): { docs: typeof docs; result: SelectResult } => {
    const set = new Set(kept);
    return { docs, result: { method, kept: [...kept].sort((a, b) => a - b), scores, reasons: rows.map((_, i) => (set.has(i) ? why : "not selected")), details } };
  };
  if (method === "gopher") {
    const kept = rows.flatMap((r, i) => (r.keep ? [i] : []));
    const counts: Record<string, number> = {};
    for (const r of rows) for (const rule of r.reason ? r.reason.split(",") : []) counts[rule] = (counts[rule] ?? 0) + 1;
    return {
      docs,
      result: { method, kept, scores: rows.map((r) => -(r.reason ? r.reason.split(",").length : 0)), reasons: rows.map((r) => r.reason || "passes"), details: { ruleCounts: counts } },
    };
  }
  if (budget === undefined) throw new TersorError("E_RANGE", `merging --method ${method} needs --budget`);
  const k = resolveBudget(budget, n);
  const scores = () =>
    rows.map((r) => {
      if (r.score === null) return -Infinity; // JSON has no -Infinity
      if (typeof r.score !== "number") throw new TersorError("E_FORMAT", `document ${r.index} has no score in its shard`);
      return r.score;
    });
  switch (method) {
    case "random": {
      const s = scores();
      return mark(topK(s, k), s, `random (seed ${h0.seed})`);
    }
    case "zipfit": {
      const s = scores();
      return mark(topK(s, k), s, "ZIP-FIT alignment top-k");
    }
    case "perplexity": {
      const s = scores();
      return mark(topK(s, k), rows.map((r) => (typeof r.value === "number" ? r.value : NaN)), `perplexity (${h0.perplexity?.keep ?? "low"})`);
    }
    case "stratified": {
      const r = selectStratified(ids, rows.map((x) => x.domain ?? ""), k, h0.seed);
      return mark(r.indices, rows.map(() => null), "stratified by domain", { quota: r.quota });
    }
    case "dsir": {
      const d = h0.dsir;
      if (!d) throw new TersorError("E_FORMAT", "a DSIR shard without its counts");
      const raw = new Float64Array(d.numBuckets);
      for (const s of shards) {
        const c = s.header.dsir!;
        if (JSON.stringify(c.targetCounts) !== JSON.stringify(d.targetCounts)) throw new TersorError("E_RANGE", "the DSIR shards were made with different targets");
        c.rawCounts.forEach((v, b) => (raw[b]! += v));
      }
      const model = dsirModelFromCounts(raw, Float64Array.from(d.targetCounts), d.ngrams);
      // The native featuriser's order and left-to-right sum: bit-identical to dsirLogWeights.
      const w = rows.map((r) => {
        const buf = Buffer.from(r.features ?? "", "base64");
        const f = new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
        let s = 0;
        for (const b of f) {
          if (b >= d.numBuckets) throw new TersorError("E_FORMAT", `document ${r.index}: feature bucket ${b} out of range`);
          s += model.logDiff[b]!;
        }
        return s;
      });
      return mark(gumbelTopK(w, k, h0.seed, ids), w, "DSIR importance (Gumbel top-k)");
    }
  }
}
