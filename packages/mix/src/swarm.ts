/**
 * Proxy swarms (RegMix's recipe): train many small models from scratch with tersor's trainer, one
 * per candidate mixture, and record each one's per-domain validation loss in RegMix's CSV layout
 * (`mixtures.csv`: `index,train_<domain>...`; `losses.csv`: `index,metric/<domain>_val_loss...`).
 * Every mixture is drawn up front from the seed, so run i is the same run whenever it is trained;
 * a swarm started again in the same folder skips the runs already in `losses.csv` (resume without
 * duplicates). Both CSVs are rewritten atomically after every run.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { type ProgressMode, TersorError, progress, writeFileAtomic } from "@tersor/core";
import { CORPUS_NAMES } from "@tersor/corpora";
import { type ModelShape, train } from "@tersor/model";

import { lossColumn, lossCsv, mixtureCsv, parseRunTables } from "./csv.js";
import { checkDomains, generateMixtures, normalize } from "./mixture.js";

/** Proxy model shapes by name (llama, byte-level vocabulary), trained from scratch. */
export const PROXY_SHAPES: Record<string, ModelShape> = {
  /** The smallest proxy, for swarms of many runs. */
  "ref-tiny-shape": { arch: "llama", dim: 32, layers: 2, heads: 2, contextLength: 64 },
  /** A slightly larger model, for evaluating a proposed mixture. */
  "ref-small-shape": { arch: "llama", dim: 64, layers: 3, heads: 4, contextLength: 128 },
};

/** Resolves a proxy name (see {@link PROXY_SHAPES}) or passes a shape through. */
export function proxyShape(proxy: string | ModelShape): ModelShape {
  if (typeof proxy !== "string") return proxy;
  const s = PROXY_SHAPES[proxy];
  if (!s) throw new TersorError("E_RANGE", `unknown proxy "${proxy}"; expected one of ${Object.keys(PROXY_SHAPES).join(", ")}`);
  return s;
}

/** The domain name of a data source (`corpus:sotu` → `sotu`); unknown corpora → E_RANGE. */
export function domainOfSource(source: string): string {
  if (source.startsWith("corpus:")) {
    const name = source.slice("corpus:".length);
    if (!(CORPUS_NAMES as readonly string[]).includes(name)) throw new TersorError("E_RANGE", `unknown domain "${source}"; known corpora: ${CORPUS_NAMES.map((c) => "corpus:" + c).join(", ")}`);
    return name;
  }
  const base = source.split("/").pop()!.replace(/\.(jsonl|ndjson)(\.gz)?$/, "");
  if (base === "") throw new TersorError("E_RANGE", `cannot name the domain of "${source}"`);
  return base;
}

/** Training settings shared by the proxies. */
export interface ProxyTrainingOptions {
  /** Model: a name of {@link PROXY_SHAPES} or a shape [ref-tiny-shape]. */
  proxy?: string | ModelShape;
  /** Training tokens per proxy. */
  tokens: number;
  /** Tokens per optimizer step [2048]. */
  batchTokens?: number;
  lr?: number;
  /** Validation tokens per domain [4096]. */
  evalTokens?: number;
  /** Model and data seed, the same for every proxy so only the mixture differs [0]. */
  seed?: number;
  threads?: number;
}

/** Options of {@link runSwarm}. */
export interface SwarmOptions extends ProxyTrainingOptions {
  /** Data sources, one per domain (`corpus:<name>` or JSONL files). */
  sources: string[];
  /** Number of proxy runs. */
  runs: number;
  /** Output folder (mixtures.csv, losses.csv, swarm.json). */
  out: string;
  /** Prior of the mixture generator [uniform]; see {@link generateMixtures}. */
  prior?: number[];
  temperature?: number;
  minConcentration?: number;
  maxConcentration?: number;
  minWeight?: number;
  /** Called after each finished run. */
  onRun?: (r: { index: number; done: number; total: number; seconds: number }) => void;
  /** Checked before each run; true stops the swarm (it can be resumed later). */
  shouldStop?: () => boolean;
  /** Progress over the runs (core's progress: a bar on a TTY by default). */
  progress?: ProgressMode;
}

export interface SwarmResult {
  out: string;
  mixturesPath: string;
  lossesPath: string;
  domains: string[];
  /** Runs trained by this call. */
  trained: number;
  /** Runs skipped because they were already done. */
  skipped: number;
  /** Runs recorded in losses.csv. */
  completed: number;
  seconds: number;
  /** Proxy runs per hour of this call's training. */
  runsPerHour: number;
}

/** Trains one model on a mixture and returns its per-domain validation loss (and the average). */
export async function trainOnMixture(sources: readonly string[], weights: readonly number[], o: ProxyTrainingOptions): Promise<{ perDomain: Record<string, number>; average: number; parameters: number }> {
  const domains = sources.map(domainOfSource);
  const batchTokens = o.batchTokens ?? 2048;
  const steps = Math.max(1, Math.ceil(o.tokens / batchTokens));
  const r = await train({
    model: proxyShape(o.proxy ?? "ref-tiny-shape"),
    data: [...sources],
    weights: Object.fromEntries(domains.map((d, i) => [d, weights[i]!])),
    steps,
    batchTokens,
    lr: o.lr ?? 3e-3,
    warmup: Math.min(10, Math.floor(steps / 10)),
    seed: o.seed ?? 0,
    evalTokens: o.evalTokens ?? 4096,
    progress: "silent",
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
  });
  const last = r.evals.at(-1);
  if (!last) throw new TersorError("E_NATIVE", "the trainer returned no validation loss");
  const perDomain = Object.fromEntries(domains.map((d) => {
    const v = last.domains[d];
    if (!v) throw new TersorError("E_NATIVE", `no validation loss for domain "${d}" (does it have a validation split?)`);
    return [d, v.loss];
  }));
  const vals = Object.values(perDomain);
  return { perDomain, average: vals.reduce((a, b) => a + b, 0) / vals.length, parameters: r.parameterCount };
}

