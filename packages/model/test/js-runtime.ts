/**
 * A plain-TypeScript stand-in for the native runtime (NativeTransformer over canonical weight
 * names, f64 arithmetic): used to test the TypeScript side (name mapping, transposes, caching,
 * generation, scoring) independently of the addon, and as a second implementation to compare with.
 */
import type { ForwardOptions, ForwardResult, NativeCapture, NativeKvCache, NativeTransformer, TransformerConfig } from "@tersor/native";

function bitsToF32(bits: number, dtype: "f16" | "bf16"): number {
  if (dtype === "bf16") return new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  const s = bits & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

class JsCache implements NativeKvCache {
  length = 0;
  k: Float64Array[];
  v: Float64Array[];
  constructor(
    readonly capacity: number,
    layers: number,
    readonly width: number,
  ) {
    this.k = Array.from({ length: layers }, () => new Float64Array(capacity * width));
    this.v = Array.from({ length: layers }, () => new Float64Array(capacity * width));
  }
  bytes(): number {
    return this.k.length * 2 * this.capacity * this.width * 4;
  }
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }
  clear(): void {
    this.length = 0;
  }
}

class JsCapture implements NativeCapture {
  data = new Map<string, { rows: number; inF: number; gram?: Float64Array; raw?: number[] }>();
  constructor(
    readonly mode: "gram" | "raw",
    readonly layers: number[] | undefined,
  ) {}
  add(name: string, layer: number, x: Float64Array, T: number, inF: number): void {
    if (this.layers && !this.layers.includes(layer)) return;
    let e = this.data.get(name);
    if (!e) this.data.set(name, (e = { rows: 0, inF, ...(this.mode === "gram" ? { gram: new Float64Array(inF * inF) } : { raw: [] }) }));
    e.rows += T;
    if (e.gram) {
      for (let t = 0; t < T; t++) for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) e.gram[i * inF + j] += x[t * inF + i]! * x[t * inF + j]!;
    } else for (let i = 0; i < T * inF; i++) e.raw!.push(x[i]!);
  }
  names(): string[] {
    return [...this.data.keys()];
  }
  rows(name: string): number {
    return this.data.get(name)?.rows ?? 0;
  }
  get(name: string): Float64Array | Float32Array {
    const e = this.data.get(name)!;
    return e.gram ? Float64Array.from(e.gram) : Float32Array.from(e.raw!);
  }
  clear(): void {
    this.data.clear();
  }
}

