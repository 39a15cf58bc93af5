/**
 * Hadamard rotation of a Llama-family model's residual stream (incoherence processing before
 * quantization): QuaRot (Ashkboos et al. 2024, "QuaRot: Outlier-free 4-bit inference in rotated
 * LLMs", Sec. 4, the computational invariance of Ashkboos et al. 2024 "SliceGPT"), with the randomised
 * Walsh–Hadamard transform of QuIP# (Tseng et al. 2024) and QuEST.
 *
 * The rotation is Q = diag(s) · H_b⊕…⊕H_b / √b: random signs sⱼ = ±1 drawn under a seed, then a
 * normalised Walsh–Hadamard transform over blocks of b = the largest power of two dividing the hidden
 * size d (b = d when d is a power of two, the usual case; otherwise Q is block-diagonal over d / b
 * blocks, still orthogonal). QᵀQ = I.
 *
 * The model transform (every step leaves the float model's function unchanged):
 *  1. fold each RMSNorm gain g into the linears that read the norm's output (W ← W·diag(g): q/k/v after
 *     input_layernorm, gate/up after post_attention_layernorm, lm_head after the final norm); the
 *     norms become all-ones;
 *  2. untie the embeddings when tied (lm_head ← embed_tokens before the fold);
 *  3. rotate the residual stream x ← x·Q: embed_tokens ← E·Q; every linear reading the stream
 *     (q, k, v, gate, up, lm_head) W ← W·Q; every linear writing it (o_proj, down_proj) W ← Qᵀ·W.
 * RMSNorm with unit gain commutes with an orthogonal Q (‖xQ‖ = ‖x‖), so the rotated float model
 * computes the same logits, and a standard loader runs it unchanged (nothing is applied online; the
 * head-dimension and down_proj-input online rotations of QuaRot, which need runtime support, are not
 * applied). Rotation spreads outlier channels over all d coordinates, which lowers the max-abs and
 * kurtosis of the weight rows and so the quantization error of the rotated weights.
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { Rng, Tensor, TersorError, hadamardTransform, openSafetensorsDir, progress, writeFileAtomic, writeSafetensors, type ProgressMode, type SafetensorsDir } from "@tersor/core";
import { z } from "zod";

/** A randomised (block) Walsh–Hadamard rotation of dimension `dim`. */
export interface HadamardRotation {
  kind: "hadamard";
  dim: number;
  /** Hadamard block size (a power of two dividing dim; = dim when dim is a power of two). */
  block: number;
  seed: number;
  /** ±1 per coordinate, applied before the transform. */
  signs: Float32Array;
}

export const RotationOptionsSchema = z
  .object({
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    /** Smallest Hadamard block accepted when the dimension is not a power of two. */
    minBlock: z.number().int().min(1).default(32),
  })
  .strict();
export type RotationOptions = z.input<typeof RotationOptionsSchema>;

/**
 * The rotation Q = diag(s)·(H_b ⊕ … ⊕ H_b)/√b of dimension `dim` under `seed`: sⱼ = (rng.nextU32() & 1) ? −1 : +1
 * for j = 0..dim−1 from `new Rng(seed)`, b the largest power of two dividing dim. E_SHAPE when b < minBlock
 * (a dimension whose power-of-two part is that small cannot be usefully rotated).
 */
