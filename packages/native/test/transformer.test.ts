import { describe, expect, it } from "vitest";

import { type NativeTransformer, type TransformerConfig, TersorError, native } from "../src/index.js";

/** mulberry32: a small seeded generator for test weights. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const llama: TransformerConfig = {
  norm: "rmsnorm",
  normEps: 1e-5,
  vocabSize: 53,
  hidden: 32,
  intermediate: 48,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  activation: "silu",
  gatedMlp: true,
  qkvBias: true,
  outBias: false,
  tieEmbeddings: false,
  learnedPositions: false,
  maxPositions: 128,
  rope: {
    theta: 10000,
    style: "neox",
    rotaryDim: 0,
    scaling: "none",
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPosition: 8192,
  },
  slidingWindow: 0,
};

const gpt2: TransformerConfig = {
  norm: "layernorm",
  normEps: 1e-5,
  vocabSize: 61,
  hidden: 24,
  intermediate: 96,
  layers: 2,
  heads: 3,
  kvHeads: 3,
  headDim: 8,
  activation: "gelu_tanh",
  gatedMlp: false,
  qkvBias: true,
  outBias: true,
  tieEmbeddings: true,
  learnedPositions: true,
  maxPositions: 32,
  slidingWindow: 0,
};

type Shapes = Map<string, number[]>;

/** Every weight of a config with its shape, from the canonical naming of the contract. */
function weightShapes(c: TransformerConfig): Shapes {
  const s: Shapes = new Map();
  const ln = c.norm === "layernorm";
  const hd = c.heads * c.headDim;
  const kvd = c.kvHeads * c.headDim;
  s.set("embed", [c.vocabSize, c.hidden]);
  if (c.learnedPositions) s.set("posEmbed", [c.maxPositions, c.hidden]);
  for (let i = 0; i < c.layers; i++) {
    const p = `layers.${i}.`;
    s.set(`${p}attnNorm.weight`, [c.hidden]);
    if (ln) s.set(`${p}attnNorm.bias`, [c.hidden]);
    s.set(`${p}q.weight`, [hd, c.hidden]);
    if (c.qkvBias) s.set(`${p}q.bias`, [hd]);
    s.set(`${p}k.weight`, [kvd, c.hidden]);
    if (c.qkvBias) s.set(`${p}k.bias`, [kvd]);
    s.set(`${p}v.weight`, [kvd, c.hidden]);
    if (c.qkvBias) s.set(`${p}v.bias`, [kvd]);
    s.set(`${p}o.weight`, [c.hidden, hd]);
    if (c.outBias) s.set(`${p}o.bias`, [c.hidden]);
    s.set(`${p}mlpNorm.weight`, [c.hidden]);
    if (ln) s.set(`${p}mlpNorm.bias`, [c.hidden]);
    if (c.gatedMlp) s.set(`${p}gate.weight`, [c.intermediate, c.hidden]);
    s.set(`${p}up.weight`, [c.intermediate, c.hidden]);
    if (c.outBias) s.set(`${p}up.bias`, [c.intermediate]);
    s.set(`${p}down.weight`, [c.hidden, c.intermediate]);
    if (c.outBias) s.set(`${p}down.bias`, [c.hidden]);
  }
  s.set("finalNorm.weight", [c.hidden]);
  if (ln) s.set("finalNorm.bias", [c.hidden]);
  if (!c.tieEmbeddings) s.set("lmHead", [c.vocabSize, c.hidden]);
  return s;
}

function randomWeights(c: TransformerConfig, seed: number): Map<string, { data: Float32Array; shape: number[] }> {
  const r = rng(seed);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, shape] of weightShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const norm = name.endsWith("Norm.weight");
    const scale = norm || name.endsWith(".bias") ? 0.1 : shape.length === 2 && !name.endsWith("mbed") ? 1.7 / Math.sqrt(shape[1]!) : 1;
    for (let i = 0; i < n; i++) data[i] = (norm ? 1 : 0) + scale * (2 * r() - 1);
    out.set(name, { data, shape });
  }
  return out;
}

