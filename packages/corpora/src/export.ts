import { stat } from "node:fs/promises";

import { openAtomic, TersorError, writeParquet } from "@tersor/core";

import { corpus, type CorpusOptions } from "./registry.js";
import { checkSplit } from "./split.js";
import type { Corpus, Split } from "./types.js";

/** File formats {@link exportCorpus} writes. */
export type ExportFormat = "jsonl" | "parquet";

export interface ExportOptions extends CorpusOptions {
  /** Default "all". */
  split?: Split;
  /** Default: "parquet" when the path ends in `.parquet`, else "jsonl". */
  format?: ExportFormat;
  /** Called after each document is written (for progress bars). */
  onDoc?: (written: number) => void;
}

/** What {@link exportCorpus} wrote. */
export interface ExportResult {
  path: string;
  format: ExportFormat;
  split: Split;
  documents: number;
  /** Bytes of the file. */
  bytes: number;
}

/**
 * Writes a corpus split to `path`, atomically (a temporary file renamed into place once complete;
 * on failure `path` is left as it was).
 *
 * JSON Lines: one `{"id","domain","text","meta"}` object per line, UTF-8, `\n` line ends.
 * Parquet: columns `id`, `domain`, `text` (strings) and `meta` (JSON), row groups of 10,000 documents.
 */
export async function exportCorpus(source: string | Corpus<object>, path: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const c = typeof source === "string" ? corpus(source, opts.years ? { years: opts.years } : {}) : source;
  const split = checkSplit(opts.split);
  const format = opts.format ?? (path.toLowerCase().endsWith(".parquet") ? "parquet" : "jsonl");
  if (format !== "jsonl" && format !== "parquet") throw new TersorError("E_RANGE", `unknown export format ${JSON.stringify(format)}; expected jsonl or parquet`);
  if (format === "parquet") {
    let written = 0;
    async function* rows() {
      for await (const d of c.docs({ split })) {
        yield { id: d.id, domain: d.domain, text: d.text, meta: d.meta };
        opts.onDoc?.(++written);
      }
    }
    const documents = await writeParquet(
      path,
      [
        { name: "id", type: "STRING", nullable: false },
        { name: "domain", type: "STRING", nullable: false },
        { name: "text", type: "STRING", nullable: false },
        { name: "meta", type: "JSON" },
      ],
      rows(),
    );
    return { path, format, split, documents, bytes: (await stat(path)).size };
  }
  const w = await openAtomic(path);
  let documents = 0;
  try {
    let buf = "";
    for await (const d of c.docs({ split })) {
      buf += JSON.stringify({ id: d.id, domain: d.domain, text: d.text, meta: d.meta }) + "\n";
      documents++;
      if (buf.length >= 1 << 20) {
        await w.write(buf);
        buf = "";
      }
      opts.onDoc?.(documents);
    }
    if (buf) await w.write(buf);
  } catch (e) {
    await w.abort();
    throw e;
  }
  const bytes = w.bytesWritten;
  await w.commit();
  return { path, format, split, documents, bytes };
}
