/** Bindings of native/napi/quant_methods.cpp (tersor/quant_methods.hpp). Weights are row-major [rows = out, cols = in]; Grams are [cols, cols] f64 XᵀX. */
export interface QuantMethodsBinding {
  /** Round-to-nearest with a scheme of quant_formats.hpp: packed rows and their values. */
  quantRtn(w: Float32Array, rows: number, cols: number, scheme: string): Promise<{ q: Uint8Array; deq: Float32Array }>;
  /** GPTQ (Frantar et al. 2022) over one linear. */
  quantGptq(
    w: Float32Array,
    rows: number,
    cols: number,
    gram: Float64Array,
    nSamples: number,
    scheme: string,
    damp: number,
    blockSize: number,
    actOrder: boolean,
    staticGroups: boolean,
  ): Promise<{ q: Uint8Array; deq: Float32Array; loss: number; dead: number; order: Int32Array }>;
  /** AWQ scale search over linears sharing one input (weights' rows concatenated). */
  quantAwqSearch(
    ws: Float32Array,
    totalRows: number,
    cols: number,
    gram: Float64Array,
    meanAbsX: Float32Array,
    scheme: string,
    grid: number,
    rowsPerWeight: Float64Array,
  ): Promise<{ scales: Float32Array; alpha: number; error: number; errors: Float64Array }>;
  /** HQQ (Badri & Shaji 2023): asymmetric codes with per-group scale and real zero point. */
  quantHqq(
    w: Float32Array,
    rows: number,
    cols: number,
    bits: number,
    group: number,
    lpNorm: number,
    beta: number,
    kappa: number,
    iters: number,
  ): Promise<{ scale: Float32Array; zero: Float32Array; codes: Uint8Array; deq: Float32Array; iterations: number; error: number }>;
  /** LoRD / LoRC / EoRA: m ≈ B A, B [rows, rank], A [rank, cols]. `gram` only for eora; rank 0 with lord = by energy. */
  quantLowRank(
    kind: "lord" | "lorc" | "eora",
    m: Float32Array,
    rows: number,
    cols: number,
    rank: number,
    gram: Float64Array | null,
    energy?: number,
  ): Promise<{ b: Float32Array; a: Float32Array; rank: number; singularValues: Float32Array }>;
  /** tr((W − V) G (W − V)ᵀ) = ‖X (W − V)ᵀ‖². */
  quantOutputError(w: Float32Array, v: Float32Array, rows: number, cols: number, gram: Float64Array): Promise<number>;
}
