/**
 * Student training by knowledge distillation through @tersor/model's `train()`: its `lossGrad`
 * hook gets the student's logits of every micro-batch, the fused native loss ({@link kdLoss}) turns
 * them and the teacher's targets into the loss and ∂loss/∂logits, and the trainer backpropagates
 * that. The teacher's targets come either from a teacher-logit cache (looked up by document and
 * position: a shadow of the trainer's packed loader, same data and seed, says which document
 * pieces each window was cut from) or from a teacher model run on the same windows.
 *
 * Total loss per position: `alpha`·KD + (1 − `alpha`)·CE on the next token.
 * @module
 */
import { crc32 } from "node:zlib";

import { TersorError } from "@tersor/core";
import {
  BYTE_EOS,
  type DomainData,
  ModelShapeSchema,
  PackedLoader,
  type TrainBatch,
  type TrainOptions,
  type TrainResult,
  loadDomains,
  normaliseWeights,
  readHfConfig,
  train,
  transformerConfigOf,
} from "@tersor/model";
import type { DistillTeacher, TrainTargets, TransformerConfig } from "@tersor/native";
import { z } from "zod";

import { type CacheTeacher, TeacherCache } from "./cache.js";
import { checkVocab, kdLoss, parseLossSpec } from "./losses.js";

/** The distillation part of {@link DistillTrainOptions}. */
export const DistillSpecSchema = z.strictObject({
  /** Loss spec: fkl, rkl, gkd:β, tv, ttm, wttm, mixce:η (see {@link parseLossSpec}). */
  loss: z.string().default("fkl"),
  temperature: z.number().finite().gt(0, "temperature must be > 0").default(1),
  /** Weight of the KD term; 1 − alpha weighs cross-entropy on the next token. */
  alpha: z.number().min(0).max(1).default(0.5),
  /** Tail of a top-k cache: renormalise over the k ids (`zero`) or spread the rest (`uniform`). */
  tail: z.enum(["zero", "uniform"]).default("zero"),
});
export type DistillSpec = z.input<typeof DistillSpecSchema>;

/** Options of {@link distillTrain}: `train()`'s options (no `targets`/`lossGrad`/`resume`) plus the teacher and the loss. */
export type DistillTrainOptions = Omit<TrainOptions, "targets" | "lossGrad" | "resume" | "weightsCallback"> &
  DistillSpec & {
    /** A teacher-logit cache directory (or an opened cache) written over the same `data`. */
    cache?: string | TeacherCache;
    /** A teacher model run on the fly on the student's windows. */
    teacher?: CacheTeacher;
    /**
     * Forward KL at T = 1 from a sampled (proposal = teacher) or zero-tail top-k cache goes through
     * the trainer's fused sparse soft-target step (default true); false forces the loss hook.
     */
    sparseFastPath?: boolean;
  };

/** CRC32 of each domain's train token stream: ties a cache to the data it was written for. */
export function dataFingerprint(domains: readonly DomainData[]): Record<string, { docs: number; tokens: number; crc32: number }> {
  const out: Record<string, { docs: number; tokens: number; crc32: number }> = {};
  for (const d of domains) {
    const t = d.train.tokens;
    out[d.name] = { docs: d.train.starts.length - 1, tokens: t.length, crc32: crc32(new Uint8Array(t.buffer, t.byteOffset, t.byteLength)) >>> 0 };
  }
  return out;
}

/** The student's runtime config, from a model shape or a checkpoint. */
export async function studentConfig(model: TrainOptions["model"]): Promise<TransformerConfig> {
  if (typeof model === "object" && model !== null && "fromCheckpoint" in model) return (await readHfConfig(model.fromCheckpoint)).config;
  const r = ModelShapeSchema.safeParse(model);
  if (!r.success) throw new TersorError("E_RANGE", `invalid student model: ${z.prettifyError(r.error)}`);
  return transformerConfigOf(r.data);
}

/**
 * Trains a student against a teacher (cache or model). The cache must have been written over the
 * same data (its manifest's fingerprint is checked: `E_RANGE` otherwise) with the trainer's
 * stream layout (documents followed by EOS; `tersor distill cache` writes it so). Teacher and
 * student vocabularies must match (`E_SHAPE` naming both).
 */
