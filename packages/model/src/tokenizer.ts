/**
 * Tokenizers: Hugging Face `tokenizer.json` through @huggingface/tokenizers, and tersor's built-in
 * byte-level tokenizer (256 byte tokens + BOS/EOS/PAD) for models without one.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";

import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { TersorError, writeFileAtomic } from "@tersor/core";

import { isFile, readJsonFile } from "./files.js";

/** What a model needs from a tokenizer. */
export interface Tokenizer {
  /** "byte": the built-in byte-level tokenizer; "huggingface": a tokenizer.json. */
  readonly kind: "byte" | "huggingface";
  /** One past the largest token id. */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  /** Token ids of `text`; with `addSpecialTokens`, as the tokenizer's post-processor adds them (e.g. Llama's BOS). Default false. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; special tokens are left out unless `skipSpecialTokens` is false. */
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  /** True for special (added, control) tokens. */
  isSpecial(id: number): boolean;
}

/** Ids of the byte-level tokenizer's special tokens. */
export const BYTE_BOS = 256;
export const BYTE_EOS = 257;
export const BYTE_PAD = 258;
/** Vocabulary of the byte-level tokenizer: 256 bytes + BOS, EOS, PAD. */
export const BYTE_VOCAB_SIZE = 259;
const BYTE_SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>"] as const;

/**
 * GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for themselves, the others are
 * shifted to U+0100 and up, so every byte has a visible one-character token.
 */
function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/**
 * The byte-level tokenizer as a standard `tokenizer.json`: a BPE model without merges over the 256
 * byte tokens (GPT-2's ByteLevel pre-tokenizer and decoder, no regex split) and the added special
 * tokens `<|bos|>` (256), `<|eos|>` (257), `<|pad|>` (258).
 */
export function byteTokenizerJson(): Record<string, unknown> {
  const chars = byteToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: BYTE_SPECIALS.map((s, i) => special(256 + i, s)),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** The `tokenizer_config.json` that goes with {@link byteTokenizerJson}. */
export function byteTokenizerConfigJson(): Record<string, unknown> {
  return { bos_token: "<|bos|>", eos_token: "<|eos|>", pad_token: "<|pad|>", model_max_length: 1 << 20, clean_up_tokenization_spaces: false, tokenizer_class: "PreTrainedTokenizerFast" };
}

/** Writes the byte-level tokenizer.json and tokenizer_config.json into `dir` (atomically). */
export async function saveByteTokenizer(dir: string): Promise<void> {
  await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
  await writeFileAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(byteTokenizerConfigJson(), null, 2));
}

/**
 * tersor's built-in byte-level tokenizer: a string encodes to exactly its UTF-8 bytes (special-token
 * strings in the text are bytes too), ids 256/257/258 are BOS/EOS/PAD. Decoding invalid UTF-8 gives
 * U+FFFD, as `TextDecoder` does. Equivalent to loading {@link byteTokenizerJson} with
 * @huggingface/tokenizers, except that special-token strings inside the text stay bytes.
 */
export class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize = BYTE_VOCAB_SIZE;
  readonly bosId = BYTE_BOS;
  readonly eosId = BYTE_EOS;
  readonly padId = BYTE_PAD;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  encode(text: string): number[] {
    return Array.from(this.enc.encode(text));
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length > 0) out += this.dec.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= BYTE_VOCAB_SIZE) throw new TersorError("E_RANGE", `token id ${id} is outside the byte-level vocabulary [0, ${BYTE_VOCAB_SIZE})`);
      if (id < 256) bytes.push(id);
      else if (!skip) {
        flush();
        out += BYTE_SPECIALS[id - 256]!;
      }
    }
    flush();
    return out;
  }

  isSpecial(id: number): boolean {
    return id >= 256 && id < BYTE_VOCAB_SIZE;
  }
}

/** The built-in byte-level tokenizer. */
export function byteTokenizer(): ByteTokenizer {
  return new ByteTokenizer();
}

/** A special token in tokenizer_config.json: a string or an AddedToken object. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

/** A Hugging Face tokenizer.json, run by @huggingface/tokenizers. */
export class HfTokenizer implements Tokenizer {
  readonly kind = "huggingface" as const;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  private readonly tok: HfTokenizerImpl;
  private readonly special: Set<number>;

  /** From the parsed tokenizer.json and tokenizer_config.json (may be `{}`). */
  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}, where = "tokenizer.json") {
    try {
      this.tok = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TersorError("E_FORMAT", `${where}: cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.special = new Set<number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) this.special.add(id);
    const idOf = (key: string) => {
      const c = tokenContent(tokenizerConfig[key]);
      return c === undefined ? undefined : this.tok.token_to_id(c);
    };
    this.bosId = idOf("bos_token");
    this.eosId = idOf("eos_token");
    this.padId = idOf("pad_token");
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return "";
    return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }
}

/**
 * Loads a tokenizer from a `tokenizer.json` file or a directory holding one (with its
 * `tokenizer_config.json` beside it, when present).
 */
export async function loadTokenizer(path: string): Promise<HfTokenizer> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new TersorError("E_IO", `cannot open tokenizer ${path}: no such file or directory`, { cause: e });
  }
  const file = st.isDirectory() ? join(path, "tokenizer.json") : path;
  const dir = st.isDirectory() ? path : join(path, "..");
  if (!(await isFile(file))) throw new TersorError("E_IO", `cannot open tokenizer: ${file} does not exist`);
  const json = await readJsonFile(file);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new TersorError("E_FORMAT", `${file}: must be a JSON object`);
  const cfgPath = join(dir, "tokenizer_config.json");
  const cfg = (await isFile(cfgPath)) ? await readJsonFile(cfgPath) : {};
  return new HfTokenizer(json, typeof cfg === "object" && cfg !== null && !Array.isArray(cfg) ? (cfg as Record<string, unknown>) : {}, file);
}

/**
 * Incremental detokenization for streaming: `push` returns the text a new token completes (empty
 * while a multi-byte character or a word-piece is unfinished). Decodes a short window of the
 * latest tokens, like text-generation-inference's `decode_token`.
 */
export class StreamDecoder {
  private ids: number[];
  private prefix = 0;
  private read: number;

  /** `context`: the last few prompt tokens, so leading-space rules see what came before. */
  constructor(
    private readonly tok: Tokenizer,
    context: readonly number[] = [],
  ) {
    this.ids = context.slice(-5);
    this.read = this.ids.length;
  }

  push(id: number): string {
    this.ids.push(id);
    const before = this.tok.decode(this.ids.slice(this.prefix, this.read));
    const now = this.tok.decode(this.ids.slice(this.prefix));
    if (now.length > before.length && !now.endsWith("\uFFFD")) {
      this.prefix = this.read;
      this.read = this.ids.length;
      this.trim();
      return now.slice(before.length);
    }
    return "";
  }

  /** Whatever text is still held back (an unfinished character decodes as U+FFFD). */
  flush(): string {
    const before = this.tok.decode(this.ids.slice(this.prefix, this.read));
    const now = this.tok.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return now.length > before.length ? now.slice(before.length) : "";
  }

  private trim(): void {
    if (this.prefix > 64) {
      this.ids = this.ids.slice(this.prefix);
      this.read -= this.prefix;
      this.prefix = 0;
    }
  }
}
