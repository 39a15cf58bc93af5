/** `tersor generate`, `tersor embed` and `tersor eval ppl`: running models loaded by @tersor/model. */
import { basename } from "node:path";

import type { Command } from "commander";
import { TersorError, progress, readJsonl, setNumThreads, writeJsonl } from "@tersor/core";
import { CORPUS_NAMES, checkSplit, corpus } from "@tersor/corpora";
import { type EvalDocument, type PerplexityResult, evaluatePerplexity } from "@tersor/eval";
import { type LoadModelOptions, type Model, loadModel } from "@tersor/model";
import { intOpt, numOpt } from "../options.js";

/** Options every model command takes. */
interface ModelOpts {
  tokenizer?: string;
  dtype?: string;
}



function applyThreads(cmd: Command): void {
  const t = cmd.optsWithGlobals<{ threads?: string }>().threads;
  const n = intOpt(t, "threads", 0);
  if (n !== undefined) setNumThreads(n);
}

async function openModel(path: string, o: ModelOpts): Promise<Model> {
  const opts: LoadModelOptions = {};
  if (o.tokenizer !== undefined) opts.tokenizer = o.tokenizer;
  if (o.dtype !== undefined) {
    if (o.dtype !== "f32" && o.dtype !== "f16" && o.dtype !== "bf16") throw new TersorError("E_RANGE", `--dtype must be f32, f16 or bf16, got "${o.dtype}"`);
    opts.dtype = o.dtype;
  }
  const model = await loadModel(path, opts);
  for (const w of model.warnings) process.stderr.write(`tersor: warning: ${w}\n`);
  return model;
}

function withModelOptions(cmd: Command): Command {
  return cmd
    .option("--tokenizer <path>", "tokenizer.json (or a directory holding one) instead of the model's own")
    .option("--dtype <dtype>", "round the weights to f32, f16 or bf16 when loading (default: as stored)");
}

/** Text of one JSONL record's field, or an error naming the line. */
function textOf(rec: unknown, field: string, line: number, file: string): string {
  const v = typeof rec === "object" && rec !== null ? (rec as Record<string, unknown>)[field] : undefined;
  if (typeof v !== "string") throw new TersorError("E_FORMAT", `${file}: record ${line} has no string field "${field}" (choose one with --text-field)`);
  return v;
}

/** Documents of `corpus:<name>` (one split) or of a JSONL file (`domain` field when present). */
async function* evalDocs(data: string, o: { split: string; textField: string; maxDocs?: number }): AsyncGenerator<EvalDocument> {
  let n = 0;
  if (o.maxDocs === 0) return;
  if (data.startsWith("corpus:")) {
    const name = data.slice("corpus:".length);
    if (!CORPUS_NAMES.includes(name)) throw new TersorError("E_RANGE", `unknown corpus "${name}"; known: ${CORPUS_NAMES.join(", ")}`);
    for await (const d of corpus(name).docs({ split: checkSplit(o.split) })) {
      yield { text: d.text, domain: d.domain };
      if (o.maxDocs !== undefined && ++n >= o.maxDocs) return;
    }
    return;
  }
  let line = 0;
  for await (const rec of readJsonl<unknown>(data)) {
    line++;
    const text = textOf(rec, o.textField, line, data);
    const domain = (rec as Record<string, unknown>)["domain"];
    yield typeof domain === "string" ? { text, domain } : { text, domain: basename(data) };
    if (o.maxDocs !== undefined && ++n >= o.maxDocs) return;
  }
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e6 ? x.toExponential(3) : x.toFixed(4);
}

