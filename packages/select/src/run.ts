/**
 * The selection pipeline behind `tersor select`: one method, a budget, an optional target; returns
 * the kept positions (input order), a score per document and a reason, plus report figures.
 */
import { TersorError } from "@tersor/core";
import { z } from "zod";

import { type SelectDoc, resolveBudget } from "./io.js";
import { Coverage, FacilityLocation, cosineSimilarity, lazyGreedy, naiveGreedy, stochasticGreedy } from "./setfunctions.js";
import {
  type Vectors,
  dsirLogWeights,
  farthestPoint,
  fitDsir,
  gioSelect,
  gumbelTopK,
  novelSelect,
  novelSum,
  rdsPlus,
  rs2Schedule,
  hashedFeatures,
  kdeEntropy,
  meanNearestNeighbourDistance,
  questsMsc,
  selectRandom,
  selectStratified,
  topK,
  zipfitScores,
} from "./selectors.js";
import { gopherFilter } from "./filters.js";
import { DEFAULT_SELECT_MODEL, embedTexts, openSelectModel, perplexities } from "./model.js";

export const SELECT_METHODS = ["random", "stratified", "rs2", "dsir", "zipfit", "gio", "rds", "novelselect", "perplexity", "quests", "kcenter", "facility-location", "coverage", "gopher"] as const;
export type SelectMethod = (typeof SELECT_METHODS)[number];

export const SelectOptionsSchema = z
  .object({
    method: z.enum(SELECT_METHODS),
    budget: z.union([z.string(), z.number()]).optional(),
    seed: z.number().int().min(0).default(0),
    optimizer: z.enum(["naive", "lazy", "stochastic"]).default("lazy"),
    level: z.number().int().min(0).max(9).default(9),
    bandwidth: z.number().gt(0).default(0.5),
    featureDim: z.number().int().min(8).max(1 << 16).default(256),
    /** Vectors: "hashed" n-gram features (default), or a model (directory, .gguf, or name such as ref-small) for mean-pooled embeddings. */
    embed: z.string().min(1).default("hashed"),
    /** Model for the perplexity filter (default ref-small). */
    model: z.string().min(1).optional(),
    maxTokens: z.number().int().min(2).default(256),
    /** Perplexity filter: keep the `budget` lowest-perplexity documents ("low") or the closest to the target median ("target"). */
    perplexityKeep: z.enum(["low", "target"]).default("low"),
    /** RS2: epochs in the index schedule. */
    epochs: z.number().int().min(1).default(1),
  })
  .strict();
export type SelectOptions = z.input<typeof SelectOptionsSchema>;

export interface SelectResult {
  method: SelectMethod;
  kept: number[];
  scores: (number | null)[];
  reasons: string[];
  /** Per-rule counts (gopher), per-domain quota (stratified). */
  details: Record<string, unknown>;
}

const NEEDS_TARGET: readonly SelectMethod[] = ["dsir", "zipfit", "gio", "rds"];

