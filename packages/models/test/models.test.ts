/**
 * The bundled reference models load by name, in the Hugging Face layout with the byte-level
 * tokenizer, and beat a byte-unigram model (fitted on the train split) on a slice of every
 * domain's test split.
 */
import { statSync } from "node:fs";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { byteUnigramBitsPerByte, loadModel } from "@tersor/model";
import { describe, expect, it } from "vitest";

import { REFERENCE_MODELS, isReferenceModelName, modelsRoot, referenceModelPath } from "../src/index.js";

const DOMAINS = ["sotu", "moby", "email-ham", "email-spam", "wordnet"];
const enc = new TextEncoder();

const cache = new Map<string, Promise<Uint8Array[]>>();
function bytesOf(domain: string, split: "train" | "test"): Promise<Uint8Array[]> {
  const key = `${domain}/${split}`;
  if (!cache.has(key)) {
    cache.set(
      key,
      (async () => {
        const out: Uint8Array[] = [];
        for await (const d of corpus(domain).docs({ split })) out.push(enc.encode(d.text));
        return out;
      })(),
    );
  }
  return cache.get(key)!;
}

/** The first `n` bytes of each of the first `docs` test documents. */
function slice(test: Uint8Array[], docs: number, n: number): Uint8Array[] {
  return test.filter((b) => b.length > 16).slice(0, docs).map((b) => b.subarray(0, n));
}

describe("@tersor/models", () => {
  it("names its models and finds their directories", () => {
    expect(REFERENCE_MODELS).toEqual(["ref-tiny", "ref-small"]);
    expect(isReferenceModelName("ref-small")).toBe(true);
    expect(isReferenceModelName("gpt-5")).toBe(false);
    for (const name of REFERENCE_MODELS) expect(referenceModelPath(name)).toBe(join(modelsRoot(), name));
  });

  it("ships the package within 30 MB", () => {
    let total = 0;
    for (const name of REFERENCE_MODELS) for (const f of ["config.json", "model.safetensors", "tokenizer.json", "README.md"]) total += statSync(join(modelsRoot(), name, f)).size;
    expect(total).toBeLessThan(30e6);
  });

  it.each(REFERENCE_MODELS)("%s loads by name and beats the byte-unigram baseline on every domain's test slice", async (name) => {
    const model = await loadModel(name, { progress: "silent" });
    expect(model.architecture).toBe("llama");
    expect(model.tokenizer.kind).toBe("byte");
    expect(model.warnings).toEqual([]);
    for (const domain of DOMAINS) {
      const piece = slice(await bytesOf(domain, "test"), 3, model.maxLength);
      let nats = 0;
      let bytes = 0;
      for (const b of piece) {
        const lp = await model.logprobs(Array.from(b));
        nats -= lp.reduce((a, x) => a + x, 0);
        bytes += b.length - 1;
      }
      const bpb = nats / Math.LN2 / bytes;
      // The baseline scores the same predicted bytes (all but each slice's first).
      const unigram = byteUnigramBitsPerByte(await bytesOf(domain, "train"), piece.map((b) => b.subarray(1)));
      expect(bpb, `${name} on ${domain}`).toBeLessThan(unigram);
    }
  });
});
