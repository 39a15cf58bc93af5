/**
 * Proxy-run tables in RegMix's layout (github.com/sail-sg/regmix, `regression_fitting/`): a mixture
 * file `index,train_<domain>,...` (one row per run, proportions on the simplex) and a loss file
 * `index,<metric column>,...` (e.g. `metric/<domain>_val_loss`), joined on `index`.
 */
import { readFile } from "node:fs/promises";

import { TersorError, writeFileAtomic } from "@tersor/core";

/** The prefix of mixture columns. */
export const MIXTURE_PREFIX = "train_";

/** Column name of a domain's validation loss in the loss file. */
export function lossColumn(domain: string): string {
  return `metric/${domain}_val_loss`;
}

/** A parsed CSV: header and rows of raw cells. */
export interface CsvTable {
  header: string[];
  rows: string[][];
}

/** Parses RFC 4180 CSV (quoted fields with `""` escapes, CRLF or LF). Every row must have the header's width. */
export function parseCsv(text: string, where = "CSV"): CsvTable {
  const records: string[][] = [];
  let field = "";
  let rec: string[] = [];
  let i = 0;
  let quoted = false;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += c; i++; continue;
    }
    if (c === '"' && field === "") { quoted = true; i++; continue; }
    if (c === ",") { rec.push(field); field = ""; i++; continue; }
    if (c === "\n" || c === "\r") {
      rec.push(field); field = "";
      if (!(rec.length === 1 && rec[0] === "")) records.push(rec);
      rec = [];
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i++;
  }
  if (quoted) throw new TersorError("E_FORMAT", `${where}: unterminated quoted field`);
  if (field !== "" || rec.length > 0) { rec.push(field); records.push(rec); }
  if (records.length === 0) throw new TersorError("E_FORMAT", `${where}: empty file (no header)`);
  const header = records[0]!.map((h) => h.trim());
  const rows = records.slice(1);
  rows.forEach((r, k) => {
    if (r.length !== header.length)
      throw new TersorError("E_FORMAT", `${where}: line ${k + 2} has ${r.length} fields, the header has ${header.length}`);
  });
  return { header, rows };
}