export function hadamardRotation(dim: number, options: RotationOptions = {}): HadamardRotation {
  const parsed = RotationOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TersorError("E_RANGE", `hadamardRotation: ${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  if (!Number.isSafeInteger(dim) || dim < 1) throw new TersorError("E_SHAPE", `hadamardRotation: dimension must be a positive integer, got ${dim}`);
  const block = dim & -dim;
  if (block < Math.min(o.minBlock, dim))
    throw new TersorError("E_SHAPE", `hadamardRotation: dimension ${dim} = ${block} × ${dim / block} has no power-of-two block of at least ${o.minBlock}; a Hadamard rotation needs the hidden size to be a power of two or a multiple of a power of two ≥ ${o.minBlock}`);
  const rng = new Rng(o.seed);
  const signs = new Float32Array(dim);
  for (let j = 0; j < dim; j++) signs[j] = rng.nextU32() & 1 ? -1 : 1;
  return { kind: "hadamard", dim, block, seed: o.seed, signs };
}

/** X·Q for X [rows, dim] (row-major, not modified); returns a new array. */
export async function rotateRows(r: HadamardRotation, x: Float32Array, rows: number): Promise<Float32Array> {
  if (x.length !== rows * r.dim) throw new TersorError("E_SHAPE", `rotateRows: ${x.length} elements is not rows × dim = ${rows} × ${r.dim}`);
  const y = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) {
    const o = i * r.dim;
    for (let j = 0; j < r.dim; j++) y[o + j] = x[o + j]! * r.signs[j]!;
  }
  if (y.length === 0) return y;
  const t = await hadamardTransform(new Tensor("f32", [y.length / r.block, r.block], y), { normalize: true });
  return t.data as Float32Array;
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

/** Qᵀ·W for W [dim, cols] (a linear writing the rotated stream); returns a new array. */
export async function rotateOutputs(r: HadamardRotation, w: Float32Array, cols: number): Promise<Float32Array> {
  if (w.length !== r.dim * cols) throw new TersorError("E_SHAPE", `rotateOutputs: ${w.length} elements is not dim × cols = ${r.dim} × ${cols}`);
  // (QᵀW)ᵀ = WᵀQ.
  return transpose(await rotateRows(r, transpose(w, r.dim, cols), cols), cols, r.dim);
}

/** Q itself as an f32 Tensor [dim, dim] (I·Q), for tests and inspection. */
export async function rotationMatrix(r: HadamardRotation): Promise<Tensor<"f32">> {
  const eye = new Float32Array(r.dim * r.dim);
  for (let i = 0; i < r.dim; i++) eye[i * r.dim + i] = 1;
  return new Tensor("f32", [r.dim, r.dim], await rotateRows(r, eye, r.dim));
}

/** W·diag(g) for W [rows, g.length]. */
function scaleColumns(w: Float32Array, g: Float32Array): Float32Array {
  const d = g.length;
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i += d) for (let j = 0; j < d; j++) out[i + j] = w[i + j]! * g[j]!;
  return out;
}

const READS_STREAM: Record<string, string> = {
  "self_attn.q_proj": "input_layernorm",
  "self_attn.k_proj": "input_layernorm",
  "self_attn.v_proj": "input_layernorm",
  "mlp.gate_proj": "post_attention_layernorm",
  "mlp.up_proj": "post_attention_layernorm",
};
const WRITES_STREAM = new Set(["self_attn.o_proj", "mlp.down_proj"]);

/** The parts of a Hugging Face config.json the rotation needs. */
interface RotCfg {
  hidden: number;
  layers: number;
  tied: boolean;
}

function rotCfg(cfg: Record<string, unknown>): RotCfg {
  const mt = String(cfg["model_type"] ?? "");
  if (!["llama", "mistral", "qwen2"].includes(mt)) throw new TersorError("E_FORMAT", `rotate: model_type "${mt}" is not supported (llama, mistral, qwen2 are: RMSNorm pre-norm models)`);
  const hidden = Number(cfg["hidden_size"]);
  const layers = Number(cfg["num_hidden_layers"]);
  if (!Number.isSafeInteger(hidden) || hidden < 1 || !Number.isSafeInteger(layers) || layers < 1) throw new TersorError("E_FORMAT", "rotate: config.json lacks hidden_size / num_hidden_layers");
  return { hidden, layers, tied: cfg["tie_word_embeddings"] === undefined ? false : Boolean(cfg["tie_word_embeddings"]) };
}

/**
 * A Hugging Face checkpoint read through the rotation: `read(name)` gives the rotated (gain-folded)
 * f32 tensor of the same name, one tensor at a time (only the norm gains a linear needs are read
 * beside it), so the rotated model never exists twice in memory. `names` lists the rotated
 * checkpoint's tensors (with `lm_head.weight` even when the original is tied).
 */
export interface RotatedCheckpoint {
  readonly rotation: HadamardRotation;
  readonly names: readonly string[];
  /** The config.json to write beside the rotated weights (untied, with `tersor_rotation`). */
  readonly config: Record<string, unknown>;
  read(name: string): Promise<Tensor<"f32">>;
  close(): Promise<void>;
}

const f32 = (t: Tensor): Float32Array => {
  const d = t.to("f32").data as Float32Array;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) throw new TersorError("E_RANGE", `rotate: a tensor holds a non-finite value at element ${i}`);
  return d;
};

/** Opens the Hugging Face directory `dir` through a Hadamard rotation of its residual stream. */
export async function openRotatedCheckpoint(dir: string, options: RotationOptions = {}): Promise<RotatedCheckpoint> {
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new TersorError("E_IO", `rotate: cannot read ${join(dir, "config.json")}`, { cause: e });
  }
  if (cfg["quantization_config"] !== undefined) throw new TersorError("E_FORMAT", "rotate: the model is already quantized; rotate the float model");
  const c = rotCfg(cfg);
  const rotation = hadamardRotation(c.hidden, options);
  const src: SafetensorsDir = await openSafetensorsDir(dir);
  const has = new Set(src.tensors.map((t) => t.name));
  const names = src.tensors.map((t) => t.name).filter((n) => n !== "lm_head.weight");
  names.push("lm_head.weight");
  if (!has.has("model.embed_tokens.weight")) {
    await src.close();
    throw new TersorError("E_FORMAT", "rotate: the checkpoint has no model.embed_tokens.weight");
  }
  if (!c.tied && !has.has("lm_head.weight")) {
    await src.close();
    throw new TersorError("E_FORMAT", "rotate: tie_word_embeddings is false but the checkpoint has no lm_head.weight");
  }
  const d = c.hidden;
  const gain = async (name: string): Promise<Float32Array> => {
    const g = f32(await src.read(name));
    if (g.length !== d) throw new TersorError("E_SHAPE", `rotate: ${name} has ${g.length} elements, hidden size is ${d}`);
    return g;
  };
  const matrix = async (name: string): Promise<{ data: Float32Array; rows: number; cols: number }> => {
    const t = await src.read(name);
    if (t.rank !== 2) throw new TersorError("E_SHAPE", `rotate: ${name} must be a matrix, has shape [${t.shape.join(", ")}]`);
    return { data: f32(t), rows: t.shape[0]!, cols: t.shape[1]! };
  };
  const readsStream = async (name: string, norm: string): Promise<Tensor<"f32">> => {
    const w = await matrix(name);
    if (w.cols !== d) throw new TersorError("E_SHAPE", `rotate: ${name} has ${w.cols} inputs, hidden size is ${d}`);
    return new Tensor("f32", [w.rows, d], await rotateRows(rotation, scaleColumns(w.data, await gain(norm)), w.rows));
  };
  const config = { ...cfg, tie_word_embeddings: false, tersor_rotation: { kind: "hadamard", seed: rotation.seed, block: rotation.block, dim: d } };
  const read = async (name: string): Promise<Tensor<"f32">> => {
    if (name === "lm_head.weight") return await readsStream(c.tied || !has.has(name) ? "model.embed_tokens.weight" : name, "model.norm.weight");
    if (!has.has(name)) throw new TersorError("E_FORMAT", `rotate: the checkpoint has no tensor ${name}`);
    if (name === "model.embed_tokens.weight") {
      const e = await matrix(name);
      if (e.cols !== d) throw new TersorError("E_SHAPE", `rotate: ${name} has ${e.cols} columns, hidden size is ${d}`);
      return new Tensor("f32", [e.rows, d], await rotateRows(rotation, e.data, e.rows));
    }
    if (name === "model.norm.weight" || /^model\.layers\.\d+\.(input_layernorm|post_attention_layernorm)\.weight$/.test(name)) {
      const g = await gain(name);
      return new Tensor("f32", [g.length], new Float32Array(g.length).fill(1));
    }
    const m = /^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.weight$/.exec(name);
    if (m) {
      const linear = m[2]!;
      const norm = READS_STREAM[linear];
      if (norm) return await readsStream(name, `model.layers.${m[1]}.${norm}.weight`);
      if (WRITES_STREAM.has(linear)) {
        const w = await matrix(name);
        if (w.rows !== d) throw new TersorError("E_SHAPE", `rotate: ${name} has ${w.rows} outputs, hidden size is ${d}`);
        return new Tensor("f32", [d, w.cols], await rotateOutputs(rotation, w.data, w.cols));
      }
    }
    if (/\.o_proj\.bias$|\.down_proj\.bias$/.test(name)) {
      // A bias added to the stream rotates with it.
      const b = f32(await src.read(name));
      return new Tensor("f32", [b.length], await rotateRows(rotation, b, 1));
    }
    // q/k/v biases live in the heads' space, untouched; anything else passes through.
    return (await src.read(name)).to("f32") as Tensor<"f32">;
  };
  return { rotation, names, config, read, close: () => src.close() };
}

/**
 * Writes the Hadamard-rotated float model of the Hugging Face directory `dir` to `out` (f32
 * safetensors, untied lm_head, `tersor_rotation` in config.json, tokenizer files copied). Every file
 * is written atomically. It computes the same function as the original (see the module comment).
 */
export async function rotateModel(dir: string, out: string, options: RotationOptions & { progress?: ProgressMode } = {}): Promise<HadamardRotation> {
  const { progress: mode, ...rest } = options;
  const rc = await openRotatedCheckpoint(dir, rest);
  const tensors: Array<[string, Tensor]> = [];
  const bar = progress({ label: "rotate", total: rc.names.length, unit: "tensors", ...(mode ? { mode } : {}) });
  try {
    for (const n of rc.names) {
      tensors.push([n, await rc.read(n)]);
      bar.tick();
    }
  } finally {
    bar.stop();
    await rc.close();
  }
  await writeSafetensors(join(out, "model.safetensors"), tensors, { format: "pt", rotated_by: `tersor hadamard seed ${rc.rotation.seed}` });
  await copyTokenizer(dir, out);
  await writeFileAtomic(join(out, "config.json"), JSON.stringify(rc.config, null, 2) + "\n");
  return rc.rotation;
}

/** Copies tokenizer.json / tokenizer_config.json (when present) from `dir` to `out`. */
export async function copyTokenizer(dir: string, out: string): Promise<void> {
  for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
    let b: Buffer | undefined;
    try {
      b = await readFile(join(dir, f));
    } catch {
      b = undefined;
    }
    if (b) await writeFileAtomic(join(out, f), b);
  }
}
