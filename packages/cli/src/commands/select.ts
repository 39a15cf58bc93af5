/**
 * `tersor dedup` and `tersor select`:
 *
 *   tersor dedup <input> --out kept.jsonl [--mode exact|minhash] [--ngram 5] [--num-perm 112]
 *         [--bands 14 --rows 8 | --threshold 0.7] [--decontaminate target.jsonl --decontam-ngram 13]
 *         [--memory 256MB] [--work-dir dir] [--shard i/N --signatures shard.json] [--report r.html]
 *   tersor dedup merge <shard.json...> --input <input> --out kept.jsonl [--memory 256MB] [--work-dir dir]
 *   tersor select <input> --method random|stratified|dsir|zipfit|gio|rds|novelselect|perplexity|quests|kcenter|facility-location|coverage|gopher
 *         --budget 10%|N [--target t.jsonl|corpus:name] [--seed 0] [--optimizer naive|lazy|stochastic]
 *         [--shard i/N] --out selected.jsonl [--report r.html]
 *   tersor select merge <shard files...> --input <input> [--budget N] --out selected.jsonl
 *
 * Inputs: JSONL/Parquet files or globs, or corpus:<name>[:split]; --text-field, --id-field,
 * --on-bad-line skip|error. Outputs keep input order; a sidecar `<out>.sidecar.jsonl` holds each
 * input document's id, score, cluster and reason.
 */
import { readFile } from "node:fs/promises";

import type { Command } from "commander";
import { TersorError, openAtomic, progress } from "@tersor/core";
import {
  type DedupResult,
  type ReadOptions,
  type SelectDoc,
  SELECT_METHODS,
  dedupSpilled,
  diversity,
  mergeSignatureShardsSpilled,
  ngramOverlap,
  parseMemory,
  parseShard,
  readAllDocs,
  readDocs,
  runSelect,
  SHARDABLE_METHODS,
  isShardable,
  mergeSelectShards,
  readSelectShard,
  selectRandom,
  selectShard,
  writeJsonlAtomic,
  writeSelectShard,
  writeRecords,
  writeReport,
  writeMinhashShardStream,
  zipfitScores,
} from "@tersor/select";
import { intOpt, numOpt } from "../options.js";


interface IoOpts {
  textField?: string;
  idField?: string;
  onBadLine?: string;
  shard?: string;
}

function readOptions(o: IoOpts, withShard = true): ReadOptions {
  const onBadLine = o.onBadLine ?? "error";
  if (onBadLine !== "skip" && onBadLine !== "error") throw new TersorError("E_RANGE", `--on-bad-line must be skip or error, got "${onBadLine}"`);
  return {
    textField: o.textField ?? "text",
    idField: o.idField ?? "id",
    onBadLine,
    shard: withShard && o.shard ? parseShard(o.shard) : undefined,
    onSkip: (line: number, why: string) => process.stderr.write(`skipped line ${line}: ${why}\n`),
  };
}