function build(c: TransformerConfig, seed: number, dtype: "f32" | "f16" | "bf16" = "f32"): NativeTransformer {
  const t = native().createTransformer(c);
  for (const [name, { data, shape }] of randomWeights(c, seed)) {
    if (dtype === "f32") {
      t.setWeight(name, data, "f32", shape);
    } else {
      const bits = new Uint16Array(data.length);
      if (dtype === "f16") native().f32ToF16(data, bits);
      else native().f32ToBf16(data, bits);
      t.setWeight(name, bits, dtype, shape);
    }
  }
  return t;
}

function tokens(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** max |a - b| / max(1, max |b|) */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 1;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("createTransformer", () => {
  it("returns the validated config and lists, counts and accepts the canonical weights", () => {
    const t = native().createTransformer(llama);
    expect(t.config).toEqual(llama);
    const g = native().createTransformer({ ...gpt2, slidingWindow: undefined as unknown as number });
    expect(g.config.slidingWindow).toBe(0);
    expect(g.config.rope).toBeUndefined();
    const shapes = weightShapes(llama);
    expect(t.missingWeights()).toEqual([...shapes.keys()]);
    let params = 0;
    for (const s of shapes.values()) params += s.reduce((a, b) => a * b, 1);
    expect(t.parameterCount()).toBe(params);
    const full = build(llama, 1);
    expect(full.missingWeights()).toEqual([]);
  });

  it("rejects bad configs with codes naming the field", () => {
    const bad = (patch: Partial<TransformerConfig>) => () => native().createTransformer({ ...llama, ...patch });
    expect(bad({ kvHeads: 3 })).toThrow(expect.objectContaining({ code: "E_SHAPE", message: expect.stringMatching(/config\.kvHeads/) }));
    expect(bad({ headDim: 7 })).toThrow(expect.objectContaining({ code: "E_SHAPE", message: expect.stringMatching(/config\.headDim/) }));
    expect(bad({ vocabSize: 0 })).toThrow(expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/config\.vocabSize/) }));
    expect(bad({ hidden: 1.5 })).toThrow(expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/config\.hidden/) }));
    expect(bad({ norm: "batchnorm" as "rmsnorm" })).toThrow(expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/config\.norm/) }));
    expect(bad({ rope: { ...llama.rope!, theta: -1 } })).toThrow(
      expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/config\.rope\.theta/) }),
    );
    expect(() => native().createTransformer(undefined as unknown as TransformerConfig)).toThrow(TersorError);
  });
});

