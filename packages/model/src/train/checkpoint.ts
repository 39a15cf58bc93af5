/**
 * Training checkpoints in the Hugging Face layout: `config.json` (LlamaForCausalLM /
 * Qwen2ForCausalLM / GPT2LMHeadModel fields), `model.safetensors` (HF tensor names, f32, lm_head
 * left out when tied), the byte-level `tokenizer.json` + `tokenizer_config.json`, and tersor's
 * training state: `optimizer.safetensors` (AdamW's first and second moments by canonical parameter
 * name) and `trainer_state.json` (step, loader state, log). A checkpoint is written into a temporary
 * directory beside its destination and renamed into place, so the previous checkpoint stays whole
 * until the new one is complete.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { type NamedTensors, Tensor, TersorError, openSafetensors, openSafetensorsDir, pathExists } from "@tersor/core";
import { writeSafetensors } from "@tersor/core";
import type { NativeTrainable, TrainableParameter, TransformerConfig } from "@tersor/native";

import { type ModelArchitecture, parseHfConfig } from "../config.js";
import { isFile, readJsonFile } from "../files.js";
import { BYTE_BOS, BYTE_EOS, BYTE_PAD, byteTokenizerConfigJson, byteTokenizerJson } from "../tokenizer.js";
import { type WeightSink, hfPlan, loadWeights, safetensorsSource, transpose2d } from "../weights.js";
import type { LoaderState } from "./data.js";
import type { TrainArchitecture, TrainLog } from "./options.js";

/** Files a checkpoint consists of (others in the directory are carried over from the previous checkpoint). */
export const CHECKPOINT_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "optimizer.safetensors", "trainer_state.json"] as const;

/** trainer_state.json. */
export interface TrainerState {
  format: "tersor-trainer-state";
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  tokensSeen: number;
  seed: number;
  loader: LoaderState;
  /** The latest per-domain validation loss (what a weights callback was last given). */
  lastValLoss?: Record<string, number>;
  /** Hyper-parameters the run was started with (resume refuses different ones that change the run). */
  hyper: Record<string, unknown>;
  log: TrainLog;
}

