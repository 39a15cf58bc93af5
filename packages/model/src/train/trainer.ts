/**
 * `train()`: the training loop over the native trainable transformer — AdamW (decoupled weight
 * decay, Loshchilov & Hutter 2019) with f32 master weights, warmup + cosine/linear decay,
 * global-norm clipping, gradient accumulation, per-domain sampling weights (fixed or from a
 * callback), per-domain validation loss, Hugging Face checkpoints with exact resume.
 */
import { TersorError, progress, setNumThreads } from "@tersor/core";
import { type NativeTrainable, type TrainTargets, type TransformerConfig, native } from "@tersor/native";

import type { ModelArchitecture } from "../config.js";
import { type TrainerState, checkOutDir, hfConfigJson, loadOptimizer, loadParams, readHfConfig, readTrainerState, writeCheckpoint } from "./checkpoint.js";
import { type DomainData, PackedLoader, loadDomains, normaliseWeights, validationWindows } from "./data.js";
import {
  type EvalRecord,
  type ParsedTrainOptions,
  type StepRecord,
  type TrainBatch,
  type TrainLog,
  type TrainOptions,
  TRAIN_ARCHITECTURES,
  parseTrainOptions,
  transformerConfigOf,
} from "./options.js";
import { learningRate } from "./schedule.js";

/** What {@link train} returns. */
export interface TrainResult extends TrainLog {
  /** Optimizer steps completed (including those of a resumed run). */
  step: number;
  tokensSeen: number;
  parameterCount: number;
  architecture: ModelArchitecture;
  config: TransformerConfig;
  /** The checkpoint directory, when `out` was given. */
  out?: string;
  /** The trained model (its weights stay in native memory until it is garbage-collected). */
  model: NativeTrainable;
}

/** The native trainer's constructor, or `E_NATIVE` when the addon was built without it. */
export function trainableConstructor(): (config: TransformerConfig, options?: { seed?: number; initStd?: number }) => NativeTrainable {
  const b = native() as Partial<ReturnType<typeof native>>;
  const C = b.TrainableTransformer;
  if (typeof C !== "function") throw new TersorError("E_NATIVE", "the native addon has no trainer (TrainableTransformer); rebuild it with `npm run build:native`");
  return (config, options) => new C(config, options);
}

const LN2 = Math.log(2);

/** Hyper-parameters that decide the run; a resume with other values is refused. */
function hyperOf(o: ParsedTrainOptions, seqLen: number, domains: string[]): Record<string, unknown> {
  return {
    batchTokens: o.batchTokens,
    seqLen,
    gradAccum: o.gradAccum,
    lr: o.lr,
    minLr: o.minLr ?? o.lr / 10,
    warmup: o.warmup,
    schedule: o.schedule,
    weightDecay: o.weightDecay,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    maxGradNorm: o.maxGradNorm,
    seed: o.seed,
    domains,
  };
}

/**
 * Per-domain validation loss: the domain's validation windows (see {@link validationWindows}),
 * scored in batches; bits per byte = loss sum / ln 2 / the number of byte targets (EOS targets are
 * scored but are not bytes).
 */
export async function evaluateDomains(model: NativeTrainable, domains: readonly DomainData[], seqLen: number, evalTokens: number, batch: number, step: number): Promise<EvalRecord> {
  const rec: EvalRecord = { step, domains: {}, loss: 0 };
  let allLoss = 0;
  let allCount = 0;
  for (const d of domains) {
    const wins = validationWindows(d, seqLen, evalTokens);
    if (wins.length === 0) continue;
    let loss = 0;
    let count = 0;
    let bytes = 0;
    const full = wins.filter((w) => w.length === seqLen + 1);
    const partial = wins.filter((w) => w.length !== seqLen + 1);
    const score = async (group: Int32Array[], T: number) => {
      const tokens = new Int32Array(group.length * T);
      const ids = new Int32Array(group.length * T);
      group.forEach((w, i) => {
        tokens.set(w.subarray(0, T), i * T);
        ids.set(w.subarray(1), i * T);
      });
      for (const t of ids) if (t < 256) bytes++;
      const r = await model.evaluate(tokens, group.length, T, { kind: "hard", ids });
      loss += r.loss;
      count += r.count;
    };
    for (let i = 0; i < full.length; i += batch) await score(full.slice(i, i + batch), seqLen);
    for (const w of partial) await score([w], w.length - 1);
    rec.domains[d.name] = { loss: loss / count, bitsPerByte: bytes > 0 ? loss / LN2 / bytes : NaN, tokens: count, bytes };
    allLoss += loss;
    allCount += count;
  }
  rec.loss = allCount > 0 ? allLoss / allCount : NaN;
  return rec;
}

