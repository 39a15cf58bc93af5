/** `tersor distill cache | train`. */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";

import type { Command } from "commander";
import { TersorError, setNumThreads, writeFileAtomic } from "@tersor/core";
import { CORPUS_NAMES, corpus } from "@tersor/corpora";
import {
  type CacheTeacher,
  type DistillTrainOptions,
  type LmEvaluation,
  TeacherCache,
  byteStream,
  chooseVocabulary,
  condense,
  dataFingerprint,
  distillTrain,
  evaluateLm,
  parseCacheMode,
  parseLossSpec,
  remapTokens,
  restrictLogits,
  tokenCounts,
  trimCheckpoint,
  writeTeacherCache,
} from "@tersor/distill";
import { BYTE_EOS, BYTE_VOCAB_SIZE, type DataSource, type Model, type TrainOptions, type TrainResult, loadDomains, loadModel, train } from "@tersor/model";
import { intOpt, numOpt } from "../options.js";



function temperatureOpt(v: string | undefined, name = "temperature"): number | undefined {
  const t = numOpt(v, name);
  if (t !== undefined && !(t > 0)) throw new TersorError("E_RANGE", `--${name} must be > 0, got ${t}`);
  return t;
}

function applyThreads(cmd: Command): void {
  const n = intOpt(cmd.optsWithGlobals<{ threads?: string }>().threads, "threads", 0);
  if (n !== undefined) setNumThreads(n);
}

/** A loaded model as a cache teacher reading tersor's byte-level training stream. */
function byteTeacher(model: Model, what: string): CacheTeacher {
  if (model.tokenizer.eosId !== BYTE_EOS || model.vocabSize < BYTE_VOCAB_SIZE) {
    throw new TersorError("E_RANGE", `${what}: distillation over tersor's training stream needs a byte-level teacher (byte tokenizer, EOS ${BYTE_EOS}); this one has EOS ${String(model.tokenizer.eosId)} and ${model.vocabSize} tokens`);
  }
  return { vocabSize: model.vocabSize, maxLength: model.maxLength, prefixToken: BYTE_EOS, forward: (t) => model.forward(t) };
}

/** Held-out text of the data sources: the test split of corpora, the validation split otherwise. */
async function heldOut(data: DataSource[], maxChars: number): Promise<{ texts: string[]; split: string }> {
  const texts: string[] = [];
  let split = "test";
  for (const s of data) {
    const src = typeof s === "string" ? s : "source" in s && typeof s.source === "string" ? s.source : undefined;
    if (src?.startsWith("corpus:") && CORPUS_NAMES.includes(src.slice(7))) {
      for await (const d of corpus(src.slice(7)).docs({ split: "test" })) texts.push(d.text);
    } else {
      split = "validation";
      const [d] = await loadDomains([s]);
      const dec = new TextDecoder();
      const v = d!.validation;
      for (let i = 0; i + 1 < v.starts.length; i++) texts.push(dec.decode(Uint8Array.from(v.tokens.subarray(v.starts[i]!, v.starts[i + 1]! - 1))));
    }
  }
  let left = maxChars;
  const out: string[] = [];
  for (const t of texts) {
    if (left <= 0) break;
    out.push(t.slice(0, left));
    left -= t.length;
  }
  if (out.length === 0) throw new TersorError("E_RANGE", "no held-out text to evaluate on (the data has no test or validation documents)");
  return { texts: out, split };
}

/** Batched logits of an inference model (one forward per sequence). */
function modelLogits(m: Model) {
  return async (x: Int32Array, b: number, l: number) => {
    const out = new Float32Array(b * l * m.vocabSize);
    for (let i = 0; i < b; i++) out.set((await m.forward(x.subarray(i * l, (i + 1) * l))).data, i * l * m.vocabSize);
    return out;
  };
}

function evalRow(e: LmEvaluation) {
  return { bitsPerByte: e.bitsPerByte, lossPerToken: e.loss, ece: e.ece, accuracy: e.accuracy, tokens: e.tokens };
}