export async function distillTrain(options: DistillTrainOptions): Promise<TrainResult & { distill: { loss: string; temperature: number; alpha: number; source: "cache" | "teacher"; path: "sparse-targets" | "loss-hook" } }> {
  const { cache: cacheOpt, teacher, sparseFastPath: _fastOpt, loss: lossOpt, temperature: tOpt, alpha: aOpt, tail: tailOpt, ...trainOpts } = options;
  const spec = DistillSpecSchema.safeParse({ loss: lossOpt, temperature: tOpt, alpha: aOpt, tail: tailOpt });
  if (!spec.success) throw new TersorError("E_RANGE", `invalid distillation options: ${z.prettifyError(spec.error)}`);
  const { loss, temperature, alpha, tail } = spec.data;
  const lossSpec = parseLossSpec(loss);
  if ((cacheOpt === undefined) === (teacher === undefined)) throw new TersorError("E_RANGE", "distillation needs exactly one teacher source: a cache or a teacher model");
  const config = await studentConfig(trainOpts.model);
  const V = config.vocabSize;
  const seqLen = trainOpts.seqLen ?? config.maxPositions;

  let cache: TeacherCache | undefined;
  let ownCache = false;
  let shadow: PackedLoader | undefined;
  let weights: Float64Array | undefined;
  let names: string[] = [];
  let firstDoc: number[] = [];
  if (cacheOpt !== undefined) {
    cache = typeof cacheOpt === "string" ? await TeacherCache.open(cacheOpt) : cacheOpt;
    ownCache = typeof cacheOpt === "string";
  }
  try {
    if (cache) {
      checkVocab(cache.vocab, V, "teacher cache");
      if (cache.mode === "sample" && !(lossSpec.loss === "fkl" || (lossSpec.loss === "gkd" && lossSpec.param === 0))) {
        throw new TersorError("E_RANGE", `a random-sampling cache estimates the teacher without bias only for forward KL (fkl or gkd:0), not ${loss}`);
      }
      const domains = await loadDomains(trainOpts.data, trainOpts.domains);
      names = domains.map((d) => d.name);
      const fp = dataFingerprint(domains);
      const m = cache.manifest;
      const have = (m.meta["fingerprint"] ?? {}) as Record<string, { docs: number; tokens: number; crc32: number }>;
      firstDoc = names.map((n) => {
        const sec = m.sections.find((s) => s.name === n);
        const f = have[n];
        if (!sec || !f || f.crc32 !== fp[n]!.crc32 || f.docs !== fp[n]!.docs || sec.docCount !== fp[n]!.docs) {
          throw new TersorError("E_RANGE", `the teacher cache in ${cache!.dir} was not written over this training data (domain "${n}" ${sec ? "differs" : "is missing"}); write it with \`tersor distill cache\` over the same --data`);
        }
        return sec.firstDoc;
      });
      const w = trainOpts.weights;
      weights = normaliseWeights(w as Record<string, number> | number[] | undefined, names);
      shadow = new PackedLoader(domains, seqLen, trainOpts.seed ?? 0);
    } else {
      checkVocab(teacher!.vocabSize, V);
      if (teacher!.maxLength < seqLen) throw new TersorError("E_RANGE", `the teacher's context ${teacher!.maxLength} is shorter than the student's sequences (${seqLen})`);
    }

    const kdOptions = { loss: lossSpec, temperature, kdWeight: alpha, ceWeight: 1 - alpha, grad: true } as const;
    /** The cache's targets of a micro-batch's `[batch, seqLen]` next tokens. */
    const cacheTargets = async (tb: TrainBatch) => {
      const c = cache!;
      const rows = tb.batch * tb.seqLen;
      const b = shadow!.next(tb.batch, weights!);
      if (b.tokens.length !== tb.tokens.length || b.tokens.some((t, i) => t !== tb.tokens[i])) {
        throw new TersorError("E_NATIVE", `distillation: the cache lookup lost step with the trainer's loader at step ${tb.step + 1}`);
      }
      const k = c.k;
      const ids = new Int32Array(rows * k).fill(-1);
      const values = new Float32Array(rows * k);
      const tailLogMass = c.mode === "topk" ? new Float32Array(rows) : undefined;
      for (let s = 0; s < tb.batch; s++) {
        let w = 0; // window index of the segment's first token; targets are window tokens 1 … seqLen
        for (const seg of b.segments[s]!) {
          const lo = Math.max(w, 1);
          const hi = w + seg.length;
          if (lo < hi) {
            const doc = firstDoc[b.domains[s]!]! + seg.doc;
            const sl = await c.read(doc, seg.offset + (lo - w), hi - lo);
            const row = s * tb.seqLen + lo - 1;
            ids.set(sl.ids, row * k);
            values.set(sl.values, row * k);
            if (tailLogMass) tailLogMass.set(sl.tailLogMass!, row);
          }
          w = hi;
        }
      }
      return { k, ids, values, tailLogMass };
    };
    // Forward KL at T = 1 from sparse targets whose weights sum to 1 (sampled from the teacher
    // itself, or top-k renormalised) is the trainer's own sparse soft-target loss: the targets go
    // straight to its fused step, with the CE share as one more (label, 1 − alpha) pair.
    const fast =
      cache !== undefined &&
      options.sparseFastPath !== false &&
      temperature === 1 &&
      (lossSpec.loss === "fkl" || (lossSpec.loss === "gkd" && lossSpec.param === 0)) &&
      ((cache.mode === "sample" && cache.manifest.proposalTemperature === 1) || (cache.mode === "topk" && tail === "zero"));
    const result = fast
      ? await train({
          ...trainOpts,
          targets: async (tb): Promise<TrainTargets> => {
            const t = await cacheTargets(tb);
            const rows = tb.batch * tb.seqLen;
            const k1 = t.k + 1;
            const ids = new Int32Array(rows * k1).fill(-1);
            const w = new Float32Array(rows * k1);
            for (let r = 0; r < rows; r++) {
              let z = 0;
              for (let i = 0; i < t.k; i++) if (t.ids[r * t.k + i]! >= 0) z += t.tailLogMass ? Math.exp(t.values[r * t.k + i]!) : t.values[r * t.k + i]!;
              for (let i = 0; i < t.k; i++) {
                const id = t.ids[r * t.k + i]!;
                if (id < 0 || z <= 0) continue;
                ids[r * k1 + i] = id;
                w[r * k1 + i] = (alpha * (t.tailLogMass ? Math.exp(t.values[r * t.k + i]!) : t.values[r * t.k + i]!)) / z;
              }
              if (alpha < 1 && tb.targets[r]! >= 0) {
                ids[r * k1 + t.k] = tb.targets[r]!;
                w[r * k1 + t.k] = 1 - alpha;
              }
            }
            return { kind: "sparse", k: k1, ids, weights: w };
          },
        })
      : await train({
          ...trainOpts,
          lossGrad: async (tb, logits) => {
            const rows = tb.batch * tb.seqLen;
            let target: DistillTeacher;
            if (cache) {
              const t = await cacheTargets(tb);
              target = t.tailLogMass ? { kind: "logprobs", k: t.k, ids: t.ids, logprobs: t.values, tail, tailLogMass: t.tailLogMass } : { kind: "weights", k: t.k, ids: t.ids, weights: t.values };
            } else {
              const dense = new Float32Array(rows * V);
              for (let s = 0; s < tb.batch; s++) {
                const out = await teacher!.forward(tb.tokens.subarray(s * tb.seqLen, (s + 1) * tb.seqLen));
                dense.set(out.data, s * tb.seqLen * V);
              }
              target = { kind: "dense", logits: dense };
            }
            const r = await kdLoss(logits, rows, V, target, tb.targets, kdOptions);
            return { loss: r.loss, count: r.count, dlogits: r.dlogits! };
          },
        });
    return { ...result, distill: { loss, temperature, alpha, source: cache ? "cache" : "teacher", path: fast ? "sparse-targets" : "loss-hook" } };
  } finally {
    if (ownCache) await cache!.close();
  }
}

