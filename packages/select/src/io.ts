/**
 * Input and output of the selection commands: JSONL (gzip ok) and Parquet files, globs of them,
 * or `corpus:<name>[:split]` from `@tersor/corpora`; `--text-field` / `--id-field`; sharding
 * (`i/N` keeps the documents whose input position is ≡ i mod N); outputs in input order through
 * atomic writers (never a half-written file).
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { TersorError, openAtomic, readJsonl, readParquet, writeParquet } from "@tersor/core";
import { checkSplit, corpus } from "@tersor/corpora";
import { z } from "zod";

/** One input document: its position in the whole input, id, text, domain and the raw record. */
export interface SelectDoc {
  /** 0-based position in the whole (unsharded) input. */
  index: number;
  id: string;
  text: string;
  /** The record's `domain` (or corpus domain, or `meta.label` for email), "" when absent. */
  domain: string;
  /** The input record as read (written back unchanged for kept documents). */
  record: Record<string, unknown>;
}

export const ReadOptionsSchema = z.object({
  textField: z.string().min(1).default("text"),
  idField: z.string().min(1).default("id"),
  domainField: z.string().min(1).default("domain"),
  onBadLine: z.enum(["skip", "error"]).default("error"),
  shard: z.object({ index: z.number().int().min(0), count: z.number().int().min(1) }).optional(),
  /** Called for each skipped bad line. */
  onSkip: z.custom<(line: number, reason: string) => void>((v) => typeof v === "function").optional(),
});
export type ReadOptions = z.input<typeof ReadOptionsSchema>;