/**
 * Trains a byte-level causal language model (see {@link TrainOptions}). Everything is validated
 * before any work: bad options, shapes (heads not dividing dim, kvHeads not dividing heads), data
 * (no text, unknown domains) and weights (negative, not summing to a positive value) throw
 * `E_RANGE`. A NaN or infinite loss or gradient norm stops training with `E_NATIVE` naming the step;
 * the checkpoint on disk is then the last good one, untouched.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const o = parseTrainOptions(options);

  // The model's shape.
  let arch: ModelArchitecture;
  let config: TransformerConfig;
  let configJson: Record<string, unknown>;
  let initStd = 0.02;
  if ("fromCheckpoint" in o.model) {
    const c = await readHfConfig(o.model.fromCheckpoint);
    if (!(TRAIN_ARCHITECTURES as readonly string[]).includes(c.arch)) {
      throw new TersorError("E_RANGE", `${o.model.fromCheckpoint}: training a ${c.arch} model is not supported (supported: ${TRAIN_ARCHITECTURES.join(", ")})`);
    }
    arch = c.arch;
    config = c.config;
    configJson = c.json;
  } else {
    config = transformerConfigOf(o.model);
    arch = o.model.arch;
    initStd = o.model.initStd ?? 0.02;
    configJson = hfConfigJson(o.model.arch, config, initStd);
  }
  const seqLen = o.seqLen ?? config.maxPositions;
  if (seqLen > config.maxPositions) throw new TersorError("E_RANGE", `seqLen ${seqLen} exceeds the model's context length ${config.maxPositions}`);
  const perMicro = o.batchTokens / o.gradAccum;
  const batch = perMicro / seqLen;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new TersorError("E_RANGE", `batchTokens ${o.batchTokens} must be a positive multiple of seqLen · gradAccum = ${seqLen} · ${o.gradAccum}`);
  }
  if (o.weights !== undefined && o.domains !== undefined && Array.isArray(o.weights) && o.weights.length !== o.domains.length) {
    throw new TersorError("E_RANGE", `weights: ${o.weights.length} values for ${o.domains.length} domains`);
  }
  if (o.out !== undefined) await checkOutDir(o.out);
  const create = trainableConstructor();

  // Data, then the fixed weights (checked before any training).
  const domains = await loadDomains(o.data, o.domains);
  const names = domains.map((d) => d.name);
  let weights = normaliseWeights(o.weights, names);
  const minLr = o.minLr ?? o.lr / 10;
  const evalTokens = o.evalTokens ?? 4 * seqLen;
  const hyper = hyperOf(o, seqLen, names);
  if (o.threads !== undefined) setNumThreads(o.threads);

  const model = create(config, { seed: o.seed, initStd });
  const loader = new PackedLoader(domains, seqLen, o.seed);
  const log: TrainLog = { steps: [], evals: [] };
  let start = 0;
  let tokensSeen = 0;
  let lastVal: Record<string, number> | undefined;
  let resumed: TrainerState | undefined;
  if (o.resume && o.out !== undefined) resumed = await readTrainerState(o.out);
  if (resumed) {
    const diff = Object.keys(hyper).filter((k) => JSON.stringify(hyper[k]) !== JSON.stringify(resumed!.hyper[k]));
    if (diff.length > 0) throw new TersorError("E_RANGE", `cannot resume from ${o.out}: ${diff.map((k) => `${k} was ${JSON.stringify(resumed!.hyper[k])}, now ${JSON.stringify(hyper[k])}`).join("; ")}`);
    const onDisk = await readHfConfig(o.out!);
    if (JSON.stringify(onDisk.config) !== JSON.stringify(config)) throw new TersorError("E_RANGE", `cannot resume from ${o.out}: its config.json describes another model`);
    await loadParams(o.out!, arch, config, model);
    await loadOptimizer(o.out!, model);
    loader.restore(resumed.loader);
    start = resumed.step;
    tokensSeen = resumed.tokensSeen;
    lastVal = resumed.lastValLoss;
    log.steps.push(...resumed.log.steps);
    log.evals.push(...resumed.log.evals);
  } else if ("fromCheckpoint" in o.model) {
    await loadParams(o.model.fromCheckpoint, arch, config, model);
  }

  const stateAt = (step: number): TrainerState => ({
    format: "tersor-trainer-state",
    version: 1,
    step,
    tokensSeen,
    seed: o.seed,
    loader: loader.state(),
    ...(lastVal ? { lastValLoss: lastVal } : {}),
    hyper,
    log,
  });
  let lastCheckpoint: number | undefined = resumed?.step;
  const checkpoint = async (step: number) => {
    if (o.out === undefined) return;
    await writeCheckpoint(o.out, { configJson, arch, trainable: model, state: stateAt(step) });
    lastCheckpoint = step;
  };
  const evaluate = async (step: number) => {
    const e = await evaluateDomains(model, domains, seqLen, evalTokens, batch, step);
    if (Object.keys(e.domains).length === 0) return;
    log.evals.push(e);
    lastVal = Object.fromEntries(Object.entries(e.domains).map(([k, v]) => [k, v.loss]));
    await o.onEval?.(e);
  };
  const diverged = (step: number, what: string) =>
    new TersorError(
      "E_NATIVE",
      `training diverged at step ${step + 1}: ${what}; stopped` +
        (o.out === undefined ? "" : lastCheckpoint === undefined ? ` (no checkpoint had been written to ${o.out})` : `; the last good checkpoint (step ${lastCheckpoint}) in ${o.out} is intact`),
    );

  const bar = progress({ label: "train", total: (o.steps - start) * o.batchTokens, unit: "tokens", ...(o.progress ? { mode: o.progress } : {}) });
  const scale = 1 / (batch * seqLen * o.gradAccum);
  try {
    // The untrained model's validation loss, the start of the curve.
    if (o.evalEvery > 0 && start === 0) await evaluate(0);
    for (let step = start; step < o.steps; step++) {
      const t0 = performance.now();
      if (o.weightsCallback) weights = normaliseWeights(o.weightsCallback(step, lastVal), names);
      model.zeroGrad();
      let lossSum = 0;
      let count = 0;
      const domainCounts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
      for (let micro = 0; micro < o.gradAccum; micro++) {
        const b = loader.next(batch, weights);
        for (const d of b.domains) domainCounts[names[d]!]!++;
        const tb: TrainBatch = { step, micro, tokens: b.tokens, targets: b.targets, batch, seqLen, domains: b.domains.map((d) => names[d]!) };
        if (o.lossGrad) {
          const logits = await model.forwardLogits(b.tokens, batch, seqLen);
          const r = await o.lossGrad(tb, logits);
          if (r.dlogits.length !== logits.length) throw new TersorError("E_SHAPE", `lossGrad returned ${r.dlogits.length} gradients for ${logits.length} logits`);
          const g = Float32Array.from(r.dlogits, (x) => x * scale);
          await model.backwardLogits(g);
          lossSum += r.loss;
          count += r.count;
        } else {
          const targets: TrainTargets = o.targets ? await o.targets(tb) : { kind: "hard", ids: b.targets };
          const r = await model.step(b.tokens, batch, seqLen, targets, { lossScale: scale });
          lossSum += r.loss;
          count += r.count;
        }
      }
      const loss = lossSum / count;
      if (!Number.isFinite(loss)) throw diverged(step, `the loss is ${loss}`);
      const lr = learningRate({ schedule: o.schedule, lr: o.lr, minLr, warmup: o.warmup, steps: o.steps }, step);
      const { gradNorm, clipped } = model.adamw({ lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, step: step + 1, maxGradNorm: o.maxGradNorm });
      if (!Number.isFinite(gradNorm)) throw diverged(step, `the gradient norm is ${gradNorm}`);
      tokensSeen += o.batchTokens;
      const secs = (performance.now() - t0) / 1000;
      const rec: StepRecord = { step: step + 1, loss, lr, gradNorm, clipped, tokens: o.batchTokens, tokensSeen, tokensPerSecond: o.batchTokens / Math.max(secs, 1e-9), domainCounts };
      log.steps.push(rec);
      bar.tick(o.batchTokens, { step: step + 1, loss, tokens_per_s: Math.round(rec.tokensPerSecond) });
      await o.onStep?.(rec);
      const last = step + 1 === o.steps;
      const stop = !last && (o.shouldStop?.(step + 1) ?? false);
      if (last || stop || (o.evalEvery > 0 && (step + 1) % o.evalEvery === 0)) await evaluate(step + 1);
      if (last || stop || (o.checkpointEvery > 0 && (step + 1) % o.checkpointEvery === 0)) await checkpoint(step + 1);
      if (stop) break;
    }
  } finally {
    bar.stop();
  }
  const done = log.steps.length > 0 ? log.steps[log.steps.length - 1]!.step : start;
  return {
    steps: log.steps,
    evals: log.evals,
    step: done,
    tokensSeen,
    parameterCount: model.parameterCount,
    architecture: arch,
    config,
    ...(o.out !== undefined ? { out: o.out } : {}),
    model,
  };
}
