import { open, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";

import type { Command } from "commander";
import {
  type GgufArray,
  type GgufEntry,
  type GgufValue,
  SAFETENSORS_INDEX_FILE,
  type SafetensorsSource,
  TersorError,
  ggmlTypeByName,
  openGguf,
  openSafetensors,
  openSafetensorsDir,
} from "@tersor/core";

/** One tensor as `tersor inspect` reports it. */
export interface InspectTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Elements. */
  params: number;
  bytes: number;
  /** GGUF block-quantized tensors: the ggml quant type. */
  quant?: string;
  /** GGUF: the dims as stored (ne0 first). */
  dims?: number[];
  /** Sharded safetensors: the shard holding it. */
  file?: string;
}

/** What `tersor inspect` found, as printed by `--json` (bigints become strings there). */
export interface InspectReport {
  format: "gguf" | "safetensors" | "safetensors-dir";
  path: string;
  version?: number;
  alignment?: number;
  files?: string[];
  tensors: InspectTensor[];
  /** GGUF: key → {type, value}; safetensors: the __metadata__ strings. */
  metadata: Record<string, unknown>;
  /** Sharded safetensors: the index's own metadata. */
  indexMetadata?: Record<string, unknown>;
  totals: { tensors: number; params: number; bytes: number };
}

async function sniff(path: string): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TersorError("E_IO", `cannot open ${path}: ${err.code ?? ""} ${err.message}`.trim());
  }
  try {
    const b = new Uint8Array(9);
    const { bytesRead } = await fh.read(b, 0, 9, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function totalsOf(tensors: InspectTensor[]): InspectReport["totals"] {
  return {
    tensors: tensors.length,
    params: tensors.reduce((s, t) => s + t.params, 0),
    bytes: tensors.reduce((s, t) => s + t.bytes, 0),
  };
}

/** A GGUF value as plain JSON-able data (typed arrays to arrays, nested arrays unwrapped). */
function plainValue(v: GgufValue): unknown {
  if (typeof v === "object") {
    const a = v as GgufArray;
    if (a.itemType === "array") return (a.values as readonly GgufArray[]).map((x) => plainValue(x));
    return Array.from(a.values as ArrayLike<unknown>);
  }
  return v;
}

async function inspectSafetensors(src: SafetensorsSource, report: Omit<InspectReport, "tensors" | "metadata" | "totals">, showFiles: boolean): Promise<InspectReport> {
  const tensors = src.tensors.map(
    (t): InspectTensor => ({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      params: t.numel,
      bytes: t.byteLength,
      ...(showFiles ? { file: basename(t.file) } : {}),
    }),
  );
  return { ...report, tensors, metadata: { ...src.metadata }, totals: totalsOf(tensors) };
}

/** Opens a GGUF file, a safetensors file or a checkpoint directory (by content, not extension) and describes it. */
export async function inspectPath(path: string): Promise<InspectReport> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TersorError("E_IO", `cannot open ${path}: ${err.code ?? ""} ${err.message}`.trim());
  }
  if (st.isDirectory() || basename(path) === SAFETENSORS_INDEX_FILE) {
    const dir = st.isDirectory() ? path : dirname(path);
    const src = await openSafetensorsDir(dir);
    try {
      const r = await inspectSafetensors(src, { format: "safetensors-dir", path: dir, files: src.files.map((f) => basename(f)) }, true);
      return { ...r, indexMetadata: { ...src.indexMetadata } };
    } finally {
      await src.close();
    }
  }
  const head = await sniff(path);
  const isGguf = head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46;
  if (isGguf) {
    const g = await openGguf(path);
    try {
      const tensors = g.tensors.map(
        (t): InspectTensor => ({
          name: t.name,
          dtype: t.dtype,
          shape: [...t.shape],
          dims: [...t.dims],
          params: t.numel,
          bytes: t.byteLength,
          ...(t.type.quantized ? { quant: t.dtype } : {}),
        }),
      );
      const metadata: Record<string, unknown> = {};
      for (const [k, e] of g.metadata) metadata[k] = e;
      return { format: "gguf", path, version: g.version, alignment: g.alignment, tensors, metadata, totals: totalsOf(tensors) };
    } finally {
      await g.close();
    }
  }
  const looksSafetensors = head.length === 9 && head[8] === 0x7b; // "{" right after the length
  let src;
  try {
    src = await openSafetensors(path);
  } catch (e) {
    if (!looksSafetensors && e instanceof TersorError && e.code === "E_FORMAT") {
      throw new TersorError("E_FORMAT", `${path}: not a GGUF file (no "GGUF" magic) and not a safetensors file (${e.message})`);
    }
    throw e;
  }
  try {
    return await inspectSafetensors(src, { format: "safetensors", path }, false);
  } finally {
    await src.close();
  }
}