export function registerDistill(program: Command): void {
  const distill = program.command("distill").description("knowledge distillation: teacher-logit caches and student training");

  distill
    .command("cache <teacher>")
    .description("run a teacher once over the data and store its next-token distributions sparsely (top-k or random-sampling KD)")
    .requiredOption("--data <sources...>", "training data: corpus:<name>, JSONL files or globs (the same as `distill train --data`)")
    .requiredOption("--mode <mode>", "topk:K (ids + log-probs + tail mass) or sample:K (K draws, ids + importance weights: unbiased)")
    .requiredOption("--out <dir>", "cache directory (an interrupted run resumes when run again with the same options)")
    .option("--temperature <t>", "teacher temperature", "1")
    .option("--proposal-temperature <t>", "sample mode: draw from p^(1/t) instead of p (importance-weighted)", "1")
    .option("--seed <n>", "sampling seed", "0")
    .option("--compression <c>", "deflate, brotli or none (Node 20's zlib has no zstd)", "deflate")
    .option("--shard-docs <n>", "documents per shard (the unit of resumption)", "256")
    .option("--json", "print one JSON object")
    .action(async (teacherPath: string, o: { data: string[]; mode: string; out: string; temperature: string; proposalTemperature: string; seed: string; compression: string; shardDocs: string; json?: boolean }, cmd: Command) => {
      applyThreads(cmd);
      const { mode, k } = parseCacheMode(o.mode);
      const temperature = temperatureOpt(o.temperature)!;
      const proposalTemperature = temperatureOpt(o.proposalTemperature, "proposal-temperature")!;
      if (o.compression !== "deflate" && o.compression !== "brotli" && o.compression !== "none") throw new TersorError("E_RANGE", `--compression must be deflate, brotli or none, got "${o.compression}"`);
      const model = await loadModel(teacherPath);
      const teacher = byteTeacher(model, teacherPath);
      const domains = await loadDomains(o.data);
      // One concatenated stream; each domain is a section of documents.
      let total = 0;
      let docs = 0;
      for (const d of domains) {
        total += d.train.tokens.length;
        docs += d.train.starts.length - 1;
      }
      const tokens = new Uint16Array(total);
      const starts = new Uint32Array(docs + 1);
      const sections: { name: string; firstDoc: number; docCount: number }[] = [];
      let tp = 0;
      let dp = 0;
      for (const d of domains) {
        const n = d.train.starts.length - 1;
        sections.push({ name: d.name, firstDoc: dp, docCount: n });
        tokens.set(d.train.tokens, tp);
        for (let i = 0; i < n; i++) starts[dp + i] = tp + d.train.starts[i]!;
        tp += d.train.tokens.length;
        dp += n;
      }
      starts[docs] = tp;
      const t0 = performance.now();
      const s = await writeTeacherCache(teacher, { tokens, starts }, {
        dir: o.out,
        mode,
        k,
        temperature,
        proposalTemperature,
        seed: intOpt(o.seed, "seed", 0)!,
        compression: o.compression,
        shardDocs: intOpt(o.shardDocs, "shard-docs", 1)!,
        prefixToken: BYTE_EOS,
        sections,
        meta: { teacher: teacherPath, data: o.data, fingerprint: dataFingerprint(domains) },
      });
      const m = s.manifest;
      const report = {
        dir: o.out,
        mode: o.mode,
        temperature,
        documents: m.documents,
        positions: m.positions,
        shards: m.shards.length,
        shardsWritten: s.shardsWritten,
        shardsSkipped: s.shardsSkipped,
        bytes: m.shards.reduce((a, x) => a + x.bytes, 0),
        bytesPerToken: m.bytesPerToken,
        rawBytesPerToken: m.rawBytesPerToken,
        denseF32BytesPerToken: model.vocabSize * 4,
        seconds: (performance.now() - t0) / 1000,
      };
      if (o.json) process.stdout.write(JSON.stringify(report) + "\n");
      else
        process.stdout.write(
          `${o.out}: ${m.positions} positions of ${m.documents} documents in ${m.shards.length} shards (${s.shardsSkipped} already complete), ` +
            `${report.bytesPerToken!.toFixed(2)} bytes/token on disk (${report.rawBytesPerToken!.toFixed(1)} raw; dense f32 logits: ${report.denseF32BytesPerToken})\n`,
        );
    });

  distill
    .command("train")
    .description("train a student against a teacher cache or a teacher model (through the trainer's loss hook), and evaluate it")
    .requiredOption("--student <config|checkpoint>", "a model-shape JSON file ({arch, dim, layers, heads, contextLength, …}) or a checkpoint directory")
    .requiredOption("--data <sources...>", "training data (the same as the cache's)")
    .option("--cache <dir>", "teacher-logit cache written by `tersor distill cache`")
    .option("--teacher <model>", "teacher model run on the fly")
    .option("--loss <spec>", "fkl, rkl, gkd:β, tv, ttm, wttm, mixce:η", "fkl")
    .option("--alpha <a>", "weight of the KD term (1 − alpha weighs CE on the next token)", "0.5")
    .option("--temperature <t>", "distillation temperature", "1")
    .option("--tail <tail>", "top-k cache tail: zero or uniform", "zero")
    .requiredOption("--steps <n>", "optimizer steps")
    .option("--batch-tokens <n>", "tokens per step", "4096")
    .option("--seq-len <n>", "sequence length (default: the student's context)")
    .option("--lr <x>", "peak learning rate", "0.001")
    .option("--seed <n>", "seed (initialisation and data order)", "0")
    .option("--out <dir>", "checkpoint directory")
    .option("--compare-ce", "also train the same student with CE only for the same steps and seed, and compare")
    .option("--eval-chars <n>", "held-out characters to evaluate on", "20000")
    .option("--json", "print one JSON object")
    .action(async (o: Record<string, string | string[] | boolean | undefined>, cmd: Command) => {
      applyThreads(cmd);
      const str = (k: string) => o[k] as string | undefined;
      parseLossSpec(str("loss")!);
      const alpha = numOpt(str("alpha"), "alpha")!;
      if (alpha < 0 || alpha > 1) throw new TersorError("E_RANGE", `--alpha must be in [0, 1], got ${alpha}`);
      const temperature = temperatureOpt(str("temperature"))!;
      const tail = str("tail");
      if (tail !== "zero" && tail !== "uniform") throw new TersorError("E_RANGE", `--tail must be zero or uniform, got "${tail}"`);
      if ((str("cache") === undefined) === (str("teacher") === undefined)) throw new TersorError("E_RANGE", "give exactly one of --cache <dir> and --teacher <model>");
      const studentPath = str("student")!;
      let model: TrainOptions["model"];
      let isDir = false;
      try {
        isDir = (await stat(studentPath)).isDirectory();
      } catch (e) {
        throw new TersorError("E_IO", `--student ${studentPath}: ${(e as Error).message}`);
      }
      if (isDir) model = { fromCheckpoint: studentPath };
      else {
        try {
          model = JSON.parse(await readFile(studentPath, "utf8")) as TrainOptions["model"];
        } catch (e) {
          throw new TersorError("E_FORMAT", `--student ${studentPath}: not a JSON model shape: ${(e as Error).message}`);
        }
      }
      const data = o["data"] as string[];
      const teacherModel = str("teacher") !== undefined ? await loadModel(str("teacher")!) : undefined;
      const common = {
        model,
        data,
        steps: intOpt(str("steps"), "steps", 1)!,
        batchTokens: intOpt(str("batchTokens"), "batch-tokens", 1)!,
        ...(str("seqLen") !== undefined ? { seqLen: intOpt(str("seqLen"), "seq-len", 1)! } : {}),
        lr: numOpt(str("lr"), "lr")!,
        seed: intOpt(str("seed"), "seed", 0)!,
      };
      const opts: DistillTrainOptions = {
        ...common,
        ...(str("out") !== undefined ? { out: str("out")! } : {}),
        loss: str("loss")!,
        alpha,
        temperature,
        tail,
        ...(str("cache") !== undefined ? { cache: str("cache")! } : { teacher: byteTeacher(teacherModel!, str("teacher")!) }),
      };
      const t0 = performance.now();
      const kd = await distillTrain(opts);
      const kdSeconds = (performance.now() - t0) / 1000;
      const seqLen = common.seqLen ?? kd.config.maxPositions;
      const { texts, split } = await heldOut(data, intOpt(str("evalChars"), "eval-chars", 1)!);
      const stream = byteStream(texts);
      const evalTrainable = (r: TrainResult) => evaluateLm((x, b, l) => r.model.forwardLogits(x, b, l), kd.config.vocabSize, stream, seqLen);
      const report: Record<string, unknown> = {
        loss: str("loss"),
        alpha,
        temperature,
        source: kd.distill.source,
        path: kd.distill.path,
        steps: kd.step,
        parameters: kd.parameterCount,
        evalSplit: split,
        student: { ...evalRow(await evalTrainable(kd)), seconds: kdSeconds },
      };
      if (o["compareCe"]) {
        const t1 = performance.now();
        const ce = await train({ ...common, progress: "silent" });
        const ceSeconds = (performance.now() - t1) / 1000;
        report["ce"] = { ...evalRow(await evalTrainable(ce)), seconds: ceSeconds };
        // Median optimizer-step time of KD (teacher targets included) over CE-only, same steps and batches.
        const medianStep = (r: TrainResult) => {
          const t = r.steps.map((x) => x.tokens / x.tokensPerSecond).sort((x, y) => x - y);
          return t[Math.floor(t.length / 2)]!;
        };
        report["stepSeconds"] = { kd: medianStep(kd), ce: medianStep(ce) };
        report["kdOverheadVsCe"] = medianStep(kd) / medianStep(ce) - 1;
      }
      let tm = teacherModel;
      if (!tm && str("cache") !== undefined) {
        const c = await TeacherCache.open(str("cache")!);
        const name = c.manifest.meta["teacher"];
        await c.close();
        if (typeof name === "string") tm = await loadModel(name).catch(() => undefined);
      }
      if (tm) {
        const m = tm;
        report["teacher"] = {
          parameters: m.parameterCount,
          ...evalRow(await evaluateLm(modelLogits(m), m.vocabSize, stream, Math.min(seqLen, m.maxLength))),
        };
      }
      if (kd.out !== undefined) report["out"] = kd.out;
      if (o["json"]) process.stdout.write(JSON.stringify(report) + "\n");
      else {
        const line = (name: string, e: unknown) => {
          const r = e as { bitsPerByte: number; ece: number; accuracy: number };
          return `  ${name.padEnd(8)} ${r.bitsPerByte.toFixed(4)} bits/byte  ECE ${r.ece.toFixed(4)}  top-1 ${(100 * r.accuracy).toFixed(1)}%\n`;
        };
        process.stdout.write(`distilled ${kd.parameterCount} parameters for ${kd.step} steps (${str("loss")}, alpha ${alpha}, T ${temperature}, from the ${kd.distill.source}); ${split} split:\n`);
        process.stdout.write(line("student", report["student"]));
        if (report["ce"]) process.stdout.write(line("CE only", report["ce"]));
        if (report["teacher"]) process.stdout.write(line("teacher", report["teacher"]));
      }
    });

  distill
    .command("condense <model>")
    .description("select a subset of documents standing for the corpus: k-means representatives (DREAM), kernel-herding distribution matching, and a random subset of the same size, scored by MMD² in the model's embedding space")
    .requiredOption("--data <sources...>", "documents (train split): corpus:<name>, JSONL files or globs")
    .requiredOption("--size <m>", "documents to select")
    .option("--max-docs <n>", "embed at most this many documents (the first ones)", "2000")
    .option("--seed <n>", "seed (k-means++ and the random subset)", "0")
    .option("--out <dir>", "write <method>.jsonl with the selected documents")
    .option("--json", "print one JSON object")
    .action(async (modelPath: string, o: { data: string[]; size: string; maxDocs: string; seed: string; out?: string; json?: boolean }, cmd: Command) => {
      applyThreads(cmd);
      const m = intOpt(o.size, "size", 1)!;
      const model = await loadModel(modelPath);
      const domains = await loadDomains(o.data);
      const maxDocs = intOpt(o.maxDocs, "max-docs", 1)!;
      const dec = new TextDecoder();
      const texts: string[] = [];
      const vecs: Float32Array[] = [];
      for (const d of domains) {
        const st = d.train;
        for (let i = 0; i + 1 < st.starts.length && texts.length < maxDocs; i++) {
          const ids = Int32Array.from(st.tokens.subarray(st.starts[i]!, Math.min(st.starts[i + 1]! - 1, st.starts[i]! + model.maxLength)));
          if (ids.length === 0) continue;
          texts.push(dec.decode(Uint8Array.from(st.tokens.subarray(st.starts[i]!, st.starts[i + 1]! - 1))));
          vecs.push((await model.hiddenStates(ids, { pool: "mean" }))[0]!.data);
        }
      }
      if (m > texts.length) throw new TersorError("E_RANGE", `--size ${m} exceeds the ${texts.length} documents embedded`);
      const dim = vecs[0]!.length;
      const data = new Float32Array(texts.length * dim);
      vecs.forEach((v, i) => data.set(v, i * dim));
      const r = condense({ data, n: texts.length, d: dim }, m, { seed: intOpt(o.seed, "seed", 0)! });
      if (o.out !== undefined) {
        for (const [method, v] of Object.entries(r)) await writeFileAtomic(join(o.out, `${method}.jsonl`), v.indices.map((i) => JSON.stringify({ id: `doc${i}`, text: texts[i] })).join("\n") + "\n");
      }
      const report = { documents: texts.length, size: m, mmd2: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.mmd2])), indices: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.indices])) };
      if (o.json) process.stdout.write(JSON.stringify(report) + "\n");
      else for (const [k, v] of Object.entries(r)) process.stdout.write(`${k.padEnd(8)} MMD² to the corpus ${v.mmd2.toExponential(3)}\n`);
    });

  distill
    .command("trim <model>")
    .description("vocabulary trimming: keep the tokens the target corpus uses, slice embeddings and LM head, write the id map; report size saved and the bits-per-byte change")
    .requiredOption("--data <sources...>", "target corpus: corpus:<name>, JSONL files or globs")
    .requiredOption("--out <dir>", "trimmed checkpoint directory")
    .option("--min-count <n>", "keep ids seen at least this often in the target's train split", "1")
    .option("--max-size <n>", "keep at most this many ids (the most frequent)")
    .option("--eval-chars <n>", "held-out characters to evaluate on", "20000")
    .option("--json", "print one JSON object")
    .action(async (modelPath: string, o: { data: string[]; out: string; minCount: string; maxSize?: string; evalChars: string; json?: boolean }, cmd: Command) => {
      applyThreads(cmd);
      const model = await loadModel(modelPath);
      byteTeacher(model, modelPath);
      const domains = await loadDomains(o.data);
      const counts = tokenCounts(domains.map((d) => d.train.tokens), model.vocabSize);
      const specials = [model.tokenizer.bosId, model.tokenizer.eosId, model.tokenizer.padId].filter((x): x is number => typeof x === "number");
      const maxSize = intOpt(o.maxSize, "max-size", 1);
      const trim = chooseVocabulary(counts, { minCount: intOpt(o.minCount, "min-count", 1)!, always: specials, ...(maxSize !== undefined ? { maxSize } : {}) });
      const sizes = await trimCheckpoint(model.source.path, o.out, trim);
      const { texts, split } = await heldOut(o.data, intOpt(o.evalChars, "eval-chars", 1)!);
      const stream = byteStream(texts);
      const before = await evaluateLm(modelLogits(model), model.vocabSize, stream, model.maxLength);
      let after: LmEvaluation | undefined;
      let unrepresentable = 0;
      for (const t of stream.tokens) if (trim.oldToNew[t]! < 0) unrepresentable++;
      if (unrepresentable === 0) {
        const back = (x: Int32Array) => Int32Array.from(x, (t) => trim.kept[t]!);
        const inner = modelLogits(model);
        after = await evaluateLm(async (x, b, l) => restrictLogits(await inner(back(x), b, l), model.vocabSize, trim), trim.kept.length, { tokens: remapTokens(stream.tokens, trim) }, model.maxLength, { isByte: (t) => trim.kept[t]! < 256 });
      }
      const report = {
        out: o.out,
        ...sizes,
        bytesSaved: sizes.bytesBefore - sizes.bytesAfter,
        evalSplit: split,
        bitsPerByteBefore: before.bitsPerByte,
        bitsPerByteAfter: after?.bitsPerByte ?? null,
        ...(unrepresentable > 0 ? { unrepresentableTokens: unrepresentable } : {}),
      };
      if (o.json) process.stdout.write(JSON.stringify(report) + "\n");
      else
        process.stdout.write(
          `${o.out}: vocabulary ${sizes.vocabBefore} → ${sizes.vocabAfter}, ${report.bytesSaved} bytes saved (${((100 * report.bytesSaved) / sizes.bytesBefore).toFixed(1)}%); ` +
            `${split} bits/byte ${before.bitsPerByte.toFixed(4)} → ${after ? after.bitsPerByte.toFixed(4) : `n/a (${unrepresentable} held-out tokens were trimmed)`}\n`,
        );
    });
}
