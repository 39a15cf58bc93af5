/**
 * ggml tensor types as GGUF stores them: the type id, the number of elements per block and the
 * bytes per block. Ids and sizes follow ggml's `enum ggml_type` and `ggml-common.h` block structs
 * (ids 4, 5, 31–33 and 36–38 are retired upstream and never valid in a file).
 */
export interface GgmlTypeInfo {
  /** The `ggml_type` id stored in GGUF tensor infos. */
  readonly id: number;
  /** Lower-case name, as tersor uses it (`"q4_k"`, `"f16"`). */
  readonly name: GgmlTypeName;
  /** Elements per block (1 for plain element types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** True for block-quantized types (opaque blocks of `typeSize` bytes). */
  readonly quantized: boolean;
}

/** Names of every ggml type tersor knows. */
export type GgmlTypeName =
  | "f32"
  | "f16"
  | "q4_0"
  | "q4_1"
  | "q5_0"
  | "q5_1"
  | "q8_0"
  | "q8_1"
  | "q2_k"
  | "q3_k"
  | "q4_k"
  | "q5_k"
  | "q6_k"
  | "q8_k"
  | "iq2_xxs"
  | "iq2_xs"
  | "iq3_xxs"
  | "iq1_s"
  | "iq4_nl"
  | "iq3_s"
  | "iq2_s"
  | "iq4_xs"
  | "i8"
  | "i16"
  | "i32"
  | "i64"
  | "f64"
  | "iq1_m"
  | "bf16"
  | "tq1_0"
  | "tq2_0"
  | "mxfp4"
  | "nvfp4"
  | "q1_0"
  | "q2_0";

const TABLE: readonly (readonly [number, GgmlTypeName, number, number])[] = [
  [0, "f32", 1, 4],
  [1, "f16", 1, 2],
  [2, "q4_0", 32, 18],
  [3, "q4_1", 32, 20],
  [6, "q5_0", 32, 22],
  [7, "q5_1", 32, 24],
  [8, "q8_0", 32, 34],
  [9, "q8_1", 32, 36],
  [10, "q2_k", 256, 84],
  [11, "q3_k", 256, 110],
  [12, "q4_k", 256, 144],
  [13, "q5_k", 256, 176],
  [14, "q6_k", 256, 210],
  [15, "q8_k", 256, 292],
  [16, "iq2_xxs", 256, 66],
  [17, "iq2_xs", 256, 74],
  [18, "iq3_xxs", 256, 98],
  [19, "iq1_s", 256, 50],
  [20, "iq4_nl", 32, 18],
  [21, "iq3_s", 256, 110],
  [22, "iq2_s", 256, 82],
  [23, "iq4_xs", 256, 136],
  [24, "i8", 1, 1],
  [25, "i16", 1, 2],
  [26, "i32", 1, 4],
  [27, "i64", 1, 8],
  [28, "f64", 1, 8],
  [29, "iq1_m", 256, 56],
  [30, "bf16", 1, 2],
  [34, "tq1_0", 256, 54],
  [35, "tq2_0", 256, 66],
  [39, "mxfp4", 32, 17],
  [40, "nvfp4", 64, 36],
  [41, "q1_0", 128, 18],
  [42, "q2_0", 64, 18],
];

const PLAIN = new Set(["f32", "f16", "bf16", "f64", "i8", "i16", "i32", "i64"]);

/** Every known ggml type, by id order. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = TABLE.map(([id, name, blockSize, typeSize]) => ({
  id,
  name,
  blockSize,
  typeSize,
  quantized: !PLAIN.has(name),
}));

const BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map<string, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.name, t]));

/** The type with this GGUF id, or undefined for unknown and retired ids. */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

/** The type with this name (case-insensitive), or undefined. */
export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** Bytes taken by `n` elements of a type; `n` must be a multiple of its block size. */
export function ggmlByteSize(type: GgmlTypeInfo, n: number): number {
  return (n / type.blockSize) * type.typeSize;
}

/** The names of the block-quantized types. */
export const QUANT_TYPE_NAMES: readonly GgmlTypeName[] = GGML_TYPES.filter((t) => t.quantized).map((t) => t.name);
