/** `tersor quantize … --out model.gguf`: a llama.cpp GGUF instead of the Hugging Face directory, and its bad-input paths (clear error before any work, no file). */
import { mkdirSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { openGguf } from "@tersor/core";
import { loadModel } from "@tersor/model";
import { referenceModelPath } from "@tersor/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { silent: true });

const TINY = referenceModelPath("ref-tiny");
const CAL = ["--samples", "4", "--seq-len", "64", "--eval-chars", "3000", "--seed", "1"];
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-cli-quantize-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!TINY)("tersor quantize --out model.gguf (ref-tiny)", () => {
  it("GPTQ q4_0 writes one GGUF file (no temporary directory left) with the report; llama.cpp types and file type; it loads and scores as the HF output", async () => {
    const work = join(dir, "q4");
    mkdirSync(work);
    const out = join(work, "tiny-q4_0.gguf");
    const r = await tersor("quantize", TINY!, "--scheme", "q4_0", "--method", "gptq", "--out", out, "--report", join(work, "r.json"), ...CAL);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((await readdir(work)).sort()).toEqual(["r.json", "r.md", "tiny-q4_0.gguf"]);
    const report = JSON.parse(await readFile(join(work, "r.json"), "utf8"));
    expect(report.scheme).toBe("q4_0");
    expect(report.linears.length).toBe(14);
    expect(Number.isFinite(report.bitsPerByteAfter)).toBe(true);
    const g = await openGguf(out);
    try {
      expect(report.bytesAfter).toBe(g.fileSize);
      expect(g.metadata.get("general.architecture")).toBe("llama");
      expect(g.metadata.get("general.file_type")).toBe(2); // LLAMA_FTYPE_MOSTLY_Q4_0
      expect(g.get("blk.1.ffn_down.weight")!.dtype).toBe("q4_0");
      expect(g.get("output.weight")!.dtype).toBe("f32");
    } finally {
      await g.close();
    }
    const m = await loadModel(out, { progress: "silent" });
    expect(m.tokenizer.kind).toBe("byte");
    expect(m.warnings).toEqual([]);
    // The same run with a Hugging Face directory as the output: same model, so the same bits per byte.
    const hf = await tersor("quantize", TINY!, "--scheme", "q4_0", "--method", "gptq", "--out", join(dir, "q4dir"), "--report", join(dir, "q4dir.json"), ...CAL);
    expect(hf.code).toBe(0);
    const hfReport = JSON.parse(await readFile(join(dir, "q4dir.json"), "utf8"));
    expect(Math.abs(report.bitsPerByteAfter - hfReport.bitsPerByteAfter)).toBeLessThanOrEqual(1e-5 * hfReport.bitsPerByteAfter);
  }, 120_000);

  it("--scheme f16 converts without calibration and keeps bits per byte within 0.1%", async () => {
    const out = join(dir, "tiny-f16.gguf");
    const r = await tersor("quantize", TINY!, "--scheme", "f16", "--out", out, "--report", join(dir, "f16.json"), ...CAL);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(await readFile(join(dir, "f16.json"), "utf8"));
    expect(report.method).toBe("none");
    expect(report.bitsPerWeight).toBe(16);
    expect(Math.abs(report.bitsPerByteAfter - report.bitsPerByteBefore)).toBeLessThanOrEqual(0.001 * report.bitsPerByteBefore);
    const g = await openGguf(out);
    try {
      expect(g.metadata.get("general.file_type")).toBe(1); // LLAMA_FTYPE_MOSTLY_F16
      expect(g.get("blk.0.attn_q.weight")!.dtype).toBe("f16");
      expect(g.get("blk.0.attn_norm.weight")!.dtype).toBe("f32");
    } finally {
      await g.close();
    }
  }, 120_000);

  it("schemes without a ggml type, adapters and an existing path fail before any work with a clear error and leave nothing", async () => {
    const work = join(dir, "bad");
    mkdirSync(work);
    for (const s of ["nf4", "int4-g128"]) {
      const r = await tersor("quantize", TINY!, "--scheme", s, "--out", join(work, "m.gguf"), ...CAL);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("E_RANGE");
      expect(r.stderr).toContain(s);
      expect(r.stderr).toContain("q4_k");
    }
    const f = await tersor("quantize", TINY!, "--scheme", "q8_0", "--fallback", "int8", "--out", join(work, "m.gguf"), ...CAL);
    expect(f.stderr).toContain("E_RANGE");
    // ref-tiny's rows of 128 and 352 fit no 256-element K-quant block: E_SHAPE before calibration.
    const k = await tersor("quantize", TINY!, "--scheme", "q4_k", "--out", join(work, "m.gguf"), ...CAL);
    expect(k.stderr).toContain("E_SHAPE");
    expect(k.stderr).toContain("q4_k (256 elements)");
    const a = await tersor("quantize", TINY!, "--scheme", "q8_0", "--eora-rank", "4", "--out", join(work, "m.gguf"), ...CAL);
    expect(a.stderr).toContain("E_RANGE");
    expect(a.stderr).toContain("adapters");
    mkdirSync(join(work, "d.gguf"));
    const d = await tersor("quantize", TINY!, "--scheme", "q8_0", "--out", join(work, "d.gguf"), ...CAL);
    expect(d.stderr).toContain("E_IO");
    expect(await readdir(work)).toEqual(["d.gguf"]);
    expect(await readdir(join(work, "d.gguf"))).toEqual([]);
  }, 60_000);
});
