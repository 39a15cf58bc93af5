#!/usr/bin/env node
// Trains tersor's reference models (@tersor/models: ref-tiny, ref-small) from a fixed seed on the
// train split of every bundled corpus, writes them into packages/models/<name>/ (config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json, loss.svg, README.md) and computes the
// model card's figures: test-split bits per byte per domain by `tersor eval ppl`, next to a
// byte-unigram baseline fitted on the train split.
//
//   node tools/train-reference-models.mjs [ref-tiny|ref-small|all] [--threads N] [--steps N]
//
// The full training state (optimizer, loader, log) stays in out/ref-training/<name>/; running the
// command again resumes there (exactly), so an interrupted run loses at most `checkpointEvery` steps;
// on a finished run it only recomputes the release files and the model card.
// Needs the built packages and addon (`npm run build`).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { corpus } from "@tersor/corpora";
import { byteUnigramBitsPerByte, readTrainerState } from "@tersor/model";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages", "cli", "dist", "bin.js");
const DOMAINS = ["sotu", "moby", "email-ham", "email-spam", "wordnet"];

/** The recipes: everything that decides the weights. */
const RECIPES = {
  "ref-tiny": {
    model: { arch: "llama", dim: 128, layers: 2, heads: 4, kvHeads: 2, intermediate: 352, contextLength: 256, tieEmbeddings: false },
    steps: 1500,
    batchTokens: 16 * 128,
    seqLen: 128,
    lr: 5e-3,
    minLr: 5e-4,
    warmup: 50,
    evalEvery: 250,
    checkpointEvery: 250,
  },
  "ref-small": {
    model: { arch: "llama", dim: 256, layers: 8, heads: 8, kvHeads: 4, intermediate: 688, contextLength: 256, tieEmbeddings: true },
    steps: 1000,
    batchTokens: 8 * 256,
    seqLen: 256,
    lr: 3e-3,
    minLr: 3e-4,
    warmup: 50,
    evalEvery: 200,
    checkpointEvery: 100,
  },
};
const COMMON = { schedule: "cosine", weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1, seed: 20261204, gradAccum: 1, evalTokens: 8192 };

function parseArgs(argv) {
  const a = { names: [], threads: undefined, steps: undefined };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === "--threads") a.threads = Number(argv[++i]);
    else if (x === "--steps") a.steps = Number(argv[++i]);
    else if (x === "all") a.names.push(...Object.keys(RECIPES));
    else if (x in RECIPES) a.names.push(x);
    else throw new Error(`unknown argument ${x}; usage: train-reference-models.mjs [ref-tiny|ref-small|all] [--threads N] [--steps N]`);
  }
  if (a.names.length === 0) a.names.push(...Object.keys(RECIPES));
  return a;
}

function log(msg) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** UTF-8 bytes of every document of a split. */
async function splitBytes(name, split) {
  const enc = new TextEncoder();
  const out = [];
  for await (const d of corpus(name).docs({ split })) out.push(enc.encode(d.text));
  return out;
}

async function unigramBaseline() {
  const r = {};
  for (const d of DOMAINS) r[d] = byteUnigramBitsPerByte(await splitBytes(d, "train"), await splitBytes(d, "test"));
  return r;
}

