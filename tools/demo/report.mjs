// The demo's report: out/demo/report.md, report.html and report.json from the figures the demo
// collected while it ran the `tersor` commands (see tools/demo.mjs). Pure functions (no file
// system) except writeDemoReport, so the builder is tested on a fixture
// (packages/cli/test/demo.test.ts) without running the demo.

/** The sections every report must have, in order; each names the demo step that produced it. */
export const SECTIONS = ["select", "mix", "train", "distill", "quantize", "kv"];

/** Thrown for a results object the report cannot be built from. */
export class DemoReportError extends Error {
  constructor(message) {
    super(message);
    this.name = "DemoReportError";
    this.code = "E_FORMAT";
  }
}

function need(obj, path) {
  let v = obj;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object" || !(k in v)) throw new DemoReportError(`demo report: results.${path} is missing`);
    v = v[k];
  }
  return v;
}

function finite(obj, path) {
  const v = need(obj, path);
  if (typeof v !== "number" || !Number.isFinite(v)) throw new DemoReportError(`demo report: results.${path} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks the shape of a results object; throws DemoReportError naming the first missing or bad field. */
export function validateResults(r) {
  if (r === null || typeof r !== "object") throw new DemoReportError("demo report: results must be an object");
  for (const s of SECTIONS) need(r, s);
  const domains = need(r, "select.domains");
  if (!Array.isArray(domains) || domains.length === 0) throw new DemoReportError("demo report: results.select.domains must be a non-empty array");
  domains.forEach((_, i) => {
    finite(r, `select.domains.${i}.pool`);
    finite(r, `select.domains.${i}.selected`);
    finite(r, `select.domains.${i}.bytes`);
  });
  finite(r, "select.dedup.documents");
  finite(r, "select.dedup.kept");
  const mixture = need(r, "mix.chosen.mixture");
  for (const [d, w] of Object.entries(mixture)) if (typeof w !== "number" || !Number.isFinite(w) || w < 0) throw new DemoReportError(`demo report: mixture weight of ${d} must be a finite number ≥ 0`);
  finite(r, "train.parameters");
  finite(r, "train.steps");
  for (const k of ["student", "ce", "teacher"]) finite(r, `distill.${k}.bitsPerByte`);
  const q = need(r, "quantize");
  if (!Array.isArray(q) || q.length === 0) throw new DemoReportError("demo report: results.quantize must be a non-empty array");
  q.forEach((_, i) => {
    for (const k of ["bitsPerByteBefore", "bitsPerByteAfter", "bytesBefore", "bytesAfter"]) finite(r, `quantize.${i}.${k}`);
  });
  const kv = need(r, "kv.methods");
  if (!Array.isArray(kv) || kv.length === 0) throw new DemoReportError("demo report: results.kv.methods must be a non-empty array");
  kv.forEach((_, i) => {
    for (const k of ["bitsPerByte", "cacheBytes", "ratio"]) finite(r, `kv.methods.${i}.${k}`);
  });
  return r;
}

/** A number for a table: fixed decimals, or n/a. */
export function num(x, digits = 3) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** Bytes as B / KiB / MiB. */
export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "n/a";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

function pct(x) {
  return typeof x === "number" && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a";
}

function signed(x, digits = 4) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "n/a";
  return (x >= 0 ? "+" : "") + x.toFixed(digits);
}

/** A table: a header row and body rows of cells (strings). */
function table(title, header, rows, note) {
  return { title, header, rows: rows.map((r) => r.map((c) => String(c))), ...(note ? { note } : {}) };
}

/**
 * The report's content, independent of the output format: a summary table, one section per step
 * (tables and plots) and the run's timings.
 */
export function reportModel(results) {
  const r = validateResults(results);
  const sel = r.select;
  const pool = sel.domains.reduce((a, d) => a + d.pool, 0);
  const kept = sel.domains.reduce((a, d) => a + d.selected, 0);
  const keptBytes = sel.domains.reduce((a, d) => a + d.bytes, 0);
  const mix = r.mix.chosen.mixture;
  const mixText = Object.entries(mix).map(([d, w]) => `${d} ${w.toFixed(2)}`).join(", ");
  const dist = r.distill;
  const kvBase = r.kv.methods.find((m) => m.method === "fp16") ?? r.kv.methods[0];
  const summary = table("The whole job in figures", ["step", "figure", "value"], [
    ["select", "documents kept of the pools", `${kept} of ${pool} (${bytes(keptBytes)} of text)`],
    ["select", "duplicates dropped (MinHash, email-ham)", `${sel.dedup.documents - sel.dedup.kept} of ${sel.dedup.documents} (${sel.dedup.exact_duplicates ?? "n/a"} exact, ${sel.dedup.near_duplicates ?? "n/a"} near)`],
    ["mix", `mixture (${r.mix.chosen.method}/${r.mix.chosen.model}, target ${r.mix.chosen.target})`, mixText],
    ["train", "student", `${r.train.parameters.toLocaleString("en-US")} parameters, ${r.train.steps} steps`],
    ["distil", `bits/byte, ${dist.evalSplit ?? "held-out"} split: teacher / KD student / CE student`, `${num(dist.teacher.bitsPerByte)} / ${num(dist.student.bitsPerByte)} / ${num(dist.ce.bitsPerByte)}`],
    ...r.quantize.map((q) => ["quantize", `${q.label}: size, bits/byte`, `${bytes(q.bytesBefore)} → ${bytes(q.bytesAfter)}, ${num(q.bitsPerByteBefore)} → ${num(q.bitsPerByteAfter)}`]),
    ...r.kv.methods
      .filter((m) => m !== kvBase)
      .map((m) => ["kv", `${m.method}: cache bytes, ratio, bits/byte`, `${bytes(m.cacheBytes)} (${num(m.ratio, 2)}× vs ${kvBase.method}), ${num(m.bitsPerByte)} (${kvBase.method}: ${num(kvBase.bitsPerByte)})`]),
  ]);

  const sections = [];
  sections.push({
    step: "select",
    title: "1. Select: deduplicate and select toward the target",
    text: sel.text ?? "",
    tables: [
      table("MinHash-LSH deduplication", ["input", "documents", "kept", "exact duplicates", "near duplicates", "clusters", "bands × rows", "est. precision"], [
        [sel.dedup.input ?? "", sel.dedup.documents, sel.dedup.kept, sel.dedup.exact_duplicates ?? "n/a", sel.dedup.near_duplicates ?? "n/a", sel.dedup.clusters_with_duplicates ?? "n/a", `${sel.dedup.bands ?? "?"} × ${sel.dedup.rows ?? "?"}`, num(sel.dedup.estimated_precision)],
      ]),
      table("Selection per domain", ["domain", "input", "method", "pool", "kept", "dropped", "bytes kept", "target alignment: kept / random"], sel.domains.map((d) => [d.domain, d.input ?? "", d.method ?? "", d.pool, d.selected, d.pool - d.selected, bytes(d.bytes), d.alignmentSelected !== undefined ? `${num(d.alignmentSelected, 4)} / ${num(d.alignmentRandom, 4)}` : "n/a"])),
    ],
    plots: sel.plots ?? [],
  });
  const mixTables = [];
  if (Array.isArray(r.mix.published) && r.mix.published.length > 0)
    mixTables.push(table("RegMix on its published 1M-parameter proxy runs (fit on 512, Spearman ρ on 256 held out)", ["model", "target", "Spearman ρ"], r.mix.published.map((p) => [p.model, p.target, num(p.spearman, 4)]), r.mix.publishedNote));
  const fits = Array.isArray(r.mix.fits) ? r.mix.fits : [];
  const domains = Object.keys(mix);
  if (fits.length > 0)
    mixTables.push(table(`Mixtures proposed for our domains (target ${r.mix.chosen.target})`, ["domain", "stratified", ...fits.map((f) => `${f.method}/${f.model}`)], domains.map((d) => [d, num(1 / domains.length), ...fits.map((f) => num(f.mixture[d]))]), `chosen: ${r.mix.chosen.method}/${r.mix.chosen.model}`));
  if (r.mix.swarm) mixTables.push(table("Proxy swarm", ["runs", "tokens per run", "seconds"], [[r.mix.swarm.runs, r.mix.swarm.tokens, num(r.mix.swarm.seconds, 1)]]));
  sections.push({ step: "mix", title: "2. Mix: domain weights", text: r.mix.text ?? "", tables: mixTables, plots: r.mix.plots ?? [] });
  const val = r.train.validation ?? {};
  sections.push({
    step: "train",
    title: "3. Train: the student on the selected, mixed data",
    text: r.train.text ?? "",
    tables: [
      table("Student", ["parameters", "steps", "tokens seen", "final training loss (nats/token)", "seconds"], [[r.train.parameters, r.train.steps, r.train.tokens ?? "n/a", num(r.train.finalLoss, 4), num(r.train.seconds, 1)]]),
      table("Validation bits per byte after training", ["domain", "bits/byte"], Object.entries(val).map(([d, v]) => [d, num(v.bitsPerByte)])),
    ],
    plots: r.train.plots ?? [],
  });
  const distRows = [
    ["teacher (ref-small)", dist.teacher.parameters ?? "n/a", num(dist.teacher.bitsPerByte), num(dist.teacher.ece, 4), pct(dist.teacher.accuracy)],
    [`student, KD (${dist.loss ?? "?"}, α ${dist.alpha ?? "?"})`, dist.parameters ?? "n/a", num(dist.student.bitsPerByte), num(dist.student.ece, 4), pct(dist.student.accuracy)],
    ["student, CE only (same steps, seed)", dist.parameters ?? "n/a", num(dist.ce.bitsPerByte), num(dist.ce.ece, 4), pct(dist.ce.accuracy)],
  ];
  const distTables = [table(`Bits per byte on the ${dist.evalSplit ?? "held-out"} split`, ["model", "parameters", "bits/byte", "ECE", "top-1"], distRows, `KD − CE: ${signed(dist.student.bitsPerByte - dist.ce.bitsPerByte)} bits/byte`)];
  if (dist.cache) distTables.push(table("Teacher-logit cache", ["mode", "positions", "bytes/token on disk", "dense f32 bytes/token", "seconds"], [[dist.cache.mode ?? "", dist.cache.positions ?? "n/a", num(dist.cache.bytesPerToken, 2), dist.cache.denseF32BytesPerToken ?? "n/a", num(dist.cache.seconds, 1)]]));
  sections.push({ step: "distill", title: "4. Distil: KD from the ref-small teacher vs CE", text: dist.text ?? "", tables: distTables, plots: dist.plots ?? [] });
  sections.push({
    step: "quantize",
    title: "5. Quantize",
    text: r.quantizeText ?? "",
    tables: [
      table("Quantized models (bits per byte on the calibration corpus's test split)", ["model", "scheme", "method", "output", "bits/weight", "size before", "size after", "bits/byte before", "bits/byte after", "change"], r.quantize.map((q) => [q.label, q.scheme, q.method, q.out ?? "", num(q.bitsPerWeight, 2), bytes(q.bytesBefore), bytes(q.bytesAfter), num(q.bitsPerByteBefore, 4), num(q.bitsPerByteAfter, 4), signed(q.bitsPerByteAfter - q.bitsPerByteBefore)])),
    ],
    plots: r.quantize.flatMap((q) => (q.plot ? [{ title: `${q.label}: per-linear output error`, path: q.plot }] : [])),
  });
  sections.push({
    step: "kv",
    title: "6. Compress the KV cache",
    text: r.kv.text ?? "",
    tables: [
      table(`${r.kv.model ?? "model"} on ${r.kv.data ?? "?"} (${r.kv.split ?? "test"} split), context ${r.kv.context ?? "?"}; uncompressed ${num(r.kv.uncompressedBitsPerByte, 4)} bits/byte`, ["method", "cache bytes", "ratio", "bits/byte", "relative change", "decode tokens/s"], r.kv.methods.map((m) => [m.method, bytes(m.cacheBytes), num(m.ratio, 2), num(m.bitsPerByte, 4), signed(m.relChange, 4), num(m.decodeTokensPerSecond, 0)])),
    ],
    plots: r.kv.plot ? [{ title: "bits per byte per KV method", path: r.kv.plot }] : [],
  });
  const timings = r.timings ? table("Time per step", ["step", "seconds"], Object.entries(r.timings).map(([k, v]) => [k, num(v, 1)])) : undefined;
  return { title: "tersor demo report", meta: r.meta ?? {}, summary, sections, ...(timings ? { timings } : {}) };
}

function mdCell(s) {
  return String(s).replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function mdTable(t) {
  const lines = [`**${t.title}**`, "", `| ${t.header.map(mdCell).join(" | ")} |`, `|${t.header.map(() => "---").join("|")}|`];
  for (const row of t.rows) lines.push(`| ${row.map(mdCell).join(" | ")} |`);
  if (t.note) lines.push("", t.note);
  lines.push("");
  return lines.join("\n");
}

/** The report as Markdown (plots linked by their paths relative to the report). */
export function reportMarkdown(results) {
  const m = reportModel(results);
  const out = [`# ${m.title}`, ""];
  const meta = Object.entries(m.meta);
  if (meta.length > 0) out.push(meta.map(([k, v]) => `${k}: ${v}`).join(" · "), "");
  out.push("## Summary", "", mdTable(m.summary));
  for (const s of m.sections) {
    out.push(`## ${s.title}`, "");
    if (s.text) out.push(s.text, "");
    for (const t of s.tables) out.push(mdTable(t));
    for (const p of s.plots) out.push(`![${p.title}](${p.path})`, "");
  }
  if (m.timings) out.push("## Timings", "", mdTable(m.timings));
  return out.join("\n");
}

/** Escapes text for HTML. */
export function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function htmlTable(t) {
  const head = `<tr>${t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>`;
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("\n");
  return `<h3>${escapeHtml(t.title)}</h3>\n<table>\n${head}\n${body}\n</table>${t.note ? `\n<p class="note">${escapeHtml(t.note)}</p>` : ""}`;
}

/** The report as one HTML page (plots embedded as images by their relative paths). */
export function reportHtml(results) {
  const m = reportModel(results);
  const parts = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(m.title)}</title>`,
    "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-variant-numeric:tabular-nums}th{background:#f3f3f3}figure{display:inline-block;margin:.5em 1em .5em 0}figure img{max-width:520px;border:1px solid #eee}figcaption{font-size:.85em;color:#555}.note{color:#555;font-size:.9em}.meta{color:#555}</style>",
    "</head><body>",
    `<h1>${escapeHtml(m.title)}</h1>`,
  ];
  const meta = Object.entries(m.meta);
  if (meta.length > 0) parts.push(`<p class="meta">${meta.map(([k, v]) => `${escapeHtml(k)}: ${escapeHtml(v)}`).join(" · ")}</p>`);
  parts.push("<h2>Summary</h2>", htmlTable(m.summary));
  for (const s of m.sections) {
    parts.push(`<h2>${escapeHtml(s.title)}</h2>`);
    if (s.text) parts.push(`<p>${escapeHtml(s.text)}</p>`);
    for (const t of s.tables) parts.push(htmlTable(t));
    for (const p of s.plots) parts.push(`<figure><a href="${escapeHtml(p.path)}"><img src="${escapeHtml(p.path)}" alt="${escapeHtml(p.title)}"></a><figcaption>${escapeHtml(p.title)}</figcaption></figure>`);
  }
  if (m.timings) parts.push("<h2>Timings</h2>", htmlTable(m.timings));
  parts.push("</body></html>", "");
  return parts.join("\n");
}

/**
 * Writes report.json, report.md and report.html into `dir`, each atomically (core's
 * writeFileAtomic): a failed run never leaves a half-written report.
 */
export async function writeDemoReport(dir, results, writeFileAtomic) {
  validateResults(results);
  const md = reportMarkdown(results);
  const html = reportHtml(results);
  await writeFileAtomic(`${dir}/report.json`, JSON.stringify(results, null, 2) + "\n");
  await writeFileAtomic(`${dir}/report.md`, md);
  await writeFileAtomic(`${dir}/report.html`, html);
  return { json: `${dir}/report.json`, markdown: `${dir}/report.md`, html: `${dir}/report.html` };
}