/** Byte-level documents (UTF-8 bytes, EOS after each) as a token stream, the trainer's layout. */
export function byteStream(texts: readonly string[]): { tokens: Uint16Array; starts: Uint32Array } {
  const enc = new TextEncoder();
  const parts = texts.map((t) => enc.encode(t));
  const starts = new Uint32Array(parts.length + 1);
  let n = 0;
  parts.forEach((p, i) => {
    starts[i] = n;
    n += p.length + 1;
  });
  starts[parts.length] = n;
  const tokens = new Uint16Array(n);
  parts.forEach((p, i) => {
    tokens.set(p, starts[i]!);
    tokens[starts[i]! + p.length] = BYTE_EOS;
  });
  return { tokens, starts };
}

/** Held-out quality of a byte-level language model. */
export interface LmEvaluation {
  /** Mean negative log-likelihood per predicted token (nats). */
  loss: number;
  /** Total NLL in bits over the UTF-8 bytes of the text (EOS predictions counted in the NLL, not in the bytes). */
  bitsPerByte: number;
  /** Expected calibration error of the next-token (top-1) predictions, equal-width confidence bins. */
  ece: number;
  /** Top-1 next-token accuracy. */
  accuracy: number;
  tokens: number;
  bytes: number;
}

/**
 * Scores `stream` in non-overlapping windows of `seqLen + 1` tokens with `logitsOf` (batched,
 * `[batch·len, vocab]` logits): NLL, bits per byte, top-1 accuracy and ECE with `bins` equal-width
 * bins — `isByte` says which targets are UTF-8 bytes (default: ids below 256, the byte tokenizer) — ECE = Σ_b (n_b / N)·|acc_b − conf_b| (Guo et al. 2017, "On calibration of modern neural
 * networks", ICML).
 */
