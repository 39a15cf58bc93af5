/**
 * `@tersor/models`: tersor's reference models, byte-level Llama-architecture checkpoints trained by
 * tersor itself on its bundled corpora (`tools/train-reference-models.mjs` reproduces them from a seed).
 * Each is a Hugging Face directory: `config.json`, `model.safetensors`, `tokenizer.json`, `README.md`.
 * @packageDocumentation
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Names of the bundled reference models. */
export const REFERENCE_MODELS = ["ref-tiny", "ref-small"] as const;
/** A bundled reference model's name. */
export type ReferenceModelName = (typeof REFERENCE_MODELS)[number];

/** Whether `name` names a bundled reference model. */
export function isReferenceModelName(name: string): name is ReferenceModelName {
  return (REFERENCE_MODELS as readonly string[]).includes(name);
}

/** The package's root folder (the reference models' directories sit in it). */
export function modelsRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..");
}

/**
 * The directory of a bundled reference model, or `undefined` when this install does not hold its
 * files (they are built by `node tools/train-reference-models.mjs`).
 */
export function referenceModelPath(name: ReferenceModelName): string | undefined {
  const dir = join(modelsRoot(), name);
  return existsSync(join(dir, "model.safetensors")) && existsSync(join(dir, "config.json")) ? dir : undefined;
}
