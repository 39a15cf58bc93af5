/**
 * Vocabulary trimming: keep the tokens a target corpus uses (by frequency, plus the special tokens),
 * slice the embedding and LM-head rows to them, and remap token ids (old → new) so the trimmed model
 * reads and predicts only the kept tokens. Trimming the LM head to a subset is exactly a softmax
 * restricted to that subset, so a model's bits per byte after trimming is measured by
 * {@link restrictLogits} on its logits; on text made only of kept tokens it can only go down (each
 * observed token's probability is divided by the kept mass ≤ 1).
 * @module
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { Tensor, TersorError, openSafetensorsDir, writeFileAtomic, writeSafetensors } from "@tersor/core";

/** Occurrences of each id in the token streams. Ids outside [0, vocab) → `E_RANGE`. */
export function tokenCounts(streams: readonly ArrayLike<number>[], vocab: number): Float64Array {
  const c = new Float64Array(vocab);
  for (const s of streams) {
    for (let i = 0; i < s.length; i++) {
      const t = s[i]!;
      if (!(t >= 0 && t < vocab && Number.isInteger(t))) throw new TersorError("E_RANGE", `token ${t} is not an id of the vocabulary [0, ${vocab})`);
      c[t]!++;
    }
  }
  return c;
}

/** A vocabulary restriction: the kept ids (ascending) and the old → new map (−1 for dropped ids). */
export interface VocabTrim {
  kept: Int32Array;
  oldToNew: Int32Array;
}

/**
 * The ids to keep: every id counted at least `minCount` times, at most `maxSize` of them (the most
 * frequent; ties by lower id), plus `always` (special tokens), returned in ascending id order.
 */
export function chooseVocabulary(counts: Float64Array, options: { minCount?: number; maxSize?: number; always?: readonly number[] } = {}): VocabTrim {
  const V = counts.length;
  const minCount = options.minCount ?? 1;
  const always = new Set(options.always ?? []);
  for (const a of always) if (!(a >= 0 && a < V)) throw new TersorError("E_RANGE", `always-kept id ${a} is not in [0, ${V})`);
  let cands = Array.from({ length: V }, (_, i) => i).filter((i) => !always.has(i) && counts[i]! >= minCount);
  cands.sort((a, b) => counts[b]! - counts[a]! || a - b);
  if (options.maxSize !== undefined) {
    if (!Number.isInteger(options.maxSize) || options.maxSize < always.size) throw new TersorError("E_RANGE", `maxSize ${options.maxSize} must be an integer ≥ the ${always.size} always-kept ids`);
    cands = cands.slice(0, options.maxSize - always.size);
  }
  const kept = Int32Array.from([...always, ...cands].sort((a, b) => a - b));
  if (kept.length === 0) throw new TersorError("E_RANGE", "the trimmed vocabulary would be empty");
  const oldToNew = new Int32Array(V).fill(-1);
  kept.forEach((id, i) => (oldToNew[id] = i));
  return { kept, oldToNew };
}

/** Token ids remapped to the trimmed vocabulary; a dropped id → `E_RANGE` naming it. */
export function remapTokens(tokens: ArrayLike<number>, trim: VocabTrim): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const n = trim.oldToNew[tokens[i]!] ?? -1;
    if (n < 0) throw new TersorError("E_RANGE", `token ${tokens[i]} at ${i} was trimmed from the vocabulary`);
    out[i] = n;
  }
  return out;
}

/** `[rows, V]` logits → `[rows, kept]` logits of the trimmed LM head. */
export function restrictLogits(logits: Float32Array, vocab: number, trim: VocabTrim): Float32Array {
  const rows = logits.length / vocab;
  if (!Number.isInteger(rows)) throw new TersorError("E_SHAPE", `${logits.length} logits are not rows of ${vocab}`);
  const K = trim.kept.length;
  const out = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) out[r * K + i] = logits[r * vocab + trim.kept[i]!]!;
  return out;
}

/** Rows `kept` of a `[V, C]` matrix. */
export function sliceRows(m: Float32Array, V: number, kept: Int32Array): Float32Array {
  const C = m.length / V;
  if (!Number.isInteger(C)) throw new TersorError("E_SHAPE", `${m.length} values are not ${V} rows`);
  const out = new Float32Array(kept.length * C);
  kept.forEach((id, i) => out.set(m.subarray(id * C, (id + 1) * C), i * C));
  return out;
}

/** Names of the vocabulary-indexed matrices in Hugging Face checkpoints (Llama/Qwen2 and GPT-2). */
const VOCAB_TENSORS = ["model.embed_tokens.weight", "lm_head.weight", "transformer.wte.weight"];

/**
 * Writes a trimmed copy of a Hugging Face checkpoint: the embedding and LM-head rows of the kept
 * ids, `vocab_size` updated, every other tensor as is, and `vocab_trim.json` with the kept ids (the
 * tokenizer's id map: new id i is old id kept[i]). Returns the sizes before and after.
 */
export async function trimCheckpoint(dir: string, out: string, trim: VocabTrim): Promise<{ bytesBefore: number; bytesAfter: number; vocabBefore: number; vocabAfter: number }> {
  const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const V = Number(config["vocab_size"]);
  if (V !== trim.oldToNew.length) throw new TersorError("E_SHAPE", `the checkpoint's vocabulary has ${V} tokens, the trim was chosen over ${trim.oldToNew.length}`);
  const src = await openSafetensorsDir(dir);
  const tensors: [string, Tensor][] = [];
  let before = 0;
  let after = 0;
  try {
    for (const info of src.tensors) {
      const t = await src.read(info.name);
      before += info.byteLength;
      if (VOCAB_TENSORS.includes(info.name)) {
        if (t.shape[0] !== V || t.dtype !== "f32") throw new TersorError("E_SHAPE", `${info.name}: expected f32 [${V}, hidden], got ${t.dtype} [${t.shape.join(", ")}]`);
        const s = sliceRows(t.data as Float32Array, V, trim.kept);
        tensors.push([info.name, new Tensor("f32", [trim.kept.length, t.shape[1]!], s)]);
        after += s.byteLength;
      } else {
        tensors.push([info.name, t]);
        after += info.byteLength;
      }
    }
  } finally {
    await src.close();
  }
  await mkdir(out, { recursive: true });
  await writeSafetensors(join(out, "model.safetensors"), tensors);
  await writeFileAtomic(join(out, "config.json"), JSON.stringify({ ...config, vocab_size: trim.kept.length }, null, 2) + "\n");
  await writeFileAtomic(join(out, "vocab_trim.json"), JSON.stringify({ format: "tersor-vocab-trim", version: 1, from: dir, vocabBefore: V, kept: Array.from(trim.kept) }) + "\n");
  return { bytesBefore: before, bytesAfter: after, vocabBefore: V, vocabAfter: trim.kept.length };
}
