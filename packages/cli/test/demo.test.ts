/**
 * `npm run demo`'s report builder (tools/demo/report.mjs) on a fixture: every figure it is given
 * reaches the Markdown and HTML, derived figures (documents dropped, KD − CE, size and bits-per-byte
 * changes) follow from their definitions, text is escaped, and a results object with a missing or
 * non-finite figure is refused naming the field. The demo itself is not run here (it takes minutes).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileAtomic } from "@tersor/core";

// @ts-ignore: a plain ES module of the demo tool (tools/ is not a TypeScript package)
import { DemoReportError, SECTIONS, bytes, escapeHtml, reportHtml, reportMarkdown, reportModel, validateResults, writeDemoReport } from "../../../tools/demo/report.mjs";

function fixture(): Record<string, any> {
  return {
    meta: { seed: 7, started: "2026-12-04T00:00:00.000Z", seconds: 321.5 },
    timings: { select: 10.25, mix: 20, train: 30, distill: 40, quantize: 5, kv: 3, total: 108.26 },
    select: {
      text: "select <text> & more",
      dedup: { input: "corpus:email-ham:train", documents: 1000, kept: 950, exact_duplicates: 20, near_duplicates: 30, clusters_with_duplicates: 25, bands: 9, rows: 12, estimated_precision: 0.75 },
      domains: [
        { domain: "moby", input: "corpus:moby:train", method: "random", pool: 125, selected: 8, bytes: 90000 },
        { domain: "email-ham", input: "dedup.jsonl", method: "dsir", pool: 950, selected: 12, bytes: 2048, alignmentSelected: 0.0329, alignmentRandom: 0.0191 },
      ],
      plots: [],
    },
    mix: {
      published: [{ model: "gbdt", target: "metric/the_pile_pile_cc_val_loss", spearman: 0.98126 }],
      swarm: { runs: 16, tokens: "120k", seconds: 59.5 },
      fits: [
        { method: "regmix", model: "linear", target: "avg", mixture: { moby: 0.9, "email-ham": 0.1 }, predicted: 2.9 },
        { method: "regmix", model: "gbdt", target: "avg", mixture: { moby: 0.625, "email-ham": 0.375 }, predicted: 2.95 },
      ],
      chosen: { method: "regmix", model: "gbdt", target: "avg", mixture: { moby: 0.625, "email-ham": 0.375 } },
      plots: [{ title: "proposed mixture", path: "mix/report/proportions.png" }],
    },
    train: { parameters: 435584, steps: 150, tokens: 307200, finalLoss: 2.3399, seconds: 35, validation: { moby: { bitsPerByte: 3.56 }, "email-ham": { bitsPerByte: 4.524 } }, plots: [{ title: "loss", path: "train/student/loss.svg" }] },
    distill: {
      cache: { mode: "topk:16", positions: 282352, bytesPerToken: 73.1, denseF32BytesPerToken: 1036, seconds: 224.8 },
      loss: "fkl",
      alpha: 0.5,
      steps: 80,
      parameters: 435584,
      evalSplit: "validation",
      student: { bitsPerByte: 3.25, ece: 0.01, accuracy: 0.4 },
      ce: { bitsPerByte: 3.5, ece: 0.02, accuracy: 0.38 },
      teacher: { parameters: 5870592, bitsPerByte: 2.6677, ece: 0.005, accuracy: 0.5 },
      plots: [],
    },
    quantize: [
      { label: "student, Q4_0 GPTQ", scheme: "q4_0", method: "gptq", out: "quantize/student-q4_0", bitsPerWeight: 4.5, bytesBefore: 2 * 1024 * 1024, bytesAfter: 512 * 1024, bitsPerByteBefore: 3.25, bitsPerByteAfter: 3.375, plot: "quantize/student-q4_0.svg" },
    ],
    kv: {
      model: "distilled student",
      data: "corpus:moby",
      split: "test",
      context: 256,
      uncompressedBitsPerByte: 3.3478,
      methods: [
        { method: "fp16", bitsPerByte: 3.3478, relChange: 0, cacheBytes: 131072, ratio: 1, decodeTokensPerSecond: 2000 },
        { method: "kivi:2", bitsPerByte: 3.3601, relChange: 0.0037, cacheBytes: 51200, ratio: 2.56, decodeTokensPerSecond: 1800 },
      ],
      plot: "kv/kv.svg",
    },
  };
}

describe("demo report builder", () => {
  it("has a section per demo step, in order", () => {
    const m = reportModel(fixture());
    expect(m.sections.map((s: { step: string }) => s.step)).toEqual(SECTIONS);
  });

  it("puts the figures and derived figures into the summary", () => {
    const md = reportMarkdown(fixture());
    // 8 + 12 kept of 125 + 950; 50 duplicates of 1000.
    expect(md).toContain("| select | documents kept of the pools | 20 of 1075 (89.9 KiB of text) |");
    expect(md).toContain("50 of 1000 (20 exact, 30 near)");
    expect(md).toContain("moby 0.63, email-ham 0.38");
    expect(md).toContain("2.668 / 3.250 / 3.500");
    // KD − CE = 3.25 − 3.5.
    expect(md).toContain("KD − CE: -0.2500 bits/byte");
    // 2 MiB → 512 KiB; bits/byte change +0.125.
    expect(md).toContain("2.00 MiB → 512.0 KiB, 3.250 → 3.375");
    expect(md).toContain("| +0.1250 |");
    // kivi:2 against fp16; fp16 is the reference, not a row of its own in the summary.
    expect(md).toContain("| kv | kivi:2: cache bytes, ratio, bits/byte | 50.0 KiB (2.56× vs fp16), 3.360 (fp16: 3.348) |");
    expect(md).not.toContain("| kv | fp16:");
    // dropped = pool − kept, per domain.
    expect(md).toContain("| moby | corpus:moby:train | random | 125 | 8 | 117 | 87.9 KiB | n/a |");
    expect(md).toContain("| email-ham | dedup.jsonl | dsir | 950 | 12 | 938 | 2.0 KiB | 0.0329 / 0.0191 |");
    expect(md).toContain("| gbdt | metric/the_pile_pile_cc_val_loss | 0.9813 |");
    expect(md).toContain("![loss](train/student/loss.svg)");
    expect(md).toContain("| total | 108.3 |");
  });

  it("writes one escaped HTML page with the plots as images", () => {
    const html = reportHtml(fixture());
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).toContain("select &lt;text&gt; &amp; more");
    expect(html).not.toContain("select <text>");
    expect(html).toContain('<img src="kv/kv.svg"');
    expect(html).toContain('<img src="quantize/student-q4_0.svg"');
    expect(html).toContain('<img src="mix/report/proportions.png"');
    expect(html.match(/<table>/g)!.length).toBeGreaterThanOrEqual(SECTIONS.length + 1);
    expect(escapeHtml('a"b<c>&')).toBe("a&quot;b&lt;c&gt;&amp;");
  });

  it("formats bytes by their definition", () => {
    expect(bytes(1023)).toBe("1023 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(3 * 1024 * 1024)).toBe("3.00 MiB");
    expect(bytes(Number.NaN)).toBe("n/a");
  });

  it("refuses results with a missing section or a bad figure, naming it", () => {
    const noKv = fixture();
    delete noKv["kv"];
    expect(() => validateResults(noKv)).toThrow(DemoReportError);
    expect(() => validateResults(noKv)).toThrow(/results\.kv is missing/);
    const nanBpb = fixture();
    nanBpb["distill"].ce.bitsPerByte = Number.NaN;
    expect(() => reportMarkdown(nanBpb)).toThrow(/results\.distill\.ce\.bitsPerByte must be a finite number/);
    const noQuant = fixture();
    noQuant["quantize"] = [];
    expect(() => reportHtml(noQuant)).toThrow(/results\.quantize must be a non-empty array/);
    const negWeight = fixture();
    negWeight["mix"].chosen.mixture.moby = -0.1;
    expect(() => validateResults(negWeight)).toThrow(/mixture weight of moby/);
    expect(() => validateResults(null)).toThrow(DemoReportError);
  });
});

describe("writeDemoReport", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tersor-demo-report-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes report.json (the results, round-tripped), report.md and report.html", async () => {
    const r = fixture();
    const files = await writeDemoReport(dir, r, writeFileAtomic);
    expect(JSON.parse(await readFile(files.json, "utf8"))).toEqual(r);
    expect(await readFile(files.markdown, "utf8")).toBe(reportMarkdown(r));
    expect(await readFile(files.html, "utf8")).toBe(reportHtml(r));
  });

  it("writes nothing for invalid results", async () => {
    const sub = join(dir, "bad");
    const r = fixture();
    delete r["train"];
    await expect(writeDemoReport(sub, r, writeFileAtomic)).rejects.toThrow(/results\.train is missing/);
    await expect(readFile(join(sub, "report.md"), "utf8")).rejects.toThrow();
  });
});
