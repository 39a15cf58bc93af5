import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Rng, Tensor, isTersorError, openSafetensorsDir } from "@tersor/core";
import { corpus } from "@tersor/corpora";
import { loadModel } from "@tersor/model";
import { afterAll, describe, expect, it } from "vitest";

import { hadamardRotation, rotateModel, rotateOutputs, rotateRows, rotationMatrix, rtn } from "../src/index.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const REF_SMALL = resolve(HERE, "../../models/ref-small");
const root = mkdtempSync(join(tmpdir(), "tersor-quant-rotate-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** QᵀQ − I, max abs. */
function orthogonalityError(q: Float32Array, d: number): number {
  let worst = 0;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[k * d + i]! * q[k * d + j]!;
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  return worst;
}

function kurtosis(x: Float32Array): number {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let m2 = 0;
  let m4 = 0;
  for (const v of x) {
    const c = (v - m) ** 2;
    m2 += c;
    m4 += c * c;
  }
  m2 /= x.length;
  return m4 / x.length / (m2 * m2);
}

async function realTokens(encode: (s: string) => number[], n: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const d of corpus("sotu").docs({ split: "test" })) {
    ids.push(...encode(d.text));
    if (ids.length >= n) break;
  }
  return ids.slice(0, n);
}

describe("Hadamard rotation", () => {
  it("the randomised Walsh-Hadamard rotation is orthogonal (QtQ = I) and its entries are ±1/sqrt(d)", async () => {
    const r = hadamardRotation(256, { seed: 3 });
    expect(r.block).toBe(256);
    const q = (await rotationMatrix(r)).data as Float32Array;
    expect(orthogonalityError(q, 256)).toBeLessThan(1e-6);
    for (const v of q) expect(Math.abs(Math.abs(v) - 1 / 16)).toBeLessThan(1e-7);
    // The signs depend on the seed, deterministically.
    expect(hadamardRotation(256, { seed: 3 }).signs).toEqual(r.signs);
    expect(hadamardRotation(256, { seed: 4 }).signs).not.toEqual(r.signs);
  });

  it("a hidden size that is not a power of two gets a block-diagonal rotation of power-of-two blocks", async () => {
    const r = hadamardRotation(96, { seed: 1 });
    expect(r.block).toBe(32);
    const q = (await rotationMatrix(r)).data as Float32Array;
    expect(orthogonalityError(q, 96)).toBeLessThan(1e-6);
    for (let i = 0; i < 96; i++) for (let j = 0; j < 96; j++) if (Math.floor(i / 32) !== Math.floor(j / 32)) expect(Math.abs(q[i * 96 + j]!)).toBe(0);
  });

  it("rejects a hidden size without a usable power-of-two block", () => {
    for (const d of [100, 0, 7.5]) {
      let err: unknown;
      try {
        hadamardRotation(d);
      } catch (e) {
        err = e;
      }
      expect(isTersorError(err) && err.code === "E_SHAPE").toBe(true);
    }
  });

  it("rotateOutputs is Qt W: (x Q)(Qt W) = x W", async () => {
    const d = 64;
    const cols = 24;
    const r = hadamardRotation(d, { seed: 9 });
    const rng = new Rng(2);
    const w = Float32Array.from({ length: d * cols }, () => rng.nextNormal());
    const x = Float32Array.from({ length: 3 * d }, () => rng.nextNormal());
    const xq = await rotateRows(r, x, 3);
    const qw = await rotateOutputs(r, w, cols);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < cols; j++) {
        let a = 0;
        let b = 0;
        for (let k = 0; k < d; k++) {
          a += x[i * d + k]! * w[k * cols + j]!;
          b += xq[i * d + k]! * qw[k * cols + j]!;
        }
        expect(Math.abs(a - b)).toBeLessThan(1e-4);
      }
  });

  it("the Hadamard-rotated float model matches the original logits within 1e-4", async () => {
    const out = join(root, "rotated");
    await rotateModel(REF_SMALL, out, { seed: 0, progress: "silent" });
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(cfg.tie_word_embeddings).toBe(false);
    expect(cfg.tersor_rotation).toMatchObject({ kind: "hadamard", seed: 0, block: 256 });
    const a = await loadModel(REF_SMALL, { progress: "silent" });
    const b = await loadModel(out, { progress: "silent" });
    const ids = await realTokens((s) => a.encode(s), 200);
    expect(ids.length).toBe(200);
    const la = (await a.forward(ids)).data as Float32Array;
    const lb = (await b.forward(ids)).data as Float32Array;
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < la.length; i++) {
      worst = Math.max(worst, Math.abs(la[i]! - lb[i]!));
      scale = Math.max(scale, Math.abs(la[i]!));
    }
    console.log(`rotated float model: max |logit difference| ${worst.toExponential(3)} (max |logit| ${scale.toFixed(2)})`);
    expect(worst).toBeLessThan(1e-4);
    // The rotation did change the weights (it is not the identity).
    const sa = await openSafetensorsDir(REF_SMALL);
    const sb = await openSafetensorsDir(out);
    const e0 = (await sa.read("model.embed_tokens.weight")).to("f32").data as Float32Array;
    const e1 = (await sb.read("model.embed_tokens.weight")).to("f32").data as Float32Array;
    let diff = 0;
    for (let i = 0; i < e0.length; i++) diff = Math.max(diff, Math.abs(e0[i]! - e1[i]!));
    expect(diff).toBeGreaterThan(1e-3);
    await sa.close();
    await sb.close();
  });

  it("rotation lowers the mean max-abs and kurtosis of the rotated linears (RTN 3-bit weight error reported)", async () => {
    const out = join(root, "rotated");
    const sa = await openSafetensorsDir(REF_SMALL);
    const sb = await openSafetensorsDir(out);
    const norms: Record<string, string> = { q_proj: "input_layernorm", k_proj: "input_layernorm", v_proj: "input_layernorm", gate_proj: "post_attention_layernorm", up_proj: "post_attention_layernorm" };
    let kBefore = 0;
    let kAfter = 0;
    let mBefore = 0;
    let mAfter = 0;
    let eBefore = 0;
    let eAfter = 0;
    let n = 0;
    const lines: string[] = [];
    for (let l = 0; l < 8; l++)
      for (const lin of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]) {
        const name = `model.layers.${l}.${lin}.weight`;
        const t = (await sa.read(name)).to("f32");
        const w = (t.data as Float32Array).slice();
        const [rows, cols] = t.shape as [number, number];
        const norm = norms[lin.split(".")[1]!];
        // Compare with the gain-folded original: the matrix the rotation actually rotates.
        if (norm) {
          const g = (await sa.read(`model.layers.${l}.${norm}.weight`)).to("f32").data as Float32Array;
          for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) w[i * cols + j]! *= g[j]!;
        }
        const wr = (await sb.read(name)).to("f32").data as Float32Array;
        const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const ka = kurtosis(w);
        const kb = kurtosis(wr);
        const ma = maxAbs(w);
        const mb = maxAbs(wr);
        // The Frobenius norm is preserved (Q orthogonal).
        const fa = Math.sqrt(w.reduce((a, v) => a + v * v, 0));
        const fb = Math.sqrt(wr.reduce((a, v) => a + v * v, 0));
        expect(Math.abs(fa - fb) / fa).toBeLessThan(1e-5);
        // RTN int3 per channel on both: relative weight error (the same norm, so comparable).
        const qa = (await rtn(new Tensor("f32", [rows, cols], w), "int3")).values.data as Float32Array;
        const qb = (await rtn(new Tensor("f32", [rows, cols], wr), "int3")).values.data as Float32Array;
        let ea = 0;
        let eb = 0;
        for (let i = 0; i < w.length; i++) {
          ea += (w[i]! - qa[i]!) ** 2;
          eb += (wr[i]! - qb[i]!) ** 2;
        }
        kBefore += ka;
        kAfter += kb;
        mBefore += ma;
        mAfter += mb;
        eBefore += ea / (fa * fa);
        eAfter += eb / (fb * fb);
        n++;
        lines.push(`${name}: kurtosis ${ka.toFixed(2)} -> ${kb.toFixed(2)}, max|w| ${ma.toFixed(3)} -> ${mb.toFixed(3)}, int3 rel. MSE ${(ea / (fa * fa)).toExponential(3)} -> ${(eb / (fb * fb)).toExponential(3)}`);
      }
    console.log(lines.join("\n"));
    console.log(`mean over ${n} linears: kurtosis ${(kBefore / n).toFixed(3)} -> ${(kAfter / n).toFixed(3)}, max|w| ${(mBefore / n).toFixed(4)} -> ${(mAfter / n).toFixed(4)}, int3 relative MSE ${(eBefore / n).toExponential(3)} -> ${(eAfter / n).toExponential(3)}`);
    expect(kAfter).toBeLessThan(kBefore);
    expect(mAfter).toBeLessThan(mBefore);
    await sa.close();
    await sb.close();
  });
});