/** Runs (or resumes) a proxy swarm; see the module comment. */
export async function runSwarm(options: SwarmOptions): Promise<SwarmResult> {
  const { sources, runs, out } = options;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new TersorError("E_RANGE", `runs must be a positive integer, got ${runs}`);
  if (!(options.tokens > 0)) throw new TersorError("E_RANGE", `tokens must be positive, got ${options.tokens}`);
  const domains = sources.map(domainOfSource);
  checkDomains(domains);
  if (domains.length < 2) throw new TersorError("E_RANGE", "a swarm needs at least two domains");
  proxyShape(options.proxy ?? "ref-tiny-shape");
  const prior = options.prior ?? domains.map(() => 1);
  if (prior.length !== domains.length) throw new TersorError("E_SHAPE", `prior has ${prior.length} entries for ${domains.length} domains`);
  normalize(prior, "prior");
  const config = {
    format: "tersor-mix-swarm",
    version: 1,
    sources,
    domains,
    runs,
    proxy: options.proxy ?? "ref-tiny-shape",
    tokens: options.tokens,
    batchTokens: options.batchTokens ?? 2048,
    lr: options.lr ?? 3e-3,
    evalTokens: options.evalTokens ?? 4096,
    seed: options.seed ?? 0,
    prior,
    temperature: options.temperature ?? 1,
    minConcentration: options.minConcentration ?? 0.1,
    maxConcentration: options.maxConcentration ?? 5,
    minWeight: options.minWeight ?? 0,
  };
  await mkdir(out, { recursive: true });
  const cfgPath = join(out, "swarm.json");
  const mixturesPath = join(out, "mixtures.csv");
  const lossesPath = join(out, "losses.csv");
  if (existsSync(cfgPath)) {
    const old = JSON.parse(await readFile(cfgPath, "utf8")) as Record<string, unknown>;
    const { runs: _r, ...a } = old;
    const { runs: _s, ...b } = config;
    if (JSON.stringify(a) !== JSON.stringify(b))
      throw new TersorError("E_RANGE", `${out} holds a different swarm (swarm.json differs); use another --out or the same settings`);
  }
  await writeFileAtomic(cfgPath, JSON.stringify(config, null, 2) + "\n");
  const planned = generateMixtures({
    count: runs,
    prior,
    temperature: config.temperature,
    minConcentration: config.minConcentration,
    maxConcentration: config.maxConcentration,
    minWeight: config.minWeight,
    seed: config.seed,
  });
  const lossCols = domains.map(lossColumn);
  const done = new Map<number, { weights: number[]; losses: number[] }>();
  if (existsSync(lossesPath) && existsSync(mixturesPath)) {
    const t = parseRunTables(await readFile(mixturesPath, "utf8"), await readFile(lossesPath, "utf8"), { mixtures: mixturesPath, losses: lossesPath });
    if (JSON.stringify(t.domains) !== JSON.stringify(domains) || JSON.stringify(t.lossColumns) !== JSON.stringify(lossCols))
      throw new TersorError("E_FORMAT", `${out}: the CSV columns do not match the swarm's domains`);
    t.ids.forEach((id, k) => done.set(Number(id), { weights: t.mixtures[k]!, losses: t.losses[k]! }));
  }
  const write = async () => {
    const ids = [...done.keys()].sort((a, b) => a - b);
    await writeFileAtomic(mixturesPath, mixtureCsv(domains, ids.map((id) => ({ id, weights: done.get(id)!.weights }))));
    await writeFileAtomic(lossesPath, lossCsv(lossCols, ids.map((id) => ({ id, losses: done.get(id)!.losses }))));
  };
  await write();
  const skipped = planned.filter((_, i) => done.has(i + 1)).length;
  let trained = 0;
  const t0 = performance.now();
  const bar = progress({ label: "mix swarm", total: runs - skipped, unit: "runs", ...(options.progress ? { mode: options.progress } : {}) });
  try {
    for (let i = 0; i < runs; i++) {
      const id = i + 1;
      if (done.has(id)) continue;
      if (options.shouldStop?.()) break;
      const s0 = performance.now();
      const r = await trainOnMixture(sources, planned[i]!, options);
      done.set(id, { weights: planned[i]!, losses: domains.map((d) => r.perDomain[d]!) });
      await write();
      trained++;
      bar.tick(1, { run: id, seconds: (performance.now() - s0) / 1000 });
      options.onRun?.({ index: id, done: done.size, total: runs, seconds: (performance.now() - s0) / 1000 });
    }
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { out, mixturesPath, lossesPath, domains, trained, skipped, completed: done.size, seconds, runsPerHour: trained > 0 ? (trained / seconds) * 3600 : 0 };
}
