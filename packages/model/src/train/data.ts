/**
 * Training data: sources (bundled corpora, JSONL files, inline texts) → byte-level token streams per
 * domain (train and validation splits), and a deterministic loader that packs documents (EOS after
 * each) into fixed-length sequences and samples each sequence's domain by the mixture weights with
 * tersor's seeded `Rng` (@tersor/core). The loader's whole state is a few integers, kept in the checkpoint,
 * so a resumed run draws exactly the batches an uninterrupted one would.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";

import { Rng, TersorError, readJsonl } from "@tersor/core";
import { CORPUS_NAMES, corpus, splitOf } from "@tersor/corpora";
import { z } from "zod";

import { BYTE_EOS } from "../tokenizer.js";

/** Documents of one split, tokenised and concatenated: document `i` is `tokens[starts[i] .. starts[i+1])` (its EOS included). */
export interface TokenStream {
  tokens: Uint16Array;
  starts: Uint32Array;
  /** UTF-8 bytes of the texts (EOS tokens not counted). */
  bytes: number;
}

/** One named domain with its train and validation streams. */
export interface DomainData {
  name: string;
  train: TokenStream;
  validation: TokenStream;
}

/** A data source in code: inline texts (all train unless `validationTexts` are given). */
export const TextsSourceSchema = z.strictObject({
  name: z.string().min(1),
  texts: z.array(z.string()).min(1),
  validationTexts: z.array(z.string()).optional(),
});

/** One data source: `corpus:<name>`, a JSONL file or a glob (`*`/`?` in the file name), or an object naming the domain. */
export const DataSourceSchema = z.union([
  z.string().min(1),
  z.strictObject({
    /** Domain name (default: the corpus name, or the first file's name without extension). */
    name: z.string().min(1).optional(),
    /** `corpus:<name>`, or JSONL files / globs. */
    source: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** JSONL: the field holding the text (default "text"). */
    textField: z.string().min(1).optional(),
  }),
  TextsSourceSchema,
]);
export type DataSource = z.input<typeof DataSourceSchema>;

const enc = new TextEncoder();

/** Accumulates documents into a {@link TokenStream}. */
class StreamBuilder {
  private chunks: Uint8Array[] = [];
  private lengths: number[] = [];
  bytes = 0;
  add(text: string): void {
    const b = enc.encode(text);
    this.chunks.push(b);
    this.lengths.push(b.length + 1);
    this.bytes += b.length;
  }
  get docs(): number {
    return this.chunks.length;
  }
  build(): TokenStream {
    let total = 0;
    for (const n of this.lengths) total += n;
    const tokens = new Uint16Array(total);
    const starts = new Uint32Array(this.chunks.length + 1);
    let p = 0;
    this.chunks.forEach((c, i) => {
      starts[i] = p;
      tokens.set(c, p);
      p += c.length;
      tokens[p++] = BYTE_EOS;
    });
    starts[this.chunks.length] = p;
    this.chunks = [];
    return { tokens, starts, bytes: this.bytes };
  }
}

function globToRegExp(pattern: string): RegExp {
  const esc = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  return new RegExp(`^${esc}$`);
}

/** Files of a path or a glob with `*` / `?` in its last segment, sorted; none → `E_IO`. */
export async function expandGlob(pattern: string): Promise<string[]> {
  const name = basename(pattern);
  if (!/[*?]/.test(name)) {
    try {
      if (!(await stat(pattern)).isFile()) throw new Error("not a file");
    } catch {
      throw new TersorError("E_IO", `training data ${pattern}: no such file`);
    }
    return [pattern];
  }
  const dir = dirname(pattern);
  if (/[*?]/.test(dir)) throw new TersorError("E_RANGE", `training data ${pattern}: wildcards are supported in the file name only`);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    throw new TersorError("E_IO", `training data ${pattern}: no such directory ${dir}`);
  }
  const re = globToRegExp(name);
  const files = entries.filter((e) => re.test(e)).sort().map((e) => join(dir, e));
  if (files.length === 0) throw new TersorError("E_IO", `training data ${pattern}: no file matches`);
  return files;
}