/** Quotes a CSV cell when needed. */
export function csvCell(s: string | number): string {
  const t = String(s);
  return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

/** Proxy runs joined from a mixture table and a loss table. */
export interface RunTable {
  /** Run ids (the `index` column), one per row. */
  ids: string[];
  /** Domain names (mixture columns without the `train_` prefix). */
  domains: string[];
  /** Mixture proportions, one row per run, columns in `domains` order. */
  mixtures: number[][];
  /** Loss column names (as in the file). */
  lossColumns: string[];
  /** Losses, one row per run, columns in `lossColumns` order. */
  losses: number[][];
}

function numberCell(cell: string, where: string, row: number, col: string): number {
  const t = cell.trim();
  const v = t === "" ? NaN : Number(t);
  if (!Number.isFinite(v)) throw new TersorError("E_FORMAT", `${where}: line ${row + 2}, column "${col}" is not a finite number ("${cell}")`);
  return v;
}

/** Options of {@link parseRunTables}. */
export interface RunTableOptions {
  /** Tolerance on `|Σ w − 1|` per mixture row (RegMix rounds proportions to 3 decimals) [0.02]. */
  simplexTolerance?: number;
}

/**
 * Joins a mixture CSV and a loss CSV on `index`. Mixture rows are renormalised after the simplex
 * check. Errors: E_FORMAT for a missing `index` column, no `train_` columns, no loss columns, a
 * non-numeric or NaN cell, duplicate or unmatched run ids; E_RANGE for a row off the simplex.
 */
export function parseRunTables(mixtureCsv: string, lossCsv: string, names = { mixtures: "mixture CSV", losses: "loss CSV" }, options: RunTableOptions = {}): RunTable {
  const tol = options.simplexTolerance ?? 0.02;
  const mt = parseCsv(mixtureCsv, names.mixtures);
  const lt = parseCsv(lossCsv, names.losses);
  const mIdx = mt.header.indexOf("index");
  const lIdx = lt.header.indexOf("index");
  if (mIdx < 0) throw new TersorError("E_FORMAT", `${names.mixtures}: missing the "index" column (header: ${mt.header.join(",")})`);
  if (lIdx < 0) throw new TersorError("E_FORMAT", `${names.losses}: missing the "index" column (header: ${lt.header.join(",")})`);
  const mCols = mt.header.map((h, i) => [h, i] as const).filter(([h]) => h.startsWith(MIXTURE_PREFIX));
  if (mCols.length === 0) throw new TersorError("E_FORMAT", `${names.mixtures}: no mixture columns (named "${MIXTURE_PREFIX}<domain>")`);
  const lCols = lt.header.map((h, i) => [h, i] as const).filter(([, i]) => i !== lIdx);
  if (lCols.length === 0) throw new TersorError("E_FORMAT", `${names.losses}: no loss columns besides "index"`);
  const domains = mCols.map(([h]) => h.slice(MIXTURE_PREFIX.length));
  if (new Set(domains).size !== domains.length) throw new TersorError("E_FORMAT", `${names.mixtures}: duplicate mixture columns`);
  const byId = new Map<string, number[]>();
  mt.rows.forEach((r, k) => {
    const id = r[mIdx]!.trim();
    if (id === "") throw new TersorError("E_FORMAT", `${names.mixtures}: line ${k + 2} has an empty index`);
    if (byId.has(id)) throw new TersorError("E_FORMAT", `${names.mixtures}: duplicate run index "${id}"`);
    const w = mCols.map(([h, i]) => numberCell(r[i]!, names.mixtures, k, h));
    let s = 0;
    for (let j = 0; j < w.length; j++) {
      if (w[j]! < 0) throw new TersorError("E_RANGE", `${names.mixtures}: run "${id}" has a negative proportion for ${domains[j]}`);
      s += w[j]!;
    }
    if (Math.abs(s - 1) > tol) throw new TersorError("E_RANGE", `${names.mixtures}: run "${id}" proportions sum to ${s.toFixed(6)}, not 1 (off the simplex)`);
    byId.set(id, w.map((v) => v / s));
  });
  const ids: string[] = [];
  const mixtures: number[][] = [];
  const losses: number[][] = [];
  const seen = new Set<string>();
  lt.rows.forEach((r, k) => {
    const id = r[lIdx]!.trim();
    if (seen.has(id)) throw new TersorError("E_FORMAT", `${names.losses}: duplicate run index "${id}"`);
    seen.add(id);
    const w = byId.get(id);
    if (!w) throw new TersorError("E_FORMAT", `${names.losses}: run "${id}" has no row in ${names.mixtures}`);
    ids.push(id);
    mixtures.push(w);
    losses.push(lCols.map(([h, i]) => numberCell(r[i]!, names.losses, k, h)));
  });
  if (ids.length === 0) throw new TersorError("E_FORMAT", `${names.losses}: no runs`);
  return { ids, domains, mixtures, lossColumns: lCols.map(([h]) => h), losses };
}

/** Reads and joins a mixture file and a loss file ({@link parseRunTables}); E_IO when a file cannot be read. */
export async function readRunTables(mixturesPath: string, lossesPath: string, options: RunTableOptions = {}): Promise<RunTable> {
  const read = async (p: string) => {
    try {
      return await readFile(p, "utf8");
    } catch (e) {
      throw new TersorError("E_IO", `cannot read ${p}: ${(e as Error).message}`, { cause: e });
    }
  };
  return parseRunTables(await read(mixturesPath), await read(lossesPath), { mixtures: mixturesPath, losses: lossesPath }, options);
}

/**
 * The target of a regression: a loss column by exact name, a domain name `d` (column
 * `metric/d_val_loss`), or `avg` (the mean of every loss column). E_RANGE for an unknown name.
 */
export function targetValues(t: RunTable, target: string): { name: string; values: number[] } {
  if (target === "avg") return { name: "avg", values: t.losses.map((r) => r.reduce((a, b) => a + b, 0) / r.length) };
  let j = t.lossColumns.indexOf(target);
  if (j < 0) j = t.lossColumns.indexOf(lossColumn(target));
  if (j < 0) throw new TersorError("E_RANGE", `unknown target "${target}"; expected "avg" or one of ${t.lossColumns.join(", ")}`);
  return { name: t.lossColumns[j]!, values: t.losses.map((r) => r[j]!) };
}

/** The text of a RegMix mixture CSV. */
export function mixtureCsv(domains: readonly string[], rows: readonly { id: string | number; weights: readonly number[] }[]): string {
  const lines = [["index", ...domains.map((d) => MIXTURE_PREFIX + d)].map(csvCell).join(",")];
  for (const r of rows) lines.push([csvCell(r.id), ...r.weights.map((w) => String(w))].join(","));
  return lines.join("\n") + "\n";
}

/** The text of a RegMix loss CSV. */
export function lossCsv(columns: readonly string[], rows: readonly { id: string | number; losses: readonly number[] }[]): string {
  const lines = [["index", ...columns].map(csvCell).join(",")];
  for (const r of rows) lines.push([csvCell(r.id), ...r.losses.map((v) => String(v))].join(","));
  return lines.join("\n") + "\n";
}

/** Writes a CSV atomically (a reader never sees a half-written table). */
export async function writeCsvAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text);
}