/** The per-domain table of `tersor eval ppl`. */
export function perplexityTable(r: PerplexityResult): string {
  const head = ["domain", "docs", "tokens", "bytes", "bits/byte", "byte ppl", "word ppl", "bits/char", "token ppl"];
  const row = (name: string, m: PerplexityResult["domains"][string]) => [
    name,
    String(m.totals.documents),
    String(m.totals.tokens),
    String(m.totals.bytes),
    fmt(m.bits_per_byte),
    fmt(m.byte_perplexity),
    fmt(m.word_perplexity),
    fmt(m.bits_per_char),
    fmt(m.token_perplexity),
  ];
  const rows = [head, ...Object.entries(r.domains).map(([d, m]) => row(d, m))];
  if (Object.keys(r.domains).length > 1) rows.push(row("all", { ...r, totals: r.totals }));
  const widths = head.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  const lines = rows.map((x) => x.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  const how = r.stride === null ? `rolling windows of ${r.window} tokens` : `strided windows of ${r.window} tokens, stride ${r.stride}`;
  return [...lines, "", `${how}; ${r.totals.tokens} tokens scored`].join("\n") + "\n";
}

/** Registers `tersor generate`, `tersor embed` and `tersor eval ppl`. */
export function registerModel(program: Command): void {
  withModelOptions(
    program
      .command("generate")
      .description("generate text with a model (Hugging Face directory, GGUF file or registered name), streamed to stdout")
      .argument("<model>", "model directory, .gguf file or model name")
      .requiredOption("--prompt <text>", "the prompt")
      .option("--max-tokens <n>", "most new tokens", "128")
      .option("--temperature <t>", "0 = greedy", "0")
      .option("--top-k <k>", "sample among the k most likely tokens")
      .option("--top-p <p>", "sample within the nucleus of probability p")
      .option("--seed <n>", "seed of the sampler (same seed, same text)")
      .option("--stop <text...>", "stop at any of these strings"),
  ).action(
    async (
      path: string,
      o: ModelOpts & { prompt: string; maxTokens: string; temperature: string; topK?: string; topP?: string; seed?: string; stop?: string[] },
      cmd: Command,
    ) => {
      applyThreads(cmd);
      const opts = {
        maxTokens: intOpt(o.maxTokens, "max-tokens", 0)!,
        temperature: numOpt(o.temperature, "temperature")!,
        ...(o.topK !== undefined ? { topK: intOpt(o.topK, "top-k", 0)! } : {}),
        ...(o.topP !== undefined ? { topP: numOpt(o.topP, "top-p")! } : {}),
        ...(o.seed !== undefined ? { seed: intOpt(o.seed, "seed", 0)! } : {}),
        ...(o.stop !== undefined ? { stop: o.stop } : {}),
      };
      const model = await openModel(path, o);
      for await (const c of model.generate(o.prompt, opts)) if (c.text) process.stdout.write(c.text);
      process.stdout.write("\n");
    },
  );

  withModelOptions(
    program
      .command("embed")
      .description("embed each document of a JSONL file: the mean-pooled last hidden state (after the final norm), written as JSONL")
      .argument("<model>", "model directory, .gguf file or model name")
      .requiredOption("--data <jsonl>", "input JSON Lines file (.gz allowed)")
      .option("--text-field <name>", "the field holding the text", "text")
      .option("--out <file>", "output JSONL, written atomically (default: stdout)"),
  ).action(async (path: string, o: ModelOpts & { data: string; textField: string; out?: string }, cmd: Command) => {
    applyThreads(cmd);
    const model = await openModel(path, o);
    const bar = progress({ label: "embed", unit: "docs" });
    let truncated = 0;
    async function* records(): AsyncGenerator<Record<string, unknown>> {
      let line = 0;
      for await (const rec of readJsonl<unknown>(o.data)) {
        line++;
        const text = textOf(rec, o.textField, line, o.data);
        let ids = model.encode(text);
        if (ids.length === 0) ids = [model.prefixToken];
        if (ids.length > model.maxLength) {
          ids = ids.slice(0, model.maxLength);
          truncated++;
        }
        const [e] = await model.hiddenStates(ids, { pool: "mean" });
        const id = (rec as Record<string, unknown>)["id"];
        bar.tick();
        yield { ...(id !== undefined ? { id } : { index: line - 1 }), tokens: ids.length, embedding: Array.from(e!.data) };
      }
    }
    try {
      if (o.out !== undefined) {
        const n = await writeJsonl(o.out, records());
        bar.stop();
        process.stderr.write(`tersor: wrote ${n} embeddings of dimension ${model.config.hidden} to ${o.out}\n`);
      } else {
        for await (const r of records()) process.stdout.write(JSON.stringify(r) + "\n");
        bar.stop();
      }
    } catch (e) {
      bar.stop();
      throw e;
    }
    if (truncated > 0) process.stderr.write(`tersor: warning: ${truncated} document(s) were cut to the model's ${model.maxLength} tokens\n`);
  });

  const evalCmd = program.commands.find((c) => c.name() === "eval") ?? program.command("eval").description("measure models: perplexity and bits per byte");
  withModelOptions(
    evalCmd
      .command("ppl")
      .description("perplexity, bits per byte and bits per character of a model on a corpus or a JSONL file (lm-evaluation-harness's definitions)")
      .argument("<model>", "model directory, .gguf file or model name")
      .requiredOption("--data <source>", `corpus:<name> (${CORPUS_NAMES.join(", ")}) or a JSONL file`)
      .option("--split <split>", "corpus split", "test")
      .option("--text-field <name>", "JSONL: the field holding the text", "text")
      .option("--window <n>", "model inputs per window (default: 512, or the model's context length when shorter)")
      .option("--stride <n>", "strided windows advancing by n tokens (default: lm-eval's rolling disjoint windows)")
      .option("--batch-size <n>", "windows per scoring call", "8")
      .option("--max-docs <n>", "score only the first n documents")
      .option("--json", "print one JSON object"),
  ).action(
    async (
      path: string,
      o: ModelOpts & { data: string; split: string; textField: string; window?: string; stride?: string; batchSize: string; maxDocs?: string; json?: boolean },
      cmd: Command,
    ) => {
      applyThreads(cmd);
      const maxDocs = intOpt(o.maxDocs, "max-docs", 0);
      const stride = intOpt(o.stride, "stride", 1);
      const batchSize = intOpt(o.batchSize, "batch-size", 1)!;
      let window = intOpt(o.window, "window", 2);
      checkSplit(o.split);
      const model = await openModel(path, o);
      window ??= Math.min(model.maxLength, 512);
      const r = await evaluatePerplexity(model.scorer(), evalDocs(o.data, { split: o.split, textField: o.textField, ...(maxDocs !== undefined ? { maxDocs } : {}) }), {
        window,
        batchSize,
        ...(stride !== undefined ? { stride } : {}),
      });
      if (o.json) {
        const domains: Record<string, unknown> = {};
        for (const [d, m] of Object.entries(r.domains)) {
          domains[d] = {
            bits_per_byte: m.bits_per_byte,
            byte_perplexity: m.byte_perplexity,
            word_perplexity: m.word_perplexity,
            bits_per_char: m.bits_per_char,
            token_perplexity: m.token_perplexity,
            ...m.totals,
          };
        }
        const out = {
          model: model.source.path,
          data: o.data,
          ...(o.data.startsWith("corpus:") ? { split: o.split } : {}),
          bits_per_byte: r.bits_per_byte,
          byte_perplexity: r.byte_perplexity,
          word_perplexity: r.word_perplexity,
          bits_per_char: r.bits_per_char,
          token_perplexity: r.token_perplexity,
          ...r.totals,
          window: r.window,
          stride: r.stride,
          domains,
        };
        process.stdout.write(JSON.stringify(out, null, 2) + "\n");
      } else process.stdout.write(perplexityTable(r));
    },
  );
}