/** JSON with bigints as strings and non-finite numbers as strings ("NaN", "Infinity"). */
export function reportToJson(report: InspectReport): string {
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(report.metadata)) {
    if (report.format === "gguf") {
      const e = v as GgufEntry;
      const itemType = typeof e.value === "object" ? (e.value as GgufArray).itemType : undefined;
      meta[k] = { type: e.type, ...(itemType ? { itemType } : {}), value: plainValue(e.value) };
    } else meta[k] = v;
  }
  return JSON.stringify({ ...report, metadata: meta }, (_k, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number" && !Number.isFinite(v)) return String(v);
    return v;
  }, 2);
}

const LONG_ARRAY = 16;
const LONG_STRING = 100;

function shortString(s: string): string {
  const j = JSON.stringify(s);
  return j.length > LONG_STRING ? `${j.slice(0, LONG_STRING - 1)}…" (${s.length} chars)` : j;
}

function scalarText(v: unknown): string {
  if (typeof v === "string") return shortString(v);
  return String(v);
}

/** A GGUF value for the table: long arrays as "[type × count]". */
function valueText(v: GgufValue): string {
  if (typeof v !== "object") return scalarText(v);
  const a = v as GgufArray;
  if (a.values.length > LONG_ARRAY) return `[${a.itemType} × ${a.values.length}]`;
  const items = a.itemType === "array" ? (a.values as readonly GgufArray[]).map((x) => valueText(x)) : Array.from(a.values as ArrayLike<unknown>, (x) => scalarText(x));
  return `[${items.join(", ")}]`;
}

function typeText(e: GgufEntry): string {
  if (e.type !== "array") return e.type;
  let t = "array";
  let v: GgufValue = e.value;
  while (typeof v === "object") {
    const a = v as GgufArray;
    t += `[${a.itemType}`;
    if (a.itemType !== "array" || a.values.length === 0) break;
    v = (a.values as readonly GgufArray[])[0]!;
  }
  return t + "]".repeat((t.match(/\[/g) ?? []).length);
}

/** "q4_k (4.50 bpw)": the quant type with its bits per weight. */
function quantText(q: string): string {
  const t = ggmlTypeByName(q);
  return t === undefined ? q : `${q} (${((t.typeSize * 8) / t.blockSize).toFixed(2)} bpw)`;
}

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let x = n;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${x.toFixed(2)} ${units[u]}`;
}

function table(rows: string[][], rightAlign: Set<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 && !rightAlign.has(i) ? c : rightAlign.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

/** The human-readable report. */
export function reportToText(r: InspectReport): string {
  const out: string[] = [];
  const what = r.format === "gguf" ? `GGUF v${r.version} (alignment ${r.alignment})` : r.format === "safetensors" ? "safetensors" : `safetensors checkpoint, ${r.files?.length ?? 0} file(s)`;
  out.push(`${r.path}: ${what}`);
  if (r.files && r.files.length > 0) out.push(`files: ${r.files.join(", ")}`);
  out.push("");
  const isGguf = r.format === "gguf";
  const head = ["name", "dtype", "shape", "params", "bytes"];
  if (isGguf) head.push("quant");
  if (r.format === "safetensors-dir") head.push("file");
  const rows = [head];
  for (const t of r.tensors) {
    const row = [t.name, t.dtype, `[${t.shape.join(", ")}]`, String(t.params), String(t.bytes)];
    if (isGguf) row.push(t.quant === undefined ? "-" : quantText(t.quant));
    if (r.format === "safetensors-dir") row.push(t.file ?? "");
    rows.push(row);
  }
  out.push(...table(rows, new Set([3, 4])));
  out.push("");
  const keys = Object.keys(r.metadata);
  if (keys.length === 0) out.push("metadata: (none)");
  else {
    out.push(`metadata (${keys.length} ${keys.length === 1 ? "entry" : "entries"}):`);
    const mrows = isGguf
      ? keys.map((k) => {
          const e = r.metadata[k] as GgufEntry;
          return [`  ${k}`, typeText(e), valueText(e.value)];
        })
      : keys.map((k) => [`  ${k}`, shortString(String(r.metadata[k]))]);
    out.push(...table(mrows));
  }
  if (r.indexMetadata && Object.keys(r.indexMetadata).length > 0) {
    out.push(`index metadata: ${JSON.stringify(r.indexMetadata)}`);
  }
  out.push("");
  out.push(`total: ${r.totals.tensors} tensors, ${r.totals.params} parameters, ${r.totals.bytes} bytes (${humanBytes(r.totals.bytes)})`);
  return out.join("\n") + "\n";
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("list the tensors and metadata of a safetensors file, a safetensors checkpoint directory or a GGUF file")
    .argument("<path>", "a .safetensors or .gguf file (detected by content), or a checkpoint directory")
    .option("--json", "print one JSON document (64-bit integers as strings)")
    .action(async (path: string, o: { json?: boolean }) => {
      const report = await inspectPath(path);
      process.stdout.write(o.json ? reportToJson(report) + "\n" : reportToText(report));
    });
}
