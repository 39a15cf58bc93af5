import { readFileSync } from "node:fs";
import { join } from "node:path";

import { Tokenizer as HfImpl } from "@huggingface/tokenizers";
import { CORPUS_NAMES, corpus } from "@tersor/corpora";
import { afterAll, describe, expect, it } from "vitest";

import { BYTE_BOS, BYTE_EOS, BYTE_PAD, HfTokenizer, StreamDecoder, byteTokenizer, byteTokenizerJson, loadTokenizer, saveByteTokenizer } from "../src/index.js";
import { byteTokenizerJson as fixtureByteTokenizerJson } from "./fixtures.js";
import { QWEN3_DIR, tempDir } from "./helpers.js";

const tmp = tempDir("tok");
afterAll(() => tmp.cleanup());


const SAMPLES = [
  "",
  "Hello, world!",
  "naïve café — “quotes” – ½ ≠ ∞",
  "日本語のテキスト、中文文本，한국어",
  "emoji 😀👍🏽 and ZWJ 👩‍👩‍👧",
  "tabs\tand\r\nCRLF\nand  double  spaces   \u0000\u0001\u007f",
  "<|bos|> special-token text <|eos|> stays bytes",
];

async function firstDocs(n: number): Promise<{ domain: string; text: string }[]> {
  const out: { domain: string; text: string }[] = [];
  for (const name of CORPUS_NAMES) {
    let k = 0;
    for await (const d of corpus(name).docs()) {
      out.push({ domain: name, text: d.text });
      if (++k >= n) break;
    }
  }
  return out;
}

describe("byte-level tokenizer", () => {
  const tok = byteTokenizer();

  it("encodes a string to exactly its UTF-8 bytes and decodes back", () => {
    for (const s of SAMPLES) {
      const ids = tok.encode(s);
      expect(ids).toEqual([...Buffer.from(s, "utf8")]);
      expect(tok.decode(ids)).toBe(s);
    }
  });

  it("has BOS/EOS/PAD at 256/257/258, skipped when decoding unless asked", () => {
    expect([tok.bosId, tok.eosId, tok.padId, tok.vocabSize]).toEqual([BYTE_BOS, BYTE_EOS, BYTE_PAD, 259]);
    expect(tok.decode([256, 72, 105, 257, 258])).toBe("Hi");
    expect(tok.decode([256, 72, 105, 257], { skipSpecialTokens: false })).toBe("<|bos|>Hi<|eos|>");
    expect(tok.isSpecial(257)).toBe(true);
    expect(tok.isSpecial(65)).toBe(false);
    expect(() => tok.decode([259])).toThrow(/outside the byte-level vocabulary/);
  });

  it("round-trips the first documents of every bundled corpus domain", async () => {
    const docs = await firstDocs(3);
    expect(new Set(docs.map((d) => d.domain)).size).toBe(CORPUS_NAMES.length);
    for (const d of docs) {
      const ids = tok.encode(d.text);
      expect(ids.length).toBe(Buffer.byteLength(d.text, "utf8"));
      expect(tok.decode(ids)).toBe(d.text);
    }
  });

  it("src's tokenizer.json has the fixture's layout and loads in @huggingface/tokenizers with the same ids", async () => {
    expect(byteTokenizerJson()).toEqual(fixtureByteTokenizerJson());
    await saveByteTokenizer(tmp.dir);
    const hf = await loadTokenizer(tmp.dir);
    expect([hf.bosId, hf.eosId, hf.padId, hf.vocabSize]).toEqual([256, 257, 258, 259]);
    const docs = await firstDocs(1);
    for (const s of [...SAMPLES.slice(0, -1), ...docs.map((d) => d.text)]) {
      expect(hf.encode(s)).toEqual(tok.encode(s));
      expect(hf.decode(hf.encode(s))).toBe(s);
    }
    // The raw library agrees too.
    const raw = new HfImpl(JSON.parse(readFileSync(join(tmp.dir, "tokenizer.json"), "utf8")), {});
    expect(raw.encode("héllo").ids).toEqual([...Buffer.from("héllo")]);
  });
});

describe("Hugging Face tokenizer.json (Qwen3)", () => {
  it("round-trips real text from every corpus domain", async () => {
    const qwen = await loadTokenizer(QWEN3_DIR);
    expect(qwen).toBeInstanceOf(HfTokenizer);
    expect(qwen.vocabSize).toBeGreaterThanOrEqual(151669);
    expect(qwen.eosId).toBe(qwen.encode("<|im_end|>")[0]);
    expect(qwen.bosId).toBeUndefined();
    const docs = await firstDocs(2);
    for (const s of [...SAMPLES.slice(1, -1), ...docs.map((d) => d.text)]) {
      const ids = qwen.encode(s);
      expect(ids.length).toBeLessThan(Buffer.byteLength(s) + 1);
      expect(qwen.decode(ids)).toBe(s);
    }
    expect(qwen.encode("Hello world")).toEqual([9707, 1879]);
  });
});

describe("StreamDecoder", () => {
  it("holds back unfinished UTF-8 and emits each character once", () => {
    const tok = byteTokenizer();
    const s = "a😀b日本";
    const sd = new StreamDecoder(tok);
    const parts = tok.encode(s).map((id) => sd.push(id));
    expect(parts.join("") + sd.flush()).toBe(s);
    expect(parts.filter((p) => p.length > 0)).toEqual(["a", "😀", "b", "日", "本"]);
  });

  it("reassembles word pieces of a BPE tokenizer with context from the prompt", async () => {
    const qwen = await loadTokenizer(QWEN3_DIR);
    const text = "The whale, the 🐋 whale — 白鯨.";
    const ids = qwen.encode(text);
    const sd = new StreamDecoder(qwen, qwen.encode("Prompt:"));
    let out = "";
    for (const id of ids) out += sd.push(id);
    expect(out + sd.flush()).toBe(text);
  });
});