function evalPpl(dir, domain, threads) {
  const args = [cli, ...(threads !== undefined ? ["--threads", String(threads)] : []), "eval", "ppl", dir, "--data", `corpus:${domain}`, "--split", "test", "--json"];
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20, env: { ...process.env, TERSOR_PROGRESS: "silent" } });
  if (r.status !== 0) throw new Error(`tersor eval ppl ${domain} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

function card(name, recipe, info) {
  const m = recipe.model;
  const rows = DOMAINS.map((d) => `| \`${d}\` | ${fmt(info.bpb[d])} | ${fmt(info.unigram[d])} | ${fmt(info.unigram[d] - info.bpb[d])} |`).join("\n");
  const meanModel = DOMAINS.reduce((a, d) => a + info.bpb[d], 0) / DOMAINS.length;
  const meanUni = DOMAINS.reduce((a, d) => a + info.unigram[d], 0) / DOMAINS.length;
  return `# ${name}

A byte-level Llama-architecture language model trained by tersor itself, from seed ${COMMON.seed}, on the
**train split** of every corpus bundled in \`@tersor/corpora\` (${DOMAINS.map((d) => `\`${d}\``).join(", ")}).
It is a standard Hugging Face checkpoint (\`LlamaForCausalLM\` config, f32 \`model.safetensors\`, a
byte-level \`tokenizer.json\`): \`transformers\` can load it, and tersor loads it by path or by name
(\`loadModel("${name}")\`, \`tersor eval ppl ${name} …\`).

## Model

| | |
|---|---|
| architecture | Llama: RMSNorm (ε 1e-5), RoPE (θ 10000, NeoX layout), SwiGLU MLP, grouped-query attention |
| hidden size | ${m.dim} |
| layers | ${m.layers} |
| attention heads / key-value heads | ${m.heads} / ${m.kvHeads} (head dimension ${m.dim / m.heads}) |
| MLP width | ${m.intermediate} |
| context length | ${m.contextLength} |
| vocabulary | 259: bytes 0–255, BOS 256, EOS 257, PAD 258 |
| tied embeddings | ${m.tieEmbeddings ? "yes" : "no"} |
| **parameters** | **${info.parameters.toLocaleString("en-US")}** |

## Training recipe

- Data: the train split (90 % of documents, by the corpora's id hash) of ${DOMAINS.join(", ")};
  each document UTF-8 encoded and followed by EOS, packed into windows of ${recipe.seqLen + 1} tokens
  (inputs ${recipe.seqLen}, targets shifted by one), a fresh document order per epoch.
- Mixture: **uniform over the five domains** (each sequence's domain drawn with probability 1/5),
  not by size: the small domains (Moby-Dick) are seen more often than their share of bytes.
- Optimizer: AdamW (β₁ ${COMMON.beta1}, β₂ ${COMMON.beta2}, ε ${COMMON.eps}, decoupled weight decay ${COMMON.weightDecay}
  on matrices only), global-norm gradient clipping at ${COMMON.maxGradNorm}, f32 master weights.
- Learning rate: linear warmup over ${recipe.warmup} steps to ${recipe.lr}, cosine decay to ${recipe.minLr} at step ${recipe.steps}.
- Batch: ${recipe.batchTokens.toLocaleString("en-US")} tokens per step (${recipe.batchTokens / recipe.seqLen} sequences × ${recipe.seqLen}), ${recipe.steps.toLocaleString("en-US")} steps:
  **${info.tokensSeen.toLocaleString("en-US")} tokens seen**.
- Seed ${COMMON.seed} (initialisation: normal(0, 0.02), output projections scaled by 1/√(2·layers); data order and mixture draws).
- Wall time: ${info.wallMinutes !== undefined ? `${fmt(info.wallMinutes, 1)} minutes` : "not recorded"} on ${info.threads ?? "the default number of"} thread(s) of a shared 2-core machine.
- Final training loss ${fmt(info.finalLoss, 4)} nats/token; the loss curve is in [loss.svg](loss.svg).

Reproduce (resumes from \`out/ref-training/${name}\` when interrupted):

\`\`\`sh
npm run build
node tools/train-reference-models.mjs ${name}${info.threads !== undefined ? ` --threads ${info.threads}` : ""}
\`\`\`

## Evaluation: test-split bits per byte

Computed by \`tersor eval ppl ${name} --data corpus:<domain> --split test --json\` (lm-evaluation-harness
rolling windows of ${info.window} tokens). The baseline is a byte-unigram model: the byte frequencies of
the domain's train split (add-one smoothed), scored on the same test split.

| domain | ${name} bits/byte | byte-unigram bits/byte | gain |
|---|---:|---:|---:|
${rows}
| **mean** | **${fmt(meanModel)}** | **${fmt(meanUni)}** | **${fmt(meanUni - meanModel)}** |

## Licence

The weights are derived from the bundled corpora; see their licences in \`@tersor/corpora\`'s README
(public-domain State of the Union addresses and Moby-Dick, the SpamAssassin public corpus, WordNet 3.1).
Code: Apache-2.0.
`;
}