/** Parses `i/N` (0 ≤ i < N). */
export function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (!m) throw new TersorError("E_RANGE", `--shard must look like i/N (e.g. 0/4), got "${s}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new TersorError("E_RANGE", `--shard ${s}: need 0 <= i < N`);
  return { index, count };
}

/** Parses a budget: `10%` of the corpus or a count `N`. Errors when larger than the corpus. */
export function resolveBudget(budget: string | number, n: number): number {
  let k: number;
  if (typeof budget === "number") k = budget;
  else {
    const s = budget.trim();
    if (s.endsWith("%")) {
      const p = Number(s.slice(0, -1));
      if (!Number.isFinite(p) || p <= 0 || p > 100) throw new TersorError("E_RANGE", `budget percentage must be in (0, 100], got "${budget}"`);
      return Math.max(1, Math.round((p / 100) * n));
    }
    k = Number(s);
  }
  if (!Number.isInteger(k) || k < 1) throw new TersorError("E_RANGE", `budget must be a positive integer or a percentage, got "${budget}"`);
  if (k > n) throw new TersorError("E_RANGE", `budget ${k} is larger than the corpus (${n} documents)`);
  return k;
}

function globToRegExp(g: string): RegExp {
  let re = "";
  for (const c of g) re += c === "*" ? "[^/]*" : c === "?" ? "[^/]" : /[.+^${}()|[\]\\]/.test(c) ? "\\" + c : c;
  return new RegExp(`^${re}$`);
}

/** Expands an input spec into file paths (a glob in the last path component), sorted. */
export async function expandInput(spec: string): Promise<string[]> {
  if (!/[*?]/.test(spec)) return [spec];
  const dir = dirname(spec);
  if (/[*?]/.test(dir)) throw new TersorError("E_RANGE", `globs are supported in the file name only, got "${spec}"`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new TersorError("E_IO", `cannot list ${dir}: ${(e as Error).message}`);
  }
  const re = globToRegExp(basename(spec));
  const files = names.filter((n) => re.test(n)).sort().map((n) => join(dir, n));
  if (files.length === 0) throw new TersorError("E_IO", `no files match ${spec}`);
  return files;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" || typeof v === "bigint" ? String(v) : undefined;
}

/**
 * Streams the documents of an input spec. A record without the text field (or whose text is not a
 * string) is E_FORMAT naming the file and record, or is skipped with `onBadLine: "skip"`.
 */
export async function* readDocs(spec: string, options: ReadOptions = {}): AsyncGenerator<SelectDoc> {
  const o = ReadOptionsSchema.parse(options);
  const keep = (i: number) => !o.shard || i % o.shard.count === o.shard.index;
  const skip = o.onSkip ?? (() => {});
  let index = 0;
  if (spec.startsWith("corpus:")) {
    const [, name, split] = spec.split(":");
    const c = corpus(name!);
    for await (const d of c.docs({ split: checkSplit(split ?? "all") })) {
      const i = index++;
      if (!keep(i)) continue;
      const meta = d.meta as Record<string, unknown>;
      yield { index: i, id: d.id, text: d.text, domain: (str(meta["label"]) ?? d.domain) as string, record: { id: d.id, domain: d.domain, text: d.text } };
    }
    return;
  }
  for (const file of await expandInput(spec)) {
    try {
      await stat(file);
    } catch {
      throw new TersorError("E_IO", `input ${file} does not exist`);
    }
    const isParquet = file.endsWith(".parquet");
    let line = 0;
    const jsonl = isParquet ? null : readJsonl(file, { onBadLine: o.onBadLine, onSkip: (l, why) => skip(l, why) });
    const records: AsyncIterable<unknown> = jsonl ?? readParquet(file);
    for await (const rec of records) {
      line++;
      const i = index;
      const where = jsonl ? `${file}:${jsonl.stats.lines} (line ${jsonl.stats.lines})` : `${file}: row ${line}`;
      const at = jsonl ? jsonl.stats.lines : line;
      if (rec === null || typeof rec !== "object" || Array.isArray(rec)) {
        if (o.onBadLine === "skip") {
          skip(at, "not a JSON object");
          continue;
        }
        throw new TersorError("E_FORMAT", `${where} is not a JSON object`);
      }
      const r = rec as Record<string, unknown>;
      const text = r[o.textField];
      if (typeof text !== "string") {
        if (o.onBadLine === "skip") {
          skip(at, `missing text field "${o.textField}"`);
          continue;
        }
        throw new TersorError("E_FORMAT", `${where} has no string field "${o.textField}" (set --text-field)`);
      }
      index++;
      if (!keep(i)) continue;
      const meta = r["metadata"] as Record<string, unknown> | undefined;
      yield {
        index: i,
        id: str(r[o.idField]) ?? String(i),
        text,
        domain: str(r[o.domainField]) ?? str(meta?.["pile_set_name"]) ?? "",
        record: r,
      };
    }
  }
}

/** Reads all documents (selection methods that need the whole corpus). */
export async function readAllDocs(spec: string, options: ReadOptions = {}): Promise<SelectDoc[]> {
  const out: SelectDoc[] = [];
  for await (const d of readDocs(spec, options)) out.push(d);
  return out;
}

const enc = new TextEncoder();

/** Packs texts as UTF-8 bytes plus count + 1 offsets for the native kernels. */
export function packTexts(texts: readonly string[]): { bytes: Uint8Array; offsets: Uint32Array } {
  const parts = texts.map((t) => enc.encode(t));
  let total = 0;
  for (const p of parts) total += p.byteLength;
  if (total > 0xffffffff) throw new TersorError("E_RANGE", "a batch of texts must stay below 4 GiB");
  const bytes = new Uint8Array(total);
  const offsets = new Uint32Array(parts.length + 1);
  let at = 0;
  parts.forEach((p, i) => {
    bytes.set(p, at);
    at += p.byteLength;
    offsets[i + 1] = at;
  });
  return { bytes, offsets };
}

/** Writes records as JSONL atomically. */
export async function writeJsonlAtomic(path: string, rows: Iterable<unknown>): Promise<number> {
  const w = await openAtomic(path);
  let n = 0;
  try {
    let buf = "";
    for (const r of rows) {
      buf += JSON.stringify(r) + "\n";
      n++;
      if (buf.length > 1 << 16) {
        await w.write(buf);
        buf = "";
      }
    }
    if (buf) await w.write(buf);
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
  return n;
}

/**
 * Writes records to `path` atomically: Parquet when it ends in `.parquet` (columns from the union
 * of the records' keys: strings STRING, numbers DOUBLE, booleans BOOLEAN, anything else JSON),
 * JSON Lines otherwise.
 */
export async function writeRecords(path: string, rows: readonly Record<string, unknown>[]): Promise<number> {
  if (!path.endsWith(".parquet")) return writeJsonlAtomic(path, rows);
  const types = new Map<string, string>();
  for (const r of rows)
    for (const [k, v] of Object.entries(r)) {
      if (v === null || v === undefined) continue;
      const t = typeof v === "string" ? "STRING" : typeof v === "number" ? "DOUBLE" : typeof v === "boolean" ? "BOOLEAN" : "JSON";
      const prev = types.get(k);
      types.set(k, prev === undefined || prev === t ? t : "JSON");
    }
  if (types.size === 0) types.set("text", "STRING");
  const columns = [...types].map(([name, type]) => ({ name, type: type as "STRING" | "DOUBLE" | "BOOLEAN" | "JSON", nullable: true }));
  return writeParquet(path, columns, rows.map((r) => Object.fromEntries(columns.map((c) => [c.name, r[c.name] ?? null]))));
}
