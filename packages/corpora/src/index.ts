/**
 * `@tersor/corpora`: tersor's embedded default data. Real text that ships through npm and needs no
 * network: State of the Union addresses (`sotu` and its eras `sotu-early`, `sotu-industrial`,
 * `sotu-modern`), Moby-Dick (`moby`), the SpamAssassin public corpus (`email-ham`, `email-spam`)
 * and WordNet 3.1 glosses (`wordnet`). Every corpus streams `{id, domain, text, meta}` documents
 * and has deterministic train/validation/test splits by a hash of the id (see {@link splitOf}).
 * @packageDocumentation
 */
export * from "./types.js";
export { corpus, listCorpora, CORPUS_NAMES, type CorpusOptions, type CorpusMetaByName } from "./registry.js";
export { splitOf, fnv1a64, checkSplit } from "./split.js";
export { countWords, countCodePoints } from "./stats.js";
export { exportCorpus, type ExportFormat, type ExportOptions, type ExportResult } from "./export.js";
export {
  parseEmail,
  stripHtml,
  decodeCharset,
  decodeWindows1252,
  decodeQuotedPrintable,
  decodeBase64,
  decodeEncodedWords,
  type ParsedEmail,
} from "./email.js";
export { SOTU_ERAS, sotuEra, type SotuEra } from "./sources/sotu.js";
export { EMAIL_GROUPS, EMAILS_WITHOUT_TEXT } from "./sources/spam.js";
export { parseGloss, parseSynsetLine, WORDNET_LEXNAMES } from "./sources/wordnet.js";