/** Reads one source into a domain (train and validation by the corpora's id-hash split; the test split is never read). */
export async function loadDomain(source: DataSource): Promise<DomainData> {
  const train = new StreamBuilder();
  const val = new StreamBuilder();
  if (typeof source === "object" && "texts" in source) {
    for (const t of source.texts) train.add(t);
    for (const t of source.validationTexts ?? []) val.add(t);
    return { name: source.name, train: train.build(), validation: val.build() };
  }
  const spec = typeof source === "string" ? { source } : source;
  const paths = Array.isArray(spec.source) ? spec.source : [spec.source];
  const first = paths[0]!;
  if (first.startsWith("corpus:")) {
    if (paths.length > 1) throw new TersorError("E_RANGE", `training data: a corpus source names one corpus, got ${paths.join(", ")}`);
    const cname = first.slice("corpus:".length);
    if (!CORPUS_NAMES.includes(cname)) throw new TersorError("E_RANGE", `training data: unknown corpus "${cname}"; known: ${CORPUS_NAMES.join(", ")}`);
    const c = corpus(cname);
    for await (const d of c.docs({ split: "train" })) train.add(d.text);
    for await (const d of c.docs({ split: "validation" })) val.add(d.text);
    return { name: spec.name ?? cname, train: train.build(), validation: val.build() };
  }
  const field = spec.textField ?? "text";
  const files: string[] = [];
  for (const p of paths) files.push(...(await expandGlob(p)));
  for (const file of files) {
    let line = 0;
    for await (const rec of readJsonl<unknown>(file)) {
      line++;
      const obj = typeof rec === "object" && rec !== null ? (rec as Record<string, unknown>) : undefined;
      const text = obj?.[field];
      if (typeof text !== "string") throw new TersorError("E_FORMAT", `${file}: record ${line} has no string field "${field}"`);
      const id = typeof obj!["id"] === "string" ? (obj!["id"] as string) : `${basename(file)}#${line}`;
      const s = splitOf(id);
      if (s === "train") train.add(text);
      else if (s === "validation") val.add(text);
    }
  }
  return { name: spec.name ?? (basename(first, extname(first)).replace(/[*?]/g, "") || "data"), train: train.build(), validation: val.build() };
}

/** Loads every source; duplicate domain names, unknown `domains` or an empty train split → `E_RANGE`. */
export async function loadDomains(sources: readonly DataSource[], only?: readonly string[]): Promise<DomainData[]> {
  const out: DomainData[] = [];
  for (const s of sources) {
    const d = await loadDomain(s);
    if (out.some((o) => o.name === d.name)) throw new TersorError("E_RANGE", `training data: two sources are named "${d.name}"; give them distinct names`);
    out.push(d);
  }
  let picked = out;
  if (only !== undefined) {
    const unknown = only.filter((n) => !out.some((d) => d.name === n));
    if (unknown.length > 0) throw new TersorError("E_RANGE", `training data: unknown domain(s) ${unknown.join(", ")}; the sources give ${out.map((d) => d.name).join(", ")}`);
    picked = only.map((n) => out.find((d) => d.name === n)!);
  }
  for (const d of picked) {
    if (d.train.tokens.length < 2) throw new TersorError("E_RANGE", `training data: domain "${d.name}" has no training text (empty data)`);
  }
  return picked;
}

/** Weights by domain name or in domain order → a normalised Float64Array; bad weights → `E_RANGE`. */
export function normaliseWeights(weights: Record<string, number> | readonly number[] | undefined, domains: readonly string[]): Float64Array {
  const w = new Float64Array(domains.length);
  if (weights === undefined) w.fill(1);
  else if (Array.isArray(weights)) {
    if (weights.length !== domains.length) throw new TersorError("E_RANGE", `weights: ${weights.length} values for ${domains.length} domains (${domains.join(", ")})`);
    weights.forEach((v, i) => (w[i] = v));
  } else {
    for (const [k, v] of Object.entries(weights)) {
      const i = domains.indexOf(k);
      if (i < 0) throw new TersorError("E_RANGE", `weights: unknown domain "${k}"; the domains are ${domains.join(", ")}`);
      w[i] = v;
    }
  }
  let sum = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v) || v < 0) throw new TersorError("E_RANGE", `weights: the weight of "${domains[i]}" must be a finite non-negative number, got ${v}`);
    sum += v;
  }
  if (!(sum > 0)) throw new TersorError("E_RANGE", `weights: must sum to a positive value, got ${sum}`);
  for (let i = 0; i < w.length; i++) w[i] = w[i]! / sum;
  return w;
}

