import type { Command } from "commander";
import { TersorError, progress } from "@tersor/core";
import { CORPUS_NAMES, SPLITS, checkSplit, corpus, exportCorpus, listCorpora, type CorpusOptions, type CorpusStats, type ExportFormat } from "@tersor/corpora";

/** Parses `--years 1900-1950` (inclusive). */
function parseYears(s: string | undefined): CorpusOptions {
  if (s === undefined) return {};
  const m = /^(\d{4})-(\d{4})$/.exec(s.trim());
  if (!m) throw new TersorError("E_RANGE", `--years must look like 1900-1950, got "${s}"`);
  return { years: [Number(m[1]), Number(m[2])] };
}

function formatStats(s: CorpusStats): string {
  const n = (x: number, w: number) => x.toLocaleString("en-US").padStart(w);
  return `${s.name.padEnd(16)} ${s.split.padEnd(10)} ${n(s.documents, 9)} docs ${n(s.characters, 13)} chars ${n(s.bytes, 13)} bytes ${n(s.words, 12)} words`;
}

/** Registers `tersor corpus list|stats|export`. */
export function registerCorpus(program: Command): void {
  const cmd = program
    .command("corpus")
    .description("the embedded text corpora (State of the Union, Moby-Dick, SpamAssassin, WordNet): list, count, export");

  cmd
    .command("list")
    .description("list the corpora with their source package and licence")
    .option("--json", "print one JSON object per corpus")
    .action((o: { json?: boolean }) => {
      for (const i of listCorpora()) {
        if (o.json) process.stdout.write(JSON.stringify(i) + "\n");
        else process.stdout.write(`${i.name.padEnd(16)} ${i.description}\n${"".padEnd(16)} ${i.sourcePackage}@${i.sourceVersion}; ${i.licence}\n`);
      }
    });

  cmd
    .command("stats")
    .description("count documents, characters, UTF-8 bytes and words of a corpus split")
    .argument("<name>", `corpus name or "all" (${CORPUS_NAMES.join(", ")})`)
    .option("--split <split>", `one of ${SPLITS.join(", ")}`, "all")
    .option("--years <from-to>", "sotu and its eras only: keep these years (e.g. 1900-1950)")
    .option("--json", "print one JSON object per corpus")
    .action(async (name: string, o: { split: string; years?: string; json?: boolean }) => {
      const split = checkSplit(o.split);
      const names = name === "all" ? CORPUS_NAMES : [name];
      const years = parseYears(o.years);
      const corpora = names.map((n) => corpus(n, name === "all" ? {} : years)); // validates every name first
      for (const c of corpora) {
        const s = await c.stats({ split });
        process.stdout.write((o.json ? JSON.stringify(s) : formatStats(s)) + "\n");
      }
    });

  cmd
    .command("export")
    .description("write a corpus split to a file, atomically (JSON Lines: one {id, domain, text, meta} per line)")
    .argument("<name>", `corpus name (${CORPUS_NAMES.join(", ")})`)
    .requiredOption("--out <file>", "output file")
    .option("--split <split>", `one of ${SPLITS.join(", ")}`, "all")
    .option("--format <format>", "jsonl or parquet (default: from the file extension, else jsonl)")
    .option("--years <from-to>", "sotu and its eras only: keep these years (e.g. 1900-1950)")
    .option("--json", "print the result as JSON")
    .action(async (name: string, o: { out: string; split: string; format?: string; years?: string; json?: boolean }) => {
      const split = checkSplit(o.split);
      if (o.format !== undefined && o.format !== "jsonl" && o.format !== "parquet") {
        throw new TersorError("E_RANGE", `--format must be jsonl or parquet, got "${o.format}"`);
      }
      const c = corpus(name, parseYears(o.years));
      const bar = progress({ label: `export ${name}`, unit: "docs" });
      let last = 0;
      try {
        const r = await exportCorpus(c, o.out, {
          split,
          ...(o.format ? { format: o.format as ExportFormat } : {}),
          onDoc: (n) => {
            bar.tick(n - last);
            last = n;
          },
        });
        bar.stop();
        process.stdout.write(
          o.json ? JSON.stringify({ name, ...r }) + "\n" : `wrote ${r.documents} documents of ${name} (${split}) to ${r.path}: ${r.bytes} bytes, ${r.format}\n`,
        );
      } catch (e) {
        bar.stop();
        throw e;
      }
    });
}