export async function runSelect(docs: readonly SelectDoc[], target: readonly string[] | null, options: SelectOptions): Promise<SelectResult> {
  const o = SelectOptionsSchema.parse(options);
  const n = docs.length;
  if (n === 0) throw new TersorError("E_RANGE", "the input has no documents");
  if (NEEDS_TARGET.includes(o.method)) {
    if (!target) throw new TersorError("E_RANGE", `--method ${o.method} needs --target`);
    if (target.length === 0) throw new TersorError("E_RANGE", "the target is empty");
  }
  const texts = docs.map((d) => d.text);
  const ids = docs.map((d) => d.id);
  if (o.method === "gopher") {
    const g = gopherFilter(texts);
    const kept = g.keep.flatMap((k, i) => (k ? [i] : []));
    return { method: o.method, kept, scores: g.reasons.map((r) => -r.length), reasons: g.reasons.map((r) => (r.length ? r.join(",") : "passes")), details: { ruleCounts: g.counts } };
  }
  if (o.budget === undefined) throw new TersorError("E_RANGE", `--method ${o.method} needs --budget`);
  const k = resolveBudget(o.budget, n);
  let embedModel: Awaited<ReturnType<typeof openSelectModel>> | undefined;
  const vectors = async (t: readonly string[]): Promise<Vectors> => {
    if (o.embed === "hashed") return hashedFeatures(t, o.featureDim);
    embedModel ??= await openSelectModel(o.embed);
    return embedTexts(embedModel, t, o.maxTokens);
  };
  const mark = (kept: number[], scores: (number | null)[], why: string, details: Record<string, unknown> = {}): SelectResult => {
    const set = new Set(kept);
    return { method: o.method, kept: [...kept].sort((a, b) => a - b), scores, reasons: docs.map((_, i) => (set.has(i) ? why : "not selected")), details };
  };
  switch (o.method) {
    case "random": {
      const r = selectRandom(ids, k, o.seed);
      return mark(r.indices, Array.from(r.scores), `random (seed ${o.seed})`);
    }
    case "rs2": {
      const schedule = rs2Schedule(n, k, o.epochs, o.seed);
      return mark(schedule[0]!, docs.map(() => null), "RS2 epoch 0", { schedule });
    }
    case "stratified": {
      const r = selectStratified(ids, docs.map((d) => d.domain), k, o.seed);
      return mark(r.indices, docs.map(() => null), "stratified by domain", { quota: r.quota });
    }
    case "dsir": {
      const model = await fitDsir(texts, target!);
      const w = await dsirLogWeights(model, texts);
      return mark(gumbelTopK(w, k, o.seed, ids), Array.from(w), "DSIR importance (Gumbel top-k)");
    }
    case "zipfit": {
      const s = await zipfitScores(texts, target!, o.level);
      return mark(topK(s, k), Array.from(s), "ZIP-FIT alignment top-k");
    }
    case "perplexity": {
      const model = await openSelectModel(o.model ?? DEFAULT_SELECT_MODEL);
      const ppl = await perplexities(model, texts, o.maxTokens);
      let score = Array.from(ppl, (p) => (Number.isFinite(p) ? -p : -Infinity));
      if (o.perplexityKeep === "target") {
        if (!target || target.length === 0) throw new TersorError("E_RANGE", "--perplexity-keep target needs a non-empty --target");
        const tp = Array.from(await perplexities(model, target, o.maxTokens)).filter(Number.isFinite).sort((a, b) => a - b);
        const med = tp[Math.floor(tp.length / 2)]!;
        score = Array.from(ppl, (p) => (Number.isFinite(p) ? -Math.abs(Math.log(p) - Math.log(med)) : -Infinity));
      }
      return mark(topK(score, k), Array.from(ppl), `perplexity (${o.perplexityKeep})`);
    }
    case "novelselect": {
      const v = await vectors(texts);
      const picked = novelSelect(v, k);
      const rank = new Map(picked.map((j, r) => [j, r]));
      return mark(picked, docs.map((_, i) => (rank.has(i) ? k - rank.get(i)! : null)), "NovelSelect");
    }
    case "gio":
    case "rds": {
      const v = await vectors(texts);
      const t = await vectors(target!);
      if (o.method === "gio") {
        const g = gioSelect(v, t, k);
        const rank = new Map(g.order.map((j, r) => [j, r]));
        return mark(g.order, docs.map((_, i) => (rank.has(i) ? -g.kl[rank.get(i)!]! : null)), "GIO: lowers KL(target || selected)", { klAfterEachPick: g.kl });
      }
      const picked = rdsPlus(v, t, target!.map(() => "target"), k);
      const rank = new Map(picked.map((j, r) => [j, r]));
      return mark(picked, docs.map((_, i) => (rank.has(i) ? k - rank.get(i)! : null)), "RDS+ cosine to target");
    }
    case "quests":
    case "kcenter": {
      const v = await vectors(texts);
      const picked = o.method === "quests" ? questsMsc(v, k, o.bandwidth) : farthestPoint(v, k);
      const rank = new Map(picked.map((j, r) => [j, r]));
      return mark(picked, docs.map((_, i) => (rank.has(i) ? k - rank.get(i)! : null)), o.method === "quests" ? "QUESTS least-covered" : "farthest point");
    }
    case "facility-location":
    case "coverage": {
      const v = o.method === "coverage" ? hashedFeatures(texts, o.featureDim) : await vectors(texts);
      const f =
        o.method === "facility-location"
          ? new FacilityLocation(cosineSimilarity(v.data, v.n, v.d), n)
          : new Coverage(docs.map((_, i) => { const s: number[] = []; for (let b = 0; b < v.d; b++) if (v.data[i * v.d + b]! > 0) s.push(b); return s; }));
      const g = o.optimizer === "naive" ? naiveGreedy(f, k) : o.optimizer === "lazy" ? lazyGreedy(f, k) : stochasticGreedy(f, k, 0.1, o.seed);
      const gain = new Map(g.order.map((j, r) => [j, g.gains[r]!]));
      return mark(g.order, docs.map((_, i) => gain.get(i) ?? null), `${o.method} ${o.optimizer} greedy`, { evaluations: g.evaluations, picked: g.order.length });
    }
  }
}

/** Diversity figures of a subset over hashed features: KDE entropy and mean nearest-neighbour distance. */
export async function diversity(texts: readonly string[], bandwidth = 0.5, dim = 256): Promise<{ kdeEntropy: number; meanNnDistance: number; novelSum: number }> {
  const v: Vectors = hashedFeatures(texts, dim);
  const all = Array.from({ length: v.n }, (_, i) => i);
  return { kdeEntropy: await kdeEntropy(v, bandwidth), meanNnDistance: meanNearestNeighbourDistance(v), novelSum: novelSum(v, all) };
}