export async function evaluateLm(
  logitsOf: (tokens: Int32Array, batch: number, len: number) => Promise<Float32Array>,
  vocab: number,
  stream: { tokens: ArrayLike<number> },
  seqLen: number,
  options: { maxTokens?: number; bins?: number; batch?: number; isByte?: (id: number) => boolean } = {},
): Promise<LmEvaluation> {
  const isByte = options.isByte ?? ((id: number) => id < 256);
  const bins = options.bins ?? 15;
  const maxTokens = options.maxTokens ?? Infinity;
  const batch = options.batch ?? 8;
  const t = stream.tokens;
  const wins: Int32Array[] = [];
  let left = maxTokens;
  for (let p = 0; p + 1 < t.length && left > 0; p += seqLen + 1) {
    const end = Math.min(t.length, p + seqLen + 1, p + left + 1);
    wins.push(Int32Array.from({ length: end - p }, (_, i) => t[p + i]!));
    left -= end - p - 1;
  }
  if (wins.length === 0) throw new TersorError("E_RANGE", "evaluation: the held-out text is empty");
  let nll = 0;
  let n = 0;
  let bytes = 0;
  let correct = 0;
  const binConf = new Float64Array(bins);
  const binAcc = new Float64Array(bins);
  const binN = new Float64Array(bins);
  const score = async (group: Int32Array[], len: number) => {
    const input = new Int32Array(group.length * len);
    group.forEach((w, i) => input.set(w.subarray(0, len), i * len));
    const logits = await logitsOf(input, group.length, len);
    if (logits.length !== group.length * len * vocab) throw new TersorError("E_SHAPE", `evaluation: got ${logits.length} logits, expected ${group.length * len * vocab}`);
    group.forEach((w, gi) => {
      for (let j = 0; j < len; j++) {
        const row = logits.subarray((gi * len + j) * vocab, (gi * len + j + 1) * vocab);
        const y = w[j + 1]!;
        let m = -Infinity;
        let arg = 0;
        for (let v = 0; v < vocab; v++) {
          if (row[v]! > m) {
            m = row[v]!;
            arg = v;
          }
        }
        let z = 0;
        for (let v = 0; v < vocab; v++) z += Math.exp(row[v]! - m);
        nll += Math.log(z) - (row[y]! - m);
        const conf = 1 / z;
        const ok = arg === y ? 1 : 0;
        correct += ok;
        const b = Math.min(bins - 1, Math.floor(conf * bins));
        binConf[b]! += conf;
        binAcc[b]! += ok;
        binN[b]!++;
        n++;
        if (isByte(y)) bytes++;
      }
    });
  };
  const full = wins.filter((w) => w.length === seqLen + 1);
  for (let i = 0; i < full.length; i += batch) await score(full.slice(i, i + batch), seqLen);
  for (const w of wins.filter((x) => x.length !== seqLen + 1)) if (w.length > 1) await score([w], w.length - 1);
  let ece = 0;
  for (let b = 0; b < bins; b++) if (binN[b]! > 0) ece += (binN[b]! / n) * Math.abs(binAcc[b]! / binN[b]! - binConf[b]! / binN[b]!);
  return { loss: nll / n, bitsPerByte: bytes > 0 ? nll / Math.LN2 / bytes : NaN, ece, accuracy: correct / n, tokens: n, bytes };
}