/** Where a domain's reading position is: the epoch, the place in that epoch's document order, the token offset in the document. */
/** A piece of a packed window: `length` tokens of train document `doc` from `offset` (see {@link PackedLoader.next}). */
export interface LoaderSegment {
  doc: number;
  offset: number;
  length: number;
}

export interface DomainCursor {
  epoch: number;
  docPos: number;
  offset: number;
}

/** The loader's state: enough to reproduce every later batch. */
export interface LoaderState {
  /** Domain draws made so far. */
  draws: number;
  cursors: Record<string, DomainCursor>;
  /** Per domain: train tokens and documents, to refuse a resume on other data. */
  fingerprint: Record<string, { tokens: number; docs: number }>;
}

const U64 = (1n << 64n) - 1n;

/** Seed of domain `d`'s document order in `epoch`. */
function orderSeed(seed: number, d: number, epoch: number): bigint {
  return (BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(d + 1) * 0xbf58476d1ce4e5b9n + BigInt(epoch) * 0x94d049bb133111ebn) & U64;
}

/**
 * Packs each domain's documents (EOS after each) into non-overlapping windows of `seqLen + 1`
 * tokens (inputs are the first `seqLen`, targets the last `seqLen`); a window runs on across
 * document boundaries and into the next epoch. Every epoch reads the documents in a fresh order
 * (a Fisher–Yates shuffle seeded by seed, domain and epoch). The domain of each sequence is drawn
 * from the weights with one `nextF64` of an `Rng` (@tersor/core) seeded with `seed`.
 */
export class PackedLoader {
  private readonly rng: Rng;
  private draws = 0;
  private readonly cursors: DomainCursor[];
  private readonly orders: Array<{ epoch: number; order: Uint32Array } | undefined>;

  constructor(
    readonly domains: readonly DomainData[],
    readonly seqLen: number,
    readonly seed: number,
  ) {
    this.rng = new Rng(seed);
    this.cursors = domains.map(() => ({ epoch: 0, docPos: 0, offset: 0 }));
    this.orders = domains.map(() => undefined);
  }

  get names(): string[] {
    return this.domains.map((d) => d.name);
  }

