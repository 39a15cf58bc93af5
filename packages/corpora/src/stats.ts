import type { CorpusStats, Doc, Split } from "./types.js";

/** Whitespace-separated tokens of `s` (`s.split(/\s+/)` without the empty ends). */
export function countWords(s: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const space =
      c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
      c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
    if (space) inWord = false;
    else if (!inWord) {
      inWord = true;
      n++;
    }
  }
  return n;
}

/** Unicode code points of `s`. */
export function countCodePoints(s: string): number {
  let pairs = 0;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        pairs++;
        i++;
      }
    }
  }
  return s.length - pairs;
}

/** Counts documents, code points, UTF-8 bytes and words of a stream of documents. */
export async function textStats(name: string, split: Split, docs: AsyncIterable<Doc<object>>): Promise<CorpusStats> {
  const s: CorpusStats = { name, split, documents: 0, characters: 0, bytes: 0, words: 0 };
  for await (const d of docs) {
    s.documents++;
    s.characters += countCodePoints(d.text);
    s.bytes += Buffer.byteLength(d.text, "utf8");
    s.words += countWords(d.text);
  }
  return s;
}
