/** `tersor train --config train.json`: a tiny run end to end, its files, and config errors. */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { lossCurveSpec, trainLogJsonl, trainOptionsFromJson } from "../src/commands/train.js";

import { BIN, type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { silent: true });

let dir: string;
beforeAll(async () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with \`npx tsc -b tsconfig.json\``);
  dir = await mkdtemp(join(tmpdir(), "tersor-cli-train-"));
  const docs = Array.from({ length: 60 }, (_, i) => JSON.stringify({ id: `d${i}`, text: `Document ${i}: the whale swam on through the grey sea, day ${i % 7}.` }));
  await writeFile(join(dir, "docs.jsonl"), docs.join("\n") + "\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("tersor train", () => {
  it("trains from a config, writes the checkpoint, the JSONL log and the loss curve", async () => {
    const config = {
      model: { arch: "llama", dim: 32, layers: 1, heads: 2, kvHeads: 1, contextLength: 64 },
      data: [{ name: "docs", source: "docs.jsonl" }],
      steps: 6,
      batchTokens: 4 * 32,
      seqLen: 32,
      lr: 0.01,
      evalEvery: 3,
      seed: 1,
      out: "run",
    };
    await writeFile(join(dir, "train.json"), JSON.stringify(config));
    const r = await tersor("--threads", "1", "train", "--config", join(dir, "train.json"), "--json");
    expect(r.stderr).not.toMatch(/E_/);
    expect(r.code).toBe(0);
    const out = join(dir, "run");
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ out, architecture: "llama", steps: 6, tokens_seen: 6 * 128 });
    expect(Object.keys(summary.validation)).toEqual(["docs"]);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "trainer_state.json", "train_log.jsonl", "loss.svg", "loss.png"]) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    const lines = (await readFile(join(out, "train_log.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === "step").map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines.filter((l) => l.type === "eval").map((l) => l.step)).toEqual([0, 3, 6]);
    expect(lines[0]).toMatchObject({ type: "eval", step: 0 });
    expect(await readFile(join(out, "loss.svg"), "utf8")).toMatch(/^<svg/);
    expect([...(await readFile(join(out, "loss.png"))).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);

    // The checkpoint is a model the other commands load.
    const ppl = await tersor("eval", "ppl", out, "--data", join(dir, "docs.jsonl"), "--json", "--max-docs", "5");
    expect(ppl.code).toBe(0);
    const bpb = JSON.parse(ppl.stdout).bits_per_byte;
    expect(bpb).toBeGreaterThan(0);
    expect(bpb).toBeLessThan(8);

    // --resume with more steps is refused only when the run's hyper-parameters change; the same run continues.
    const again = await tersor("--threads", "1", "train", "--config", join(dir, "train.json"), "--resume", "--json");
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).steps).toBe(6);
  });

  it("reports config errors with their reason", async () => {
    await writeFile(join(dir, "bad.json"), JSON.stringify({ model: { dim: 30, layers: 1, heads: 4, contextLength: 16 }, data: ["corpus:moby"], steps: 1, batchTokens: 16, out: "bad" }));
    const r = await tersor("train", "--config", join(dir, "bad.json"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/E_RANGE: invalid model: heads 4 does not divide dim 30/);
    await writeFile(join(dir, "fn.json"), JSON.stringify({ weightsCallback: "x" }));
    expect((await tersor("train", "--config", join(dir, "fn.json"))).stderr).toMatch(/cannot set "weightsCallback"/);
    expect((await tersor("train", "--config", join(dir, "missing.json"))).stderr).toMatch(/E_IO/);
  });

  it("rebases relative paths on the config's directory", () => {
    const o = trainOptionsFromJson({ data: ["a.jsonl", "corpus:moby", { source: ["b/*.jsonl"] }], model: { fromCheckpoint: "ck" }, out: "o" }, "/base");
    expect(o.data).toEqual(["/base/a.jsonl", "corpus:moby", { source: ["/base/b/*.jsonl"] }]);
    expect(o.model).toEqual({ fromCheckpoint: "/base/ck" });
    expect(o.out).toBe("/base/o");
  });

  it("writes the log in step order and plots training and validation loss", () => {
    const step = (s: number) => ({ step: s, loss: 5 - s, lr: 1, gradNorm: 1, clipped: false, tokens: 1, tokensSeen: s, tokensPerSecond: 1, domainCounts: {} });
    const log = { steps: [step(1), step(2)], evals: [{ step: 0, loss: 5, domains: { a: { loss: 5, bitsPerByte: 7, tokens: 1, bytes: 1 } } }, { step: 2, loss: 3, domains: { a: { loss: 3, bitsPerByte: 4, tokens: 1, bytes: 1 } } }] };
    const types = trainLogJsonl(log)
      .trim()
      .split("\n")
      .map((l) => {
        const j = JSON.parse(l);
        return `${j.type}${j.step}`;
      });
    expect(types).toEqual(["eval0", "step1", "step2", "eval2"]);
    const spec = lossCurveSpec(log) as unknown as { data: { values: Array<{ series: string }> }; layer: unknown[] };
    expect(spec.layer.length).toBe(2);
    expect(spec.data.values.map((v) => v.series)).toEqual(["train", "train", "validation: a", "validation: a"]);
  });
});