async function trainOne(name, args) {
  const recipe = { ...RECIPES[name] };
  if (args.steps !== undefined) recipe.steps = args.steps;
  const work = join(root, "out", "ref-training", name);
  const dest = join(root, "packages", "models", name);
  let wallMinutes;
  const before = await readTrainerState(work).catch(() => undefined);
  const finished = before !== undefined && before.step === recipe.steps;
  {
    // Also when training is finished: the command then only rewrites train_log.jsonl and loss.svg/png.
    const config = { ...COMMON, ...recipe, data: DOMAINS.map((d) => `corpus:${d}`) };
    mkdirSync(work, { recursive: true });
    const cfgPath = join(dirname(work), `${name}.train.json`);
    writeFileSync(cfgPath, JSON.stringify(config, null, 2) + "\n");
    const cmd = [...(args.threads !== undefined ? ["--threads", String(args.threads)] : []), "train", "--config", cfgPath, "--out", work, "--resume", "--json"];
    log(`${name}: tersor ${cmd.join(" ")}`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [cli, ...cmd], { cwd: root, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, TERSOR_PROGRESS: process.stderr.isTTY ? "bar" : "json" } });
    if (r.status !== 0) throw new Error(`tersor train exited with ${r.status}`);
    if (!finished) {
      wallMinutes = (Date.now() - t0) / 60000;
      log(`${name}: trained in ${wallMinutes.toFixed(1)} min`);
    }
  }
  const state = await readTrainerState(work);
  if (!state || state.step !== recipe.steps) throw new Error(`${work}: no finished training state (step ${state?.step} of ${recipe.steps})`);
  // Release files, swapped in whole.
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(work, f), join(tmp, f));
  copyFileSync(join(work, "loss.svg"), join(tmp, "loss.svg"));
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);

  log(`${name}: byte-unigram baseline`);
  const unigram = await unigramBaseline();
  const bpb = {};
  let window = 0;
  for (const d of DOMAINS) {
    log(`${name}: tersor eval ppl ${name} --data corpus:${d} --split test --json`);
    const r = evalPpl(name, d, args.threads);
    bpb[d] = r.bits_per_byte;
    window = r.window;
    log(`${name}: ${d} ${r.bits_per_byte.toFixed(4)} bits/byte (unigram ${unigram[d].toFixed(4)})`);
  }
  const cfg = JSON.parse(readFileSync(join(dest, "config.json"), "utf8"));
  const info = {
    parameters: paramCount(cfg),
    tokensSeen: state.tokensSeen,
    finalLoss: state.log.steps[state.log.steps.length - 1]?.loss,
    wallMinutes: wallMinutes ?? readMeta(dest)?.wallMinutes,
    threads: args.threads,
    bpb,
    unigram,
    window,
  };
  writeFileSync(join(dest, "README.md"), card(name, recipe, info));
  writeFileSync(join(dest, "card.json"), JSON.stringify({ name, recipe: { ...COMMON, ...recipe }, ...info }, null, 2) + "\n");
  log(`${name}: wrote ${relative(root, dest)}`);
}

function readMeta(dest) {
  try {
    return JSON.parse(readFileSync(join(dest, "card.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** Parameters of a Llama config (tied embedding counted once). */
function paramCount(c) {
  const C = c.hidden_size;
  const hd = c.head_dim ?? C / c.num_attention_heads;
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const layer = 2 * C + C * q + 2 * C * kv + q * C + 3 * C * c.intermediate_size;
  return c.vocab_size * C * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * layer + C;
}

const args = parseArgs(process.argv.slice(2));
for (const name of args.names) await trainOne(name, args);