async function loadDocs(input: string, o: IoOpts, withShard = true): Promise<SelectDoc[]> {
  const bar = progress({ label: `reading ${input}`, unit: "docs" });
  const docs: SelectDoc[] = [];
  try {
    for (const d of await readAllDocs(input, readOptions(o, withShard))) {
      docs.push(d);
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  return docs;
}

function withIo(cmd: Command): Command {
  return cmd
    .option("--text-field <name>", "record field holding the text", "text")
    .option("--id-field <name>", "record field holding the id", "id")
    .option("--on-bad-line <policy>", "skip | error", "error");
}

function sidecarPath(out: string): string {
  return out.replace(/\.(jsonl|json|parquet)(\.gz)?$/, "") + ".sidecar.jsonl";
}

async function writeKept(out: string, docs: readonly SelectDoc[], keep: (i: number) => boolean, side: (i: number) => Record<string, unknown>): Promise<number> {
  const n = await writeRecords(out, docs.filter((_, i) => keep(i)).map((d) => d.record));
  await writeJsonlAtomic(sidecarPath(out), docs.map((d, i) => ({ index: d.index, id: d.id, keep: keep(i), ...side(i) })));
  return n;
}

function dedupSummary(r: DedupResult): Record<string, unknown> {
  return {
    documents: r.documents,
    kept: r.kept,
    exact_duplicates: r.exactDuplicates,
    near_duplicates: r.nearDuplicates,
    clusters_with_duplicates: r.clusterSizes.length,
    largest_cluster: r.clusterSizes[0] ?? 1,
    candidate_pairs: r.candidatePairs,
    estimated_precision: r.estimatedPrecision,
    bands: r.bands,
    rows: r.rows,
  };
}

function sizeHistogram(sizes: number[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const s of sizes) h[`size ${s}`] = (h[`size ${s}`] ?? 0) + 1;
  return h;
}

async function loadTarget(spec: string | undefined, o: IoOpts): Promise<string[] | null> {
  if (!spec) return null;
  const t = (await readAllDocs(spec, readOptions(o, false))).map((d) => d.text);
  if (t.length === 0) throw new TersorError("E_RANGE", `the target ${spec} is empty`);
  return t;
}

type Opts = Record<string, string | boolean | undefined> & IoOpts;

function need(o: Opts, key: string, flag: string): string {
  const v = o[key];
  if (typeof v !== "string" || !v) throw new TersorError("E_RANGE", `merge needs ${flag}`);
  return v;
}

/**
 * Pass 2 of a spilled dedup or merge: streams the input again, writes the kept records and the
 * sidecar in input order (atomically), dropping contaminated documents (`overlapOf` gives a batch's
 * shared n-gram counts, or null). `check` may reject a document (e.g. one the shards did not cover).
 */
async function writeDedupOutput(
  input: string,
  o: IoOpts,
  out: string,
  r: DedupResult,
  overlapOf: (batch: SelectDoc[], pos: number) => Promise<ArrayLike<number> | null>,
  check: (d: SelectDoc, pos: number) => void,
  countError: (read: number) => TersorError,
): Promise<{ written: number; contaminated: number }> {
  const parquetOut = out.endsWith(".parquet");
  const keptRecords: Record<string, unknown>[] = [];
  const kept = parquetOut ? null : await openAtomic(out);
  const side = await openAtomic(sidecarPath(out));
  let n = 0;
  let contaminatedCount = 0;
  try {
    let batch: SelectDoc[] = [];
    let pos = 0;
    const flush = async () => {
      const overlap = batch.length ? await overlapOf(batch, pos) : null;
      let a = "";
      let b = "";
      batch.forEach((d, j) => {
        const dec = r.decisions[pos + j]!;
        const dirty = overlap !== null && overlap[j]! > 0;
        if (dirty) contaminatedCount++;
        const keep = dec.keep && !dirty;
        if (keep) {
          if (parquetOut) keptRecords.push(d.record);
          else a += JSON.stringify(d.record) + "\n";
          n++;
        }
        b += JSON.stringify({ index: d.index, id: d.id, keep, cluster: dec.cluster, reason: dirty ? `contaminated (${overlap![j]} shared n-grams)` : dec.reason }) + "\n";
      });
      pos += batch.length;
      batch = [];
      if (a) await kept!.write(a);
      await side.write(b);
    };
    let read = 0;
    for await (const d of readDocs(input, readOptions(o, false))) {
      if (read >= r.documents) throw countError(read + 1);
      check(d, read++);
      batch.push(d);
      if (batch.length >= 2000) await flush();
    }
    await flush();
    if (pos !== r.documents) throw countError(pos);
    if (kept) await kept.commit();
    else await writeRecords(out, keptRecords);
    await side.commit();
  } catch (e) {
    await kept?.abort();
    await side.abort();
    throw e;
  }
  return { written: n, contaminated: contaminatedCount };
}

/**
 * `tersor dedup merge`: the shard files are streamed in input order through sorted runs on disk
 * under --memory (constant memory in the corpus size besides 4 bytes of union-find per document),
 * then the input is streamed again to write the kept records and the sidecar: the same output as
 * one process over the whole input.
 */
async function dedupMerge(shards: string[], o: Opts): Promise<void> {
  if (shards.length === 0) throw new TersorError("E_RANGE", "tersor dedup merge needs signature files");
  const input = need(o, "input", "--input <input>");
  const out = need(o, "out", "--out <path>");
  const bar = progress({ label: "dedup merge: signatures", unit: "docs" });
  let done = 0;
  let m: Awaited<ReturnType<typeof mergeSignatureShardsSpilled>>;
  try {
    m = await mergeSignatureShardsSpilled(shards, {
      memory: parseMemory(o["memory"] as string),
      workDir: (o["workDir"] as string | undefined) ?? out + ".dedup-work",
      onProgress: (n) => {
        bar.tick(n - done);
        done = n;
      },
    });
  } finally {
    bar.stop();
  }
  const r = m.result;
  const overlap = m.decontam?.overlap;
  const missing = (read: number) => new TersorError("E_RANGE", `the shards cover ${r.documents} documents but the input has ${read > r.documents ? "more" : read}: missing or extra shards`);
  const w = await writeDedupOutput(
    input,
    o,
    out,
    r,
    async (batch, pos) => (overlap ? overlap.subarray(pos, pos + batch.length) : null),
    (d, pos) => {
      if (d.index !== m.indices[pos]) throw new TersorError("E_RANGE", `input document ${d.index} is not in the shards (the shards cover ${r.documents} documents): missing or extra shards`);
    },
    missing,
  );
  const summary = { ...dedupSummary(r), ...(overlap ? { contaminated: w.contaminated } : {}), written: w.written };
  process.stdout.write(o["json"] ? JSON.stringify(summary) + "\n" : Object.entries(summary).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n");
}

async function selectMerge(files: string[], o: Opts): Promise<void> {
  if (files.length === 0) throw new TersorError("E_RANGE", "tersor select merge needs shard files (from tersor select --shard i/N --scores <path>)");
  const m = mergeSelectShards(await Promise.all(files.map(readSelectShard)), o["budget"] as string | undefined);
  const docs = await loadDocs(need(o, "input", "--input <input>"), o, false);
  if (docs.length !== m.docs.length || docs.some((d, i) => d.index !== m.docs[i]!.index || d.id !== m.docs[i]!.id))
    throw new TersorError("E_RANGE", `the shards cover ${m.docs.length} documents but the input has ${docs.length}: missing or extra shards, or another input`);
  const r = m.result;
  const kept = new Set(r.kept);
  const n = await writeKept(need(o, "out", "--out <path>"), docs, (i) => kept.has(i), (i) => ({ score: r.scores[i] ?? null, reason: r.reasons[i] }));
  const summary: Record<string, unknown> = { method: r.method, documents: docs.length, selected: n, shards: files.length, ...r.details };
  process.stdout.write(o["json"] ? JSON.stringify(summary) + "\n" : Object.entries(summary).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n") + "\n");
}

/** Registers the command(s) of this module on the program. */
export function registerSelect(program: Command): void {
  // ---- dedup -------------------------------------------------------------------------------------
  withIo(program.command("dedup").description("exact and MinHash-LSH deduplication, n-gram decontamination; `dedup merge <shards...> --input <input>` joins shards"))
    .argument("[input...]", "JSONL/Parquet file or glob, or corpus:<name>[:split]; or merge <signature files...>")
    .option("--input <input>", "with merge: the input the shards read")
    .option("--out <path>", "kept documents (JSONL), in input order; a .sidecar.jsonl beside it")
    .option("--mode <mode>", "exact | minhash", "minhash")
    .option("--ngram <n>", "words per shingle", "5")
    .option("--num-perm <n>", "MinHash permutations", "112")
    .option("--bands <b>", "LSH bands (with --rows)")
    .option("--rows <r>", "LSH rows per band")
    .option("--threshold <t>", "Jaccard threshold: bands x rows by datasketch's optimal_param")
    .option("--seed <s>", "permutation seed (numpy RandomState)", "1")
    .option("--layout <l>", "datatrove | datasketch permutation order", "datatrove")
    .option("--memory <size>", "memory budget of a sorted run of signatures and band records (e.g. 256MB)", "256MB")
    .option("--work-dir <dir>", "run files (removed at the end; default <out>.dedup-work, resumed after an interruption)")
    .option("--decontaminate <target>", "also drop documents sharing an n-gram with this target")
    .option("--decontam-ngram <n>", "n-gram size for decontamination", "13")
    .option("--shard <i/N>", "process documents i, i+N, ... and write --signatures for `dedup merge`")
    .option("--signatures <path>", "shard output (with --shard)")
    .option("--report <path>", "report.html (+ report.json)")
    .option("--json", "print the summary as JSON")
    .action(async (inputs: string[], o: Record<string, string | boolean | undefined> & IoOpts) => {
      if (inputs[0] === "merge") return dedupMerge(inputs.slice(1), o);
      if (inputs.length !== 1) throw new TersorError("E_RANGE", "tersor dedup needs one input (or `tersor dedup merge <shards...> --input <input>`)");
      const input = inputs[0]!;
      const mode = o["mode"] as string;
      if (mode !== "exact" && mode !== "minhash") throw new TersorError("E_RANGE", `--mode must be exact or minhash, got "${mode}"`);
      const mh = {
        mode: mode as "exact" | "minhash",
        ngram: intOpt(o["ngram"] as string, "ngram", 1),
        numPerm: intOpt(o["numPerm"] as string, "num-perm", 2),
        bands: intOpt(o["bands"] as string | undefined, "bands", 1),
        rows: intOpt(o["rows"] as string | undefined, "rows", 1),
        threshold: numOpt(o["threshold"] as string | undefined, "threshold"),
        seed: intOpt(o["seed"] as string, "seed", 0),
        layout: o["layout"] as "datatrove" | "datasketch",
      };
      if (o.shard) {
        if (!o["signatures"]) throw new TersorError("E_RANGE", "--shard needs --signatures <path> (merge them with `tersor dedup merge`)");
        // Streamed in batches: signatures, exact keys and decontamination counts, one line per document.
        const decontaminate = o["decontaminate"]
          ? { target: o["decontaminate"] as string, ngram: intOpt(o["decontamNgram"] as string, "decontam-ngram", 1)!, texts: (await loadTarget(o["decontaminate"] as string, o))! }
          : undefined;
        const bar = progress({ label: `dedup shard ${o.shard}`, unit: "docs" });
        let done = 0;
        let count: number;
        try {
          count = await writeMinhashShardStream(o["signatures"] as string, readDocs(input, readOptions(o)), mh, {
            decontaminate,
            onProgress: (n) => {
              bar.tick(n - done);
              done = n;
            },
          });
        } finally {
          bar.stop();
        }
        process.stdout.write(`shard ${o.shard}: ${count} documents -> ${o["signatures"]}\n`);
        return;
      }
      if (!o["out"]) throw new TersorError("E_RANGE", "--out <path> is required");
      const out = o["out"] as string;
      const target = o["decontaminate"] ? (await loadTarget(o["decontaminate"] as string, o))! : null;
      const decontamN = intOpt(o["decontamNgram"] as string, "decontam-ngram", 1)!;
      // Pass 1: signatures and LSH band records spilled to disk in sorted runs under --memory, merged
      // per band into a union-find (constant memory in the corpus size; an interrupted run resumes
      // from the complete runs in <out>.dedup-work/); texts are not kept.
      const bar1 = progress({ label: "dedup: signatures", unit: "docs" });
      let done = 0;
      const r = await dedupSpilled(readDocs(input, readOptions(o)), {
        minhash: mh,
        memory: parseMemory(o["memory"] as string),
        workDir: (o["workDir"] as string | undefined) ?? out + ".dedup-work",
        inputKey: input,
        onProgress: (n) => {
          bar1.tick(n - done);
          done = n;
        },
      });
      bar1.stop();
      // Pass 2: stream again, decontaminate in batches, write kept records and the sidecar in input order.
      const { written: n, contaminated: contaminatedCount } = await writeDedupOutput(
        input,
        o,
        out,
        r,
        async (batch) => (target ? ngramOverlap(batch.map((d) => d.text), target, decontamN) : null),
        () => undefined,
        (read) => new TersorError("E_IO", `${input} changed between the two passes (${r.documents} then ${read > r.documents ? "more" : read} documents)`),
      );
      const summary = { ...dedupSummary(r), contaminated: contaminatedCount, written: n };
      if (o["report"]) await writeReport(o["report"] as string, { title: `tersor dedup ${input}`, summary, charts: { "duplicate-cluster sizes": sizeHistogram(r.clusterSizes) } });
      process.stdout.write(o["json"] ? JSON.stringify(summary) + "\n" : Object.entries(summary).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n");
    });

  // ---- select ------------------------------------------------------------------------------------
  withIo(program.command("select").description("select a subset: random, stratified, DSIR, ZIP-FIT, QUESTS, k-center, submodular, Gopher rules; `select merge <scores...> --input <input> --budget B` joins shards"))
    .argument("[input...]", "JSONL/Parquet file or glob, or corpus:<name>[:split]; or merge <score files...>")
    .option("--input <input>", "with merge: the input the shards read")
    .option("--method <m>", SELECT_METHODS.join(" | "), "random")
    .option("--budget <b>", "10% or a count")
    .option("--target <t>", "target examples (JSONL or corpus:<name>) for dsir / zipfit")
    .option("--seed <s>", "seed", "0")
    .option("--optimizer <o>", "naive | lazy | stochastic (submodular methods)", "lazy")
    .option("--level <l>", "gzip level for zipfit", "9")
    .option("--embed <model|hashed>", "vectors for gio/rds/novelselect/quests/kcenter/facility-location: hashed n-grams, or a model (dir, .gguf, ref-small)", "hashed")
    .option("--model <model>", "model for --method perplexity (default ref-small)")
    .option("--max-tokens <n>", "tokens per document for embeddings and perplexity", "256")
    .option("--perplexity-keep <k>", "low | target (closest to the target's median perplexity)", "low")
    .option("--epochs <n>", "rs2: epochs in the index schedule (written to the report/summary)", "1")
    .option("--out <path>", "selected documents (JSONL), in input order; a .sidecar.jsonl beside it")
    .option("--shard <i/N>", "process documents i, i+N, ... (random, stratified, dsir, zipfit, gopher, perplexity) and write --scores for `select merge`")
    .option("--scores <path>", "shard output (with --shard)")
    .option("--report <path>", "report.html (+ report.json): counts per domain, diversity and target alignment vs random")
    .option("--json", "print the summary as JSON")
    .action(async (inputs: string[], o: Record<string, string | boolean | undefined> & IoOpts) => {
      if (inputs[0] === "merge") return selectMerge(inputs.slice(1), o);
      if (inputs.length !== 1) throw new TersorError("E_RANGE", "tersor select needs one input (or `tersor select merge <scores...> --input <input> --budget B`)");
      const input = inputs[0]!;
      const method = o["method"] as (typeof SELECT_METHODS)[number];
      if (!SELECT_METHODS.includes(method)) throw new TersorError("E_RANGE", `--method must be one of ${SELECT_METHODS.join(", ")}, got "${method}"`);
      const seed = intOpt(o["seed"] as string, "seed", 0)!;
      const level = intOpt(o["level"] as string, "level", 0)!;
      const docs = await loadDocs(input, o);
      const target = await loadTarget(o["target"] as string | undefined, o);
      if (o.shard) {
        if (!isShardable(method))
          throw new TersorError("E_RANGE", `--shard is not supported for --method ${method}: it needs the whole pool at once; shardable methods: ${SHARDABLE_METHODS.join(", ")}`);
        if (!o["scores"]) throw new TersorError("E_RANGE", "--shard needs --scores <path> (merge them with `tersor select merge`)");
        const shard = await selectShard(docs, target, {
          method,
          seed,
          level,
          model: o["model"] as string | undefined,
          maxTokens: intOpt(o["maxTokens"] as string, "max-tokens", 2),
          perplexityKeep: o["perplexityKeep"] as "low" | "target",
        });
        await writeSelectShard(o["scores"] as string, shard);
        process.stdout.write(`shard ${o.shard}: ${docs.length} documents -> ${o["scores"]}\n`);
        return;
      }
      if (!o["out"]) throw new TersorError("E_RANGE", "--out <path> is required");
      const r = await runSelect(docs, target, {
        method,
        budget: o["budget"] as string | undefined,
        seed,
        optimizer: o["optimizer"] as "naive" | "lazy" | "stochastic",
        level,
        embed: o["embed"] as string,
        model: o["model"] as string | undefined,
        maxTokens: intOpt(o["maxTokens"] as string, "max-tokens", 2),
        perplexityKeep: o["perplexityKeep"] as "low" | "target",
        epochs: intOpt(o["epochs"] as string, "epochs", 1),
      });
      const kept = new Set(r.kept);
      const n = await writeKept(o["out"] as string, docs, (i) => kept.has(i), (i) => ({ score: r.scores[i] ?? null, reason: r.reasons[i] }));
      const summary: Record<string, unknown> = { method, documents: docs.length, selected: n, ...r.details };
      if (o["report"]) {
        const perDomain = (idx: Iterable<number>) => {
          const c: Record<string, number> = {};
          for (const i of idx) c[docs[i]!.domain || "(none)"] = (c[docs[i]!.domain || "(none)"] ?? 0) + 1;
          return c;
        };
        const baseline = selectRandom(docs.map((d) => d.id), Math.max(1, r.kept.length), seed + 1).indices;
        const sel = r.kept.map((i) => docs[i]!.text);
        const base = baseline.map((i) => docs[i]!.text);
        if (sel.length >= 2) {
          const [ds, db] = [await diversity(sel), await diversity(base)];
          summary["kde_entropy_selected"] = ds.kdeEntropy;
          summary["kde_entropy_random"] = db.kdeEntropy;
          summary["mean_nn_distance_selected"] = ds.meanNnDistance;
          summary["mean_nn_distance_random"] = db.meanNnDistance;
          summary["novelsum_selected"] = ds.novelSum;
          summary["novelsum_random"] = db.novelSum;
        }
        if (target && sel.length) {
          const align = async (t: string[]) => (await zipfitScores(t, target.slice(0, 50), level)).reduce((a, b) => a + b, 0) / t.length;
          summary["target_alignment_selected"] = await align(sel);
          summary["target_alignment_random"] = await align(base);
        }
        const dropped = docs.map((_, i) => i).filter((i) => !kept.has(i));
        await writeReport(o["report"] as string, {
          title: `tersor select --method ${method} ${input}`,
          summary,
          charts: { "kept per domain": perDomain(r.kept), "dropped per domain": perDomain(dropped), ...(r.details["ruleCounts"] ? { "rule failures": r.details["ruleCounts"] as Record<string, number> } : {}) },
        });
      }
      process.stdout.write(o["json"] ? JSON.stringify(summary) + "\n" : Object.entries(summary).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n") + "\n");
    });

}