  private order(d: number, epoch: number): Uint32Array {
    const cached = this.orders[d];
    if (cached && cached.epoch === epoch) return cached.order;
    const n = this.domains[d]!.train.starts.length - 1;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const r = new Rng(orderSeed(this.seed, d, epoch));
    for (let i = n - 1; i > 0; i--) {
      const j = r.nextBelow(i + 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    this.orders[d] = { epoch, order };
    return order;
  }

  /** Draws a domain index by the (normalised) weights. */
  sampleDomain(weights: Float64Array): number {
    const u = this.rng.nextF64();
    this.draws++;
    let acc = 0;
    let last = 0;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i]! <= 0) continue;
      last = i;
      acc += weights[i]!;
      if (u < acc) return i;
    }
    return last;
  }

  /**
   * Fills `out` (length `seqLen + 1`) with the next window of domain `d`; `segments`, when given,
   * receives the (document, offset, length) pieces the window was cut from, in order.
   */
  fill(d: number, out: Int32Array | Uint16Array, at = 0, segments?: LoaderSegment[]): void {
    const { tokens, starts } = this.domains[d]!.train;
    const c = this.cursors[d]!;
    const nDocs = starts.length - 1;
    let need = this.seqLen + 1;
    let p = at;
    while (need > 0) {
      const order = this.order(d, c.epoch);
      const doc = order[c.docPos]!;
      const s = starts[doc]!;
      const len = starts[doc + 1]! - s;
      const take = Math.min(need, len - c.offset);
      segments?.push({ doc, offset: c.offset, length: take });
      out.set(tokens.subarray(s + c.offset, s + c.offset + take), p);
      p += take;
      need -= take;
      c.offset += take;
      if (c.offset >= len) {
        c.offset = 0;
        if (++c.docPos >= nDocs) {
          c.docPos = 0;
          c.epoch++;
        }
      }
    }
  }

  /** The next batch: `[batch, seqLen]` inputs and targets, each sequence's domain index, and the document pieces each window (seqLen + 1 tokens) was cut from. */
  next(batch: number, weights: Float64Array): { tokens: Int32Array; targets: Int32Array; domains: number[]; segments: LoaderSegment[][] } {
    const T = this.seqLen;
    const tokens = new Int32Array(batch * T);
    const targets = new Int32Array(batch * T);
    const win = new Int32Array(T + 1);
    const domains: number[] = [];
    const segments: LoaderSegment[][] = [];
    for (let b = 0; b < batch; b++) {
      const d = this.sampleDomain(weights);
      domains.push(d);
      const segs: LoaderSegment[] = [];
      this.fill(d, win, 0, segs);
      segments.push(segs);
      tokens.set(win.subarray(0, T), b * T);
      targets.set(win.subarray(1), b * T);
    }
    return { tokens, targets, domains, segments };
  }

  state(): LoaderState {
    const cursors: Record<string, DomainCursor> = {};
    const fingerprint: Record<string, { tokens: number; docs: number }> = {};
    this.domains.forEach((d, i) => {
      cursors[d.name] = { ...this.cursors[i]! };
      fingerprint[d.name] = { tokens: d.train.tokens.length, docs: d.train.starts.length - 1 };
    });
    return { draws: this.draws, cursors, fingerprint };
  }

  /** Restores a state saved by {@link PackedLoader.state} (same data, same seed); a mismatch → `E_FORMAT`. */
  restore(s: LoaderState): void {
    this.domains.forEach((d, i) => {
      const f = s.fingerprint[d.name];
      const c = s.cursors[d.name];
      if (!f || !c) throw new TersorError("E_FORMAT", `cannot resume: the checkpoint's loader has no domain "${d.name}"`);
      if (f.tokens !== d.train.tokens.length || f.docs !== d.train.starts.length - 1) {
        throw new TersorError("E_FORMAT", `cannot resume: domain "${d.name}" has ${d.train.tokens.length} tokens in ${d.train.starts.length - 1} documents, the checkpoint was trained on ${f.tokens} in ${f.docs}`);
      }
      this.cursors[i] = { ...c };
    });
    for (let i = 0; i < s.draws; i++) this.rng.nextF64();
    this.draws = s.draws;
  }
}

/**
 * Validation windows of a domain: its validation documents in order, cut into non-overlapping
 * windows of `seqLen + 1` tokens, the first ⌈maxTokens / seqLen⌉ of them; a last partial window of
 * at least 2 tokens is kept (shorter). Empty when the domain has no validation text.
 */
export function validationWindows(d: DomainData, seqLen: number, maxTokens: number): Int32Array[] {
  const t = d.validation.tokens;
  const out: Int32Array[] = [];
  let left = maxTokens;
  for (let p = 0; p + 1 < t.length && left > 0; p += seqLen + 1) {
    const end = Math.min(t.length, p + seqLen + 1, p + left + 1);
    out.push(Int32Array.from(t.subarray(p, end)));
    left -= end - p - 1;
  }
  return out;
}

/**
 * The byte-unigram baseline: bits per byte of the train split's byte frequencies (add-one
 * smoothed over the 256 byte values) on `test` bytes, i.e. the cross-entropy
 * `−Σ_b q(b) log₂ p(b)` of a model that ignores context.
 */
export function byteUnigramBitsPerByte(train: Iterable<Uint8Array>, test: Iterable<Uint8Array>): number {
  const counts = new Float64Array(256).fill(1);
  let total = 256;
  for (const b of train) {
    for (let i = 0; i < b.length; i++) counts[b[i]!]!++;
    total += b.length;
  }
  let bits = 0;
  let n = 0;
  for (const b of test) {
    for (let i = 0; i < b.length; i++) bits -= Math.log2(counts[b[i]!]! / total);
    n += b.length;
  }
  if (n === 0) throw new TersorError("E_RANGE", "byteUnigramBitsPerByte: no test bytes");
  return bits / n;
}