export class JsTransformer implements NativeTransformer {
  private readonly w = new Map<string, Float64Array>();
  private readonly inv: Float64Array;
  constructor(readonly config: TransformerConfig) {
    const c = config;
    const d = c.rope?.rotaryDim || c.headDim;
    this.inv = new Float64Array(d / 2);
    if (c.rope) {
      for (let i = 0; i < d / 2; i++) this.inv[i] = 1 / c.rope.theta ** ((2 * i) / d);
      if (c.rope.scaling === "llama3") {
        const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPosition: old } = c.rope;
        for (let i = 0; i < d / 2; i++) {
          const wl = (2 * Math.PI) / this.inv[i]!;
          if (wl > old / lo) this.inv[i] = this.inv[i]! / factor;
          else if (wl >= old / hi) {
            const s = (old / wl - lo) / (hi - lo);
            this.inv[i] = (1 - s) * (this.inv[i]! / factor) + s * this.inv[i]!;
          }
        }
      }
    }
  }

  expected(): Map<string, number[]> {
    const c = this.config;
    const m = new Map<string, number[]>();
    const C = c.hidden;
    m.set("embed", [c.vocabSize, C]);
    if (c.learnedPositions) m.set("posEmbed", [c.maxPositions, C]);
    const ln = c.norm === "layernorm";
    for (let l = 0; l < c.layers; l++) {
      const p = `layers.${l}.`;
      m.set(p + "attnNorm.weight", [C]);
      if (ln) m.set(p + "attnNorm.bias", [C]);
      m.set(p + "q.weight", [c.heads * c.headDim, C]);
      m.set(p + "k.weight", [c.kvHeads * c.headDim, C]);
      m.set(p + "v.weight", [c.kvHeads * c.headDim, C]);
      if (c.qkvBias) {
        m.set(p + "q.bias", [c.heads * c.headDim]);
        m.set(p + "k.bias", [c.kvHeads * c.headDim]);
        m.set(p + "v.bias", [c.kvHeads * c.headDim]);
      }
      m.set(p + "o.weight", [C, c.heads * c.headDim]);
      if (c.outBias) m.set(p + "o.bias", [C]);
      m.set(p + "mlpNorm.weight", [C]);
      if (ln) m.set(p + "mlpNorm.bias", [C]);
      if (c.gatedMlp) m.set(p + "gate.weight", [c.intermediate, C]);
      m.set(p + "up.weight", [c.intermediate, C]);
      if (c.outBias) m.set(p + "up.bias", [c.intermediate]);
      m.set(p + "down.weight", [C, c.intermediate]);
      if (c.outBias) m.set(p + "down.bias", [C]);
    }
    m.set("finalNorm.weight", [C]);
    if (ln) m.set("finalNorm.bias", [C]);
    if (!c.tieEmbeddings) m.set("lmHead", [c.vocabSize, C]);
    return m;
  }

  setWeight(name: string, data: Float32Array | Uint16Array, dtype: "f32" | "f16" | "bf16", shape: number[]): void {
    const want = this.expected().get(name);
    if (!want) throw new Error(`E_RANGE unknown weight ${name}`);
    if (want.join() !== shape.join() || data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`E_SHAPE ${name} [${shape}] vs [${want}]`);
    this.w.set(name, Float64Array.from(data, (v) => (dtype === "f32" ? v : bitsToF32(v, dtype))));
  }
  missingWeights(): string[] {
    return [...this.expected().keys()].filter((k) => !this.w.has(k));
  }
  parameterCount(): number {
    let n = 0;
    for (const s of this.expected().values()) n += s.reduce((a, b) => a * b, 1);
    return n;
  }
  createCache(capacity: number): NativeKvCache {
    return new JsCache(capacity, this.config.layers, this.config.kvHeads * this.config.headDim);
  }
  createCapture(mode: "gram" | "raw", layers?: number[]): NativeCapture {
    return new JsCapture(mode, layers);
  }

  private W(n: string): Float64Array {
    const w = this.w.get(n);
    if (!w) throw new Error(`E_FORMAT missing ${n}`);
    return w;
  }

  private norm(x: Float64Array, T: number, p: string): Float64Array {
    const C = this.config.hidden;
    const w = this.W(p + ".weight");
    const b = this.config.norm === "layernorm" ? this.W(p + ".bias") : undefined;
    const y = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      let mean = 0;
      if (b) {
        for (let c = 0; c < C; c++) mean += x[t * C + c]!;
        mean /= C;
      }
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[t * C + c]! - mean) ** 2;
      const r = 1 / Math.sqrt(v / C + this.config.normEps);
      for (let c = 0; c < C; c++) y[t * C + c] = (x[t * C + c]! - mean) * r * w[c]! + (b ? b[c]! : 0);
    }
    return y;
  }

  private lin(x: Float64Array, T: number, inF: number, w: Float64Array, outF: number, b?: Float64Array): Float64Array {
    const y = new Float64Array(T * outF);
    for (let t = 0; t < T; t++)
      for (let o = 0; o < outF; o++) {
        let s = b ? b[o]! : 0;
        for (let i = 0; i < inF; i++) s += x[t * inF + i]! * w[o * inF + i]!;
        y[t * outF + o] = s;
      }
    return y;
  }

  private rope(x: Float64Array, T: number, H: number, pos0: number): void {
    const r = this.config.rope;
    if (!r) return;
    const d = this.config.headDim;
    const rd = r.rotaryDim || d;
    const half = rd / 2;
    const scale = r.scaling === "linear" ? r.factor : 1;
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * d;
        for (let i = 0; i < half; i++) {
          const a = ((pos0 + t) / scale) * this.inv[i]!;
          const c = Math.cos(a);
          const s = Math.sin(a);
          const [i1, i2] = r.style === "neox" ? [o + i, o + i + half] : [o + 2 * i, o + 2 * i + 1];
          const x1 = x[i1]!;
          const x2 = x[i2]!;
          x[i1] = x1 * c - x2 * s;
          x[i2] = x2 * c + x1 * s;
        }
      }
  }

  async forward(tokens: Int32Array, options: ForwardOptions = {}): Promise<ForwardResult> {
    const c = this.config;
    const T = tokens.length;
    const C = c.hidden;
    const H = c.heads;
    const Hkv = c.kvHeads;
    const d = c.headDim;
    const F = c.intermediate;
    const cache = options.cache as JsCache | undefined;
    const capture = options.capture as JsCapture | undefined;
    const pos0 = cache ? cache.length : 0;
    if (cache && pos0 + T > cache.capacity) throw new Error("E_RANGE cache full");
    const emb = this.W("embed");
    let x = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      if (tokens[t]! < 0 || tokens[t]! >= c.vocabSize) throw new Error("E_RANGE token");
      for (let j = 0; j < C; j++) x[t * C + j] = emb[tokens[t]! * C + j]! + (c.learnedPositions ? this.W("posEmbed")[(pos0 + t) * C + j]! : 0);
    }
    const hidden: Float32Array[] = [];
    const want = options.hiddenLayers ?? [];
    const snap = (l: number) => {
      for (const [i, hl] of want.entries()) if (hl === l) hidden[i] = Float32Array.from(x);
    };
    snap(0);
    const S = pos0 + T;
    for (let l = 0; l < c.layers; l++) {
      const p = `layers.${l}.`;
      const h = this.norm(x, T, p + "attnNorm");
      capture?.add(p + "q", l, h, T, C);
      capture?.add(p + "k", l, h, T, C);
      capture?.add(p + "v", l, h, T, C);
      const q = this.lin(h, T, C, this.W(p + "q.weight"), H * d, c.qkvBias ? this.W(p + "q.bias") : undefined);
      const k = this.lin(h, T, C, this.W(p + "k.weight"), Hkv * d, c.qkvBias ? this.W(p + "k.bias") : undefined);
      const v = this.lin(h, T, C, this.W(p + "v.weight"), Hkv * d, c.qkvBias ? this.W(p + "v.bias") : undefined);
      this.rope(q, T, H, pos0);
      this.rope(k, T, Hkv, pos0);
      let K = k;
      let Vv = v;
      if (cache) {
        cache.k[l]!.set(k, pos0 * Hkv * d);
        cache.v[l]!.set(v, pos0 * Hkv * d);
        K = cache.k[l]!;
        Vv = cache.v[l]!;
      }
      const a = new Float64Array(T * H * d);
      const g = H / Hkv;
      for (let hh = 0; hh < H; hh++) {
        const kh = Math.floor(hh / g);
        for (let t = 0; t < T; t++) {
          const qpos = pos0 + t;
          const lo = c.slidingWindow ? Math.max(0, qpos - c.slidingWindow + 1) : 0;
          const sc: number[] = [];
          let mx = -Infinity;
          for (let s = lo; s <= qpos; s++) {
            let dot = 0;
            const ks = cache ? s : s - pos0;
            for (let i = 0; i < d; i++) dot += q[(t * H + hh) * d + i]! * K[(ks * Hkv + kh) * d + i]!;
            dot /= Math.sqrt(d);
            sc.push(dot);
            mx = Math.max(mx, dot);
          }
          let z = 0;
          for (let j = 0; j < sc.length; j++) z += sc[j] = Math.exp(sc[j]! - mx);
          for (let j = 0; j < sc.length; j++) {
            const ks = cache ? lo + j : lo + j - pos0;
            for (let i = 0; i < d; i++) a[(t * H + hh) * d + i] += (sc[j]! / z) * Vv[(ks * Hkv + kh) * d + i]!;
          }
        }
      }
      capture?.add(p + "o", l, a, T, H * d);
      const o = this.lin(a, T, H * d, this.W(p + "o.weight"), C, c.outBias ? this.W(p + "o.bias") : undefined);
      for (let i = 0; i < x.length; i++) x[i] += o[i]!;
      const h2 = this.norm(x, T, p + "mlpNorm");
      if (c.gatedMlp) capture?.add(p + "gate", l, h2, T, C);
      capture?.add(p + "up", l, h2, T, C);
      const up = this.lin(h2, T, C, this.W(p + "up.weight"), F, c.outBias ? this.W(p + "up.bias") : undefined);
      const act = (z: number) =>
        c.activation === "silu" ? z / (1 + Math.exp(-z)) : c.activation === "gelu_tanh" ? 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3))) : 0;
      if (c.gatedMlp) {
        const gt = this.lin(h2, T, C, this.W(p + "gate.weight"), F);
        for (let i = 0; i < up.length; i++) up[i] = act(gt[i]!) * up[i]!;
      } else for (let i = 0; i < up.length; i++) up[i] = act(up[i]!);
      capture?.add(p + "down", l, up, T, F);
      const dn = this.lin(up, T, F, this.W(p + "down.weight"), C, c.outBias ? this.W(p + "down.bias") : undefined);
      for (let i = 0; i < x.length; i++) x[i] += dn[i]!;
      snap(l + 1);
    }
    if (cache) cache.length = S;
    const mode = options.logits ?? "all";
    const res: ForwardResult = {};
    if (want.length) res.hidden = hidden;
    if (mode === "none") return res;
    x = this.norm(x, T, "finalNorm");
    const head = c.tieEmbeddings ? emb : this.W("lmHead");
    const rows = mode === "last" ? x.subarray((T - 1) * C) : x;
    res.logits = Float32Array.from(this.lin(rows, mode === "last" ? 1 : T, C, head, c.vocabSize));
    return res;
  }

  async scoreSequences(tokens: Int32Array, offsets: Int32Array, scoreFrom: Int32Array): Promise<{ logprob: Float64Array; count: Int32Array }> {
    const n = scoreFrom.length;
    const logprob = new Float64Array(n);
    const count = new Int32Array(n);
    const V = this.config.vocabSize;
    for (let s = 0; s < n; s++) {
      const seq = tokens.subarray(offsets[s]!, offsets[s + 1]!);
      const { logits } = await this.forward(seq);
      for (let i = scoreFrom[s]!; i < seq.length; i++) {
        const row = logits!.subarray((i - 1) * V, i * V);
        let mx = -Infinity;
        for (const v of row) mx = Math.max(mx, v);
        let z = 0;
        for (const v of row) z += Math.exp(v - mx);
        logprob[s] += row[seq[i]!]! - mx - Math.log(z);
        count[s]!++;
      }
    }
    return { logprob, count };
  }
}

export const jsRuntime = (c: TransformerConfig): NativeTransformer => new JsTransformer(c);