/** config.json of a model trained from scratch. */
export function hfConfigJson(arch: TrainArchitecture, c: TransformerConfig, initStd = 0.02): Record<string, unknown> {
  const special = { bos_token_id: BYTE_BOS, eos_token_id: BYTE_EOS, pad_token_id: BYTE_PAD };
  if (arch === "gpt2") {
    return {
      architectures: ["GPT2LMHeadModel"],
      model_type: "gpt2",
      vocab_size: c.vocabSize,
      n_embd: c.hidden,
      n_layer: c.layers,
      n_head: c.heads,
      n_positions: c.maxPositions,
      n_ctx: c.maxPositions,
      n_inner: c.intermediate,
      activation_function: c.activation === "gelu" ? "gelu" : "gelu_new",
      layer_norm_epsilon: c.normEps,
      initializer_range: initStd,
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
      tie_word_embeddings: true,
      torch_dtype: "float32",
      ...special,
    };
  }
  return {
    architectures: [arch === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: arch,
    vocab_size: c.vocabSize,
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    hidden_act: "silu",
    rms_norm_eps: c.normEps,
    rope_theta: c.rope?.theta ?? 10000,
    max_position_embeddings: c.maxPositions,
    tie_word_embeddings: c.tieEmbeddings,
    attention_bias: arch === "llama" ? false : undefined,
    mlp_bias: arch === "llama" ? false : undefined,
    attention_dropout: 0,
    initializer_range: initStd,
    use_cache: true,
    torch_dtype: "float32",
    ...special,
  };
}

/** Canonical parameter name → Hugging Face tensor name (llama / qwen2); undefined for names gpt2 fuses. */
function llamaName(name: string): string {
  if (name === "embed") return "model.embed_tokens.weight";
  if (name === "lmHead") return "lm_head.weight";
  if (name === "finalNorm.weight") return "model.norm.weight";
  const m = /^layers\.(\d+)\.(\w+)\.(weight|bias)$/.exec(name);
  if (m) {
    const [, i, part, kind] = m;
    const map: Record<string, string> = {
      attnNorm: "input_layernorm",
      mlpNorm: "post_attention_layernorm",
      q: "self_attn.q_proj",
      k: "self_attn.k_proj",
      v: "self_attn.v_proj",
      o: "self_attn.o_proj",
      gate: "mlp.gate_proj",
      up: "mlp.up_proj",
      down: "mlp.down_proj",
    };
    const hf = map[part!];
    if (hf) return `model.layers.${i}.${hf}.${kind}`;
  }
  throw new TersorError("E_FORMAT", `no Hugging Face name for parameter "${name}"`);
}

/** The model's tensors under Hugging Face names (views or copies of `values`). */
export function hfTensors(arch: ModelArchitecture, params: readonly TrainableParameter[], values: Float32Array): NamedTensors {
  const byName = new Map(params.map((p) => [p.name, p]));
  const get = (n: string): Float32Array => {
    const p = byName.get(n);
    if (!p) throw new TersorError("E_FORMAT", `the trainable model has no parameter "${n}"`);
    return values.subarray(p.offset, p.offset + p.size);
  };
  const shapeOf = (n: string) => byName.get(n)!.shape;
  const out: Array<[string, Tensor]> = [];
  const f32 = (data: Float32Array, shape: readonly number[]) => new Tensor("f32", shape, Float32Array.from(data));
  if (arch !== "gpt2") {
    for (const p of params) out.push([llamaName(p.name), f32(get(p.name), p.shape)]);
    return out;
  }
  const T = (n: string): Tensor => {
    const [r, c] = shapeOf(n) as [number, number];
    return new Tensor("f32", [c, r], transpose2d(get(n), r, c));
  };
  const used = new Set<string>();
  const take = (n: string) => (used.add(n), get(n));
  out.push(["transformer.wte.weight", f32(take("embed"), shapeOf("embed"))]);
  out.push(["transformer.wpe.weight", f32(take("posEmbed"), shapeOf("posEmbed"))]);
  const layers = params.filter((p) => /^layers\.\d+\.q\.weight$/.test(p.name)).length;
  for (let l = 0; l < layers; l++) {
    const t = `layers.${l}.`;
    const h = `transformer.h.${l}.`;
    out.push([h + "ln_1.weight", f32(take(t + "attnNorm.weight"), shapeOf(t + "attnNorm.weight"))]);
    out.push([h + "ln_1.bias", f32(take(t + "attnNorm.bias"), shapeOf(t + "attnNorm.bias"))]);
    const [C, Cin] = shapeOf(t + "q.weight") as [number, number];
    const qkv = new Float32Array(3 * C * Cin);
    qkv.set(take(t + "q.weight"), 0);
    qkv.set(take(t + "k.weight"), C * Cin);
    qkv.set(take(t + "v.weight"), 2 * C * Cin);
    out.push([h + "attn.c_attn.weight", new Tensor("f32", [Cin, 3 * C], transpose2d(qkv, 3 * C, Cin))]);
    const qkvb = new Float32Array(3 * C);
    qkvb.set(take(t + "q.bias"), 0);
    qkvb.set(take(t + "k.bias"), C);
    qkvb.set(take(t + "v.bias"), 2 * C);
    out.push([h + "attn.c_attn.bias", new Tensor("f32", [3 * C], qkvb)]);
    used.add(t + "o.weight");
    out.push([h + "attn.c_proj.weight", T(t + "o.weight")]);
    out.push([h + "attn.c_proj.bias", f32(take(t + "o.bias"), shapeOf(t + "o.bias"))]);
    out.push([h + "ln_2.weight", f32(take(t + "mlpNorm.weight"), shapeOf(t + "mlpNorm.weight"))]);
    out.push([h + "ln_2.bias", f32(take(t + "mlpNorm.bias"), shapeOf(t + "mlpNorm.bias"))]);
    used.add(t + "up.weight");
    out.push([h + "mlp.c_fc.weight", T(t + "up.weight")]);
    out.push([h + "mlp.c_fc.bias", f32(take(t + "up.bias"), shapeOf(t + "up.bias"))]);
    used.add(t + "down.weight");
    out.push([h + "mlp.c_proj.weight", T(t + "down.weight")]);
    out.push([h + "mlp.c_proj.bias", f32(take(t + "down.bias"), shapeOf(t + "down.bias"))]);
  }
  out.push(["transformer.ln_f.weight", f32(take("finalNorm.weight"), shapeOf("finalNorm.weight"))]);
  out.push(["transformer.ln_f.bias", f32(take("finalNorm.bias"), shapeOf("finalNorm.bias"))]);
  const left = params.filter((p) => !used.has(p.name)).map((p) => p.name);
  if (left.length > 0) throw new TersorError("E_FORMAT", `gpt2 checkpoint: parameters without a Hugging Face name: ${left.join(", ")}`);
  return out;
}

/** A {@link WeightSink} that writes canonical weights into a trainable model's f32 parameter buffer. */
export function paramSink(trainable: NativeTrainable, where: string): WeightSink {
  const params = trainable.parameters();
  const byName = new Map(params.map((p) => [p.name, p]));
  const values = trainable.params();
  const set = new Set<string>();
  return {
    setWeight(name, data, dtype, shape) {
      const p = byName.get(name);
      if (!p) throw new TersorError("E_FORMAT", `${where}: the model has no parameter "${name}"`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (n !== p.size || data.length !== p.size) throw new TersorError("E_SHAPE", `${where}: "${name}" has ${n} values, the model needs ${p.size} ([${p.shape.join(", ")}])`);
      const f = dtype === "f32" ? (data as Float32Array) : new Tensor(dtype, shape, data as Uint16Array).toFloat32Array();
      values.set(f, p.offset);
      set.add(name);
    },
    missingWeights: () => params.filter((p) => !set.has(p.name)).map((p) => p.name),
  };
}

/** Reads a Hugging Face directory's weights into `trainable` (the runtime loader's name mapping). */
export async function loadParams(dir: string, arch: ModelArchitecture, config: TransformerConfig, trainable: NativeTrainable): Promise<void> {
  const st = await openSafetensorsDir(dir);
  const src = safetensorsSource(st, dir);
  try {
    const sink = paramSink(trainable, dir);
    const prefixes = arch === "gpt2" ? ["transformer.", "model."] : ["model.", "transformer."];
    await loadWeights(src, hfPlan(arch, config), sink, { prefixes, progress: "silent" });
    const missing = sink.missingWeights();
    if (missing.length > 0) throw new TersorError("E_FORMAT", `${dir}: the checkpoint leaves parameters unset: ${missing.join(", ")}`);
  } finally {
    await src.close();
  }
}

/** The config.json of a directory and what it describes. */
export async function readHfConfig(dir: string): Promise<{ json: Record<string, unknown>; arch: ModelArchitecture; config: TransformerConfig }> {
  const p = join(dir, "config.json");
  if (!(await isFile(p))) throw new TersorError("E_IO", `${dir}: no config.json: not a checkpoint`);
  const json = (await readJsonFile(p)) as Record<string, unknown>;
  const spec = parseHfConfig(json, p);
  return { json, arch: spec.architecture, config: spec.transformer };
}

/** AdamW's moments as `exp_avg.<name>` / `exp_avg_sq.<name>` tensors. */
function optimizerTensors(params: readonly TrainableParameter[], m: Float32Array, v: Float32Array): NamedTensors {
  const out: Array<[string, Tensor]> = [];
  for (const p of params) {
    out.push([`exp_avg.${p.name}`, new Tensor("f32", p.shape, m.slice(p.offset, p.offset + p.size))]);
    out.push([`exp_avg_sq.${p.name}`, new Tensor("f32", p.shape, v.slice(p.offset, p.offset + p.size))]);
  }
  return out;
}

/** Reads optimizer.safetensors back into the model's AdamW moments. */
export async function loadOptimizer(dir: string, trainable: NativeTrainable): Promise<void> {
  const path = join(dir, "optimizer.safetensors");
  const f = await openSafetensors(path);
  try {
    const { m, v } = trainable.adamState();
    for (const p of trainable.parameters()) {
      for (const [key, dst] of [
        [`exp_avg.${p.name}`, m],
        [`exp_avg_sq.${p.name}`, v],
      ] as const) {
        const info = f.get(key);
        if (!info) throw new TersorError("E_FORMAT", `${path}: missing tensor "${key}"`);
        if (info.numel !== p.size || info.dtype !== "F32") throw new TersorError("E_SHAPE", `${path}: "${key}" must be F32 with ${p.size} values`);
        const t = await f.read(key);
        dst.set(t.data as Float32Array, p.offset);
      }
    }
  } finally {
    await f.close();
  }
}

export async function readTrainerState(dir: string): Promise<TrainerState | undefined> {
  const p = join(dir, "trainer_state.json");
  if (!(await isFile(p))) return undefined;
  const s = (await readJsonFile(p)) as TrainerState;
  if (s?.format !== "tersor-trainer-state" || s.version !== 1) throw new TersorError("E_FORMAT", `${p}: not a tersor trainer state (format/version)`);
  return s;
}

/** Refuses to write over a directory that holds files but no checkpoint (so a typo never replaces someone's folder). */
export async function checkOutDir(out: string): Promise<void> {
  if (!(await pathExists(out))) return;
  const st = await stat(out);
  if (!st.isDirectory()) throw new TersorError("E_IO", `out ${out} exists and is not a directory`);
  const entries = await readdir(out);
  if (entries.length > 0 && !entries.includes("trainer_state.json") && !entries.includes("config.json")) {
    throw new TersorError("E_IO", `out ${out} is a non-empty directory that holds no checkpoint; choose an empty or new directory`);
  }
}

/** What a checkpoint holds. */
export interface CheckpointParts {
  configJson: Record<string, unknown>;
  arch: ModelArchitecture;
  trainable: NativeTrainable;
  state: TrainerState;
  /** Extra small files (name → content) to write into the checkpoint, e.g. a README. */
  extra?: Record<string, string>;
  /** Leave out optimizer.safetensors and trainer_state.json (a release model). */
  weightsOnly?: boolean;
}

/**
 * Writes a checkpoint to `out`: everything goes to a temporary sibling directory, which replaces
 * `out` by renames once complete; files of the old `out` that are not checkpoint files (logs,
 * plots) move into the new one.
 */
export async function writeCheckpoint(out: string, parts: CheckpointParts): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  const tag = randomBytes(6).toString("hex");
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${tag}`);
  const old = join(dirname(out), `.${basename(out)}.old-${tag}`);
  await mkdir(tmp);
  try {
    const params = parts.trainable.parameters();
    await writeFile(join(tmp, "config.json"), JSON.stringify(parts.configJson, null, 2) + "\n");
    await writeSafetensors(join(tmp, "model.safetensors"), hfTensors(parts.arch, params, parts.trainable.params()), { format: "pt" });
    await writeFile(join(tmp, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
    await writeFile(join(tmp, "tokenizer_config.json"), JSON.stringify(byteTokenizerConfigJson(), null, 2) + "\n");
    if (!parts.weightsOnly) {
      const { m, v } = parts.trainable.adamState();
      await writeSafetensors(join(tmp, "optimizer.safetensors"), optimizerTensors(params, m, v), { format: "tersor-adamw" });
      await writeFile(join(tmp, "trainer_state.json"), JSON.stringify(parts.state));
    }
    for (const [name, text] of Object.entries(parts.extra ?? {})) await writeFile(join(tmp, name), text);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e instanceof TersorError ? e : new TersorError("E_IO", `writing the checkpoint ${out}: ${(e as Error).message}`, { cause: e });
  }
  const had = await pathExists(out);
  if (had) await rename(out, old);
  await rename(tmp, out);
  if (had) {
    const written = new Set<string>([...CHECKPOINT_FILES, ...Object.keys(parts.extra ?? {})]);
    for (const e of await readdir(old)) {
      if (!written.has(e) && !(await pathExists(join(out, e)))) await rename(join(old, e), join(out, e));
    }
    await rm(old, { recursive: true, force: true });
  }
}
