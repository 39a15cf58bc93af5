/** The CLI commands over built dist/: tersor generate, tersor embed, tersor eval ppl. */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { loadModel } from "../src/index.js";
import { writeModelDir } from "./fixtures.js";
import { CONFIGS, QWEN3_DIR, editConfig, tempDir, writeArch } from "./helpers.js";
import { type LlamaLikeConfig, randomWeights } from "./reference.js";

const BIN = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../cli/dist/bin.js");

function tersor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20, env: { ...process.env, TERSOR_PROGRESS: "silent" } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      res({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

const tmp = tempDir("cli");
afterAll(() => tmp.cleanup());
let byteDir: string;
let qwenDir: string;
let docs: string;

const TEXTS = [
  "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse.",
  "There now is your insular city of the Manhattoes, belted round by wharves as Indian isles by coral reefs.",
  "Circumambulate the city of a dreamy Sabbath afternoon. Go from Corlears Hook to Coenties Slip.",
];

beforeAll(() => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with \`npx tsc -b tsconfig.json\``);
  byteDir = join(tmp.dir, "byte-qwen2");
  writeArch(byteDir, "qwen2", { seed: 5 });
  // A Qwen2-shaped model with the real Qwen3 tokenizer: a vocabulary of 151680, hidden size 32.
  qwenDir = join(tmp.dir, "qwen3-tok");
  const cfg: LlamaLikeConfig = { ...(CONFIGS["qwen2"] as LlamaLikeConfig), vocab_size: 151680, num_hidden_layers: 1, max_position_embeddings: 256 };
  writeModelDir(qwenDir, cfg, randomWeights(cfg, 9));
  copyFileSync(join(QWEN3_DIR, "tokenizer.json"), join(qwenDir, "tokenizer.json"));
  copyFileSync(join(QWEN3_DIR, "tokenizer_config.json"), join(qwenDir, "tokenizer_config.json"));
  editConfig(qwenDir, (c) => {
    c["bos_token_id"] = 151643;
    c["eos_token_id"] = 151643;
  });
  docs = join(tmp.dir, "docs.jsonl");
  writeFileSync(docs, TEXTS.map((text, i) => JSON.stringify({ id: `d${i}`, text, domain: i === 2 ? "b" : "a" })).join("\n") + "\n");
});

interface PplJson {
  bits_per_byte: number;
  byte_perplexity: number;
  word_perplexity: number;
  bits_per_char: number;
  token_perplexity: number;
  tokens: number;
  bytes: number;
  documents: number;
  domains: Record<string, { bits_per_byte: number; documents: number }>;
}

describe("tersor eval ppl", () => {
  it("a byte-level model over corpus:moby --max-docs 3: about log2(vocab) bits per byte", async () => {
    const r = await tersor("eval", "ppl", byteDir, "--data", "corpus:moby", "--max-docs", "3", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as PplJson;
    for (const k of ["bits_per_byte", "byte_perplexity", "word_perplexity", "bits_per_char", "token_perplexity", "domains"]) expect(j).toHaveProperty(k);
    expect(j.documents).toBe(3);
    expect(j.tokens).toBe(j.bytes); // one token per byte
    expect(Math.abs(j.bits_per_byte - Math.log2(300))).toBeLessThan(1);
    expect(j.byte_perplexity).toBeCloseTo(2 ** j.bits_per_byte, 6);
    expect(j.token_perplexity).toBeCloseTo(j.byte_perplexity, 6);
    expect(Object.keys(j.domains)).toEqual(["moby"]);
  });

  it("the table form lists each domain", async () => {
    const r = await tersor("eval", "ppl", byteDir, "--data", docs, "--window", "64", "--stride", "32");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^domain\s+docs\s+tokens\s+bytes\s+bits\/byte/);
    expect(lines.some((l) => /^a\s+2\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^b\s+1\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^all\s+3\s/.test(l))).toBe(true);
    expect(r.stdout).toContain("strided windows of 64 tokens, stride 32");
  });

  it("a Qwen2-shaped model with the Qwen3 tokenizer (151680 tokens) gives sane numbers", async () => {
    const r = await tersor("eval", "ppl", qwenDir, "--data", docs, "--window", "32", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as PplJson;
    expect(j.documents).toBe(3);
    expect(j.tokens).toBeLessThan(j.bytes / 2); // real BPE merges
    // A random model is about uniform over its vocabulary: token perplexity ≈ 151680.
    expect(Math.abs(Math.log(j.token_perplexity) - Math.log(151680))).toBeLessThan(1);
    expect(j.bits_per_byte).toBeCloseTo((Math.log2(j.token_perplexity) * j.tokens) / j.bytes, 6);
    expect(Object.keys(j.domains).sort()).toEqual(["a", "b"]);
  });

  it("fails cleanly on an unsupported model and on an unknown corpus", async () => {
    const bad = join(tmp.dir, "bert");
    writeArch(bad, "qwen2");
    editConfig(bad, (c) => (c["model_type"] = "bert"));
    const r = await tersor("eval", "ppl", bad, "--data", docs);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/E_FORMAT: .*model_type "bert" .*not supported.*llama, mistral, qwen2, gpt2/);
    const r2 = await tersor("eval", "ppl", byteDir, "--data", "corpus:nope");
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('unknown corpus "nope"');
  });
});

describe("tersor generate and tersor embed", () => {
  it("generate streams the greedy continuation", async () => {
    const model = await loadModel(qwenDir);
    const want = await model.generateText("The whale", { maxTokens: 8 });
    const r = await tersor("generate", qwenDir, "--prompt", "The whale", "--max-tokens", "8");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(want.text + "\n");
    const s1 = await tersor("generate", byteDir, "--prompt", "Hi", "--max-tokens", "6", "--temperature", "1", "--top-k", "20", "--seed", "3");
    const s2 = await tersor("generate", byteDir, "--prompt", "Hi", "--max-tokens", "6", "--temperature", "1", "--top-k", "20", "--seed", "3");
    expect(s1.code).toBe(0);
    expect(s1.stdout).toBe(s2.stdout);
    const bad = await tersor("generate", byteDir, "--prompt", "Hi", "--temperature", "hot");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--temperature");
  });

  it("embed writes one mean-pooled last hidden state per document, atomically", async () => {
    const out = join(tmp.dir, "emb.jsonl");
    const r = await tersor("embed", byteDir, "--data", docs, "--out", out);
    expect(r.code).toBe(0);
    const rows = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; tokens: number; embedding: number[] });
    expect(rows.map((x) => x.id)).toEqual(["d0", "d1", "d2"]);
    const model = await loadModel(byteDir);
    for (const [i, row] of rows.entries()) {
      expect(row.embedding).toHaveLength(32);
      expect(row.tokens).toBe(Buffer.byteLength(TEXTS[i]!));
      const [e] = await model.hiddenStates(model.encode(TEXTS[i]!));
      for (let c = 0; c < 32; c++) expect(row.embedding[c]).toBeCloseTo(e!.data[c]!, 5);
    }
    const missing = await tersor("embed", byteDir, "--data", docs, "--text-field", "body", "--out", join(tmp.dir, "never.jsonl"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no string field "body"');
    expect(existsSync(join(tmp.dir, "never.jsonl"))).toBe(false);
  });
});