describe("NativeTransformer.forward", () => {
  it("f16 and bf16 weights equal their values given as f32", async () => {
    const tok = tokens(9, llama.vocabSize, 3);
    for (const dtype of ["f16", "bf16"] as const) {
      const half = build(llama, 2, dtype);
      // The same weights rounded in JS and handed over as f32.
      const t = native().createTransformer(llama);
      for (const [name, { data, shape }] of randomWeights(llama, 2)) {
        const bits = new Uint16Array(data.length);
        const back = new Float32Array(data.length);
        if (dtype === "f16") {
          native().f32ToF16(data, bits);
          native().f16ToF32(bits, back);
        } else {
          native().f32ToBf16(data, bits);
          native().bf16ToF32(bits, back);
        }
        t.setWeight(name, back, "f32", shape);
      }
      const a = await half.forward(tok);
      const b = await t.forward(tok);
      expect(a.logits!.length).toBe(tok.length * llama.vocabSize);
      expect(Array.from(a.logits!)).toEqual(Array.from(b.logits!));
    }
  });

  for (const [label, config] of [["llama", llama], ["gpt2", gpt2]] as const) {
    it(`${label}: decode through a cache equals the prefill; truncate, clear and chunks`, async () => {
      const t = build(config, 4);
      const tok = tokens(20, config.vocabSize, 5);
      const full = await t.forward(tok);
      expect(full.logits).toBeInstanceOf(Float32Array);
      expect(full.hidden).toBeUndefined();
      const cache = t.createCache(24);
      expect(cache.capacity).toBe(24);
      expect(cache.length).toBe(0);
      expect(cache.bytes()).toBe(2 * config.layers * 24 * config.kvHeads * config.headDim * 4);
      const steps: Float32Array[] = [];
      for (let i = 0; i < tok.length; i++) {
        const r = await t.forward(tok.subarray(i, i + 1), { cache, logits: "last" });
        steps.push(r.logits!);
      }
      expect(cache.length).toBe(20);
      expect(relErr(concat(steps), full.logits!)).toBeLessThan(1e-4);

      cache.truncate(8);
      expect(cache.length).toBe(8);
      const rest = await t.forward(tok.subarray(8), { cache });
      expect(relErr(rest.logits!, full.logits!.subarray(8 * config.vocabSize))).toBeLessThan(1e-4);
      cache.clear();
      const again = await t.forward(tok.subarray(0, 5), { cache, logits: "all" });
      expect(relErr(again.logits!, full.logits!.subarray(0, 5 * config.vocabSize))).toBeLessThan(1e-4);
      expect(() => cache.truncate(6)).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    });
  }

  it("logits modes and hidden states", async () => {
    const t = build(llama, 6);
    const tok = tokens(7, llama.vocabSize, 7);
    const all = await t.forward(tok, { hiddenLayers: [0, 2, 1] });
    const last = await t.forward(tok, { logits: "last" });
    const none = await t.forward(tok, { logits: "none", hiddenLayers: [2] });
    expect(last.logits!.length).toBe(llama.vocabSize);
    expect(relErr(last.logits!, all.logits!.subarray(6 * llama.vocabSize))).toBeLessThan(1e-6);
    expect(none.logits).toBeUndefined();
    expect(all.hidden!.map((h) => h.length)).toEqual([7 * 32, 7 * 32, 7 * 32]);
    expect(Array.from(none.hidden![0]!)).toEqual(Array.from(all.hidden![1]!));
    // Layer 0 is the embedding rows.
    const embed = randomWeights(llama, 6).get("embed")!.data;
    expect(Array.from(all.hidden![0]!.subarray(32, 64))).toEqual(Array.from(embed.subarray(tok[1]! * 32, tok[1]! * 32 + 32)));
  });

  it("two concurrent forwards on different caches both resolve correctly", async () => {
    const t = build(llama, 8);
    const a = tokens(40, llama.vocabSize, 9);
    const b = tokens(33, llama.vocabSize, 10);
    const wantA = (await t.forward(a)).logits!;
    const wantB = (await t.forward(b)).logits!;
    const ca = t.createCache(64);
    const cb = t.createCache(64);
    const [ra, rb] = await Promise.all([t.forward(a, { cache: ca }), t.forward(b, { cache: cb })]);
    expect(relErr(ra.logits!, wantA)).toBeLessThan(1e-6);
    expect(relErr(rb.logits!, wantB)).toBeLessThan(1e-6);
    expect([ca.length, cb.length]).toEqual([40, 33]);
    // And decode steps interleaved on both caches.
    const steps = await Promise.all([t.forward(b.subarray(0, 1), { cache: ca, logits: "last" }), t.forward(a.subarray(0, 1), { cache: cb, logits: "last" })]);
    const refA = await t.forward(Int32Array.from([...a, b[0]!]), { logits: "last" });
    const refB = await t.forward(Int32Array.from([...b, a[0]!]), { logits: "last" });
    expect(relErr(steps[0].logits!, refA.logits!)).toBeLessThan(1e-4);
    expect(relErr(steps[1].logits!, refB.logits!)).toBeLessThan(1e-4);
  });

  it("captures linear inputs: gram and raw shapes, aliases, layer selection", async () => {
    const t = build(llama, 11);
    const tok = tokens(10, llama.vocabSize, 12);
    const gram = t.createCapture("gram");
    const raw = t.createCapture("raw");
    const one = t.createCapture("gram", [1]);
    expect(gram.mode).toBe("gram");
    expect(raw.mode).toBe("raw");
    await t.forward(tok, { capture: gram, logits: "none" });
    await t.forward(tok, { capture: raw, logits: "none" });
    await t.forward(tok.subarray(0, 4), { capture: raw, logits: "none" });
    await t.forward(tok, { capture: one, logits: "none" });
    const names = ["q", "k", "v", "o", "gate", "up", "down"];
    expect(gram.names()).toEqual([0, 1].flatMap((i) => names.map((n) => `layers.${i}.${n}`)));
    expect(one.names()).toEqual(names.map((n) => `layers.1.${n}`));
    const cols: Record<string, number> = { q: 32, k: 32, v: 32, o: 32, gate: 32, up: 32, down: 48 };
    for (const name of gram.names()) {
      const c = cols[name.split(".")[2]!]!;
      expect(gram.rows(name)).toBe(10);
      const g = gram.get(name);
      expect(g).toBeInstanceOf(Float64Array);
      expect(g.length).toBe(c * c);
      expect(raw.rows(name)).toBe(14);
      const x = raw.get(name);
      expect(x).toBeInstanceOf(Float32Array);
      expect(x.length).toBe(14 * c);
      // gram = XᵀX over the first 10 raw rows (the same forward)
      let err = 0;
      let scale = 0;
      for (let i = 0; i < c; i++)
        for (let j = 0; j < c; j++) {
          let s = 0;
          for (let r = 0; r < 10; r++) s += x[r * c + i]! * x[r * c + j]!;
          err = Math.max(err, Math.abs(s - g[i * c + j]!));
          scale = Math.max(scale, Math.abs(s));
        }
      expect(err / scale).toBeLessThan(1e-5);
    }
    expect(Array.from(raw.get("layers.0.q"))).toEqual(Array.from(raw.get("layers.0.k")));
    expect(Array.from(one.get("layers.1.up"))).toEqual(Array.from(gram.get("layers.1.up")));
    expect(() => one.rows("layers.0.q")).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    gram.clear();
    expect(gram.rows("layers.0.q")).toBe(0);
    expect(() => t.createCapture("sum" as "gram")).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    expect(() => t.createCapture("raw", [2])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });

  it("scoreSequences returns per-sequence log-probabilities equal to log-softmax sums of the logits", async () => {
    const t = build(gpt2, 13);
    const lens = [12, 1, 7, 0, 20];
    const from = Int32Array.from([1, 1, 3, 1, 19]);
    const parts = lens.map((n, i) => tokens(n, gpt2.vocabSize, 20 + i));
    const offsets = new Int32Array(lens.length + 1);
    for (let i = 0; i < lens.length; i++) offsets[i + 1] = offsets[i]! + lens[i]!;
    const all = new Int32Array(offsets[lens.length]!);
    parts.forEach((p, i) => all.set(p, offsets[i]!));
    const { logprob, count } = await t.scoreSequences(all, offsets, from);
    expect(logprob).toBeInstanceOf(Float64Array);
    expect(count).toBeInstanceOf(Int32Array);
    expect(Array.from(count)).toEqual([11, 0, 4, 0, 1]);
    for (let s = 0; s < lens.length; s++) {
      let want = 0;
      if (count[s]! > 0) {
        const V = gpt2.vocabSize;
        const z = (await t.forward(parts[s]!)).logits!;
        for (let i = from[s]!; i < lens[s]!; i++) {
          const row = z.subarray((i - 1) * V, i * V);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
          want += row[parts[s]![i]!]! - lse;
        }
      }
      expect(Math.abs(logprob[s]! - want)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
    }
    await expect(t.scoreSequences(all, offsets.subarray(1), from)).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(t.scoreSequences(all, offsets, Int32Array.from([0, 1, 1, 1, 1]))).rejects.toMatchObject({ code: "E_RANGE" });
  });

  it("errors carry codes: weights, ids, full and busy caches", async () => {
    const t = native().createTransformer(llama);
    const w = randomWeights(llama, 14);
    for (const [name, { data, shape }] of w) if (name !== "layers.1.up.weight") t.setWeight(name, data, "f32", shape);
    expect(t.missingWeights()).toEqual(["layers.1.up.weight"]);
    await expect(t.forward(Int32Array.from([1, 2]))).rejects.toMatchObject({
      code: "E_FORMAT",
      name: "TersorError",
      message: expect.stringMatching(/layers\.1\.up\.weight/),
    });
    const up = w.get("layers.1.up.weight")!;
    expect(() => t.setWeight("layers.1.up.weight", up.data, "f32", [32, 48])).toThrow(
      expect.objectContaining({ code: "E_SHAPE", message: expect.stringMatching(/layers\.1\.up\.weight.*\[32, 48\].*\[48, 32\]/) }),
    );
    expect(() => t.setWeight("layers.1.up.weight", up.data.subarray(1), "f32", [48, 32])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => t.setWeight("layers.9.up.weight", up.data, "f32", [48, 32])).toThrow(expect.objectContaining({ code: "E_FORMAT" }));
    expect(() => t.setWeight("layers.1.up.weight", up.data, "f16", [48, 32])).toThrow(expect.objectContaining({ code: "E_DTYPE" }));
    t.setWeight("layers.1.up.weight", up.data, "f32", [48, 32]);

    await expect(t.forward(Int32Array.from([1, llama.vocabSize]))).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(t.forward(Int32Array.from([-1]))).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(t.forward(new Int32Array(0))).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(t.forward(new Float32Array(2) as unknown as Int32Array)).rejects.toMatchObject({ code: "E_DTYPE" });
    await expect(t.forward(Int32Array.from([1]), { logits: "some" as "all" })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(t.forward(Int32Array.from([1]), { hiddenLayers: [3] })).rejects.toMatchObject({ code: "E_RANGE" });

    const cache = t.createCache(4);
    await t.forward(Int32Array.from([1, 2, 3]), { cache });
    await expect(t.forward(Int32Array.from([4, 5]), { cache })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/cache full/) });
    expect(cache.length).toBe(3);
    expect(() => t.createCache(0)).toThrow(expect.objectContaining({ code: "E_RANGE" }));

    // One cache, two forwards at once: the second is refused; the cache is free again afterwards.
    cache.clear();
    const first = t.forward(Int32Array.from([1, 2]), { cache });
    await expect(t.forward(Int32Array.from([3]), { cache })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/busy/) });
    expect(() => cache.clear()).toThrow(expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/busy/) }));
    expect(() => t.setWeight("layers.1.up.weight", up.data, "f32", [48, 32])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    await first;
    expect(cache.length).toBe(2);
    await t.forward(Int32Array.from([3]), { cache });
    expect(cache.length).toBe(3);
    t.setWeight("layers.1.up.weight", up.data, "f32", [48, 32]);

    // A capture is leased the same way.
    const cap = t.createCapture("raw");
    const capturing = t.forward(Int32Array.from([1, 2]), { capture: cap, logits: "none" });
    await expect(t.forward(Int32Array.from([3]), { capture: cap })).rejects.toMatchObject({ code: "E_RANGE", message: expect.stringMatching(/capture is busy/) });
    expect(() => cap.get("layers.0.q")).toThrow(expect.objectContaining({ code: "E_RANGE", message: expect.stringMatching(/busy/) }));
    expect(await capturing).toEqual({});
    expect(cap.rows("layers.0.q")).toBe(2);

    // A cache of another model is refused.
    const other = build(llama, 15);
    await expect(other.forward(Int32Array.from([1]), { cache })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(t.forward(Int32Array.from([1]), { cache: {} as never })).rejects.toMatchObject({ code: "E_RANGE" });
  });
});
