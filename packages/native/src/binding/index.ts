import type { CoreBinding } from "./core.js";
import type { GemmBinding } from "./gemm.js";
import type { LinalgBinding } from "./linalg.js";
import type { MlpBinding } from "./mlp.js";
import type { ModelOpsBinding } from "./model.js";
import type { QuantBinding } from "./quant.js";
import type { StatsBinding } from "./stats.js";
import type { TransformerBinding } from "./transformer.js";
import type { TrainBinding } from "./train.js";
import type { QuantMethodsBinding } from "./quant-methods.js";
import type { KvBinding } from "./kv.js";
import type { SelectBinding } from "./select.js";
import type { MixBinding } from "./mix.js";
import type { DistillBinding } from "./distill.js";

export type { BuildInfo, CoreBinding } from "./core.js";
export type * from "./gemm.js";
export type * from "./linalg.js";
export type * from "./mlp.js";
export type * from "./model.js";
export type { QuantBinding, QuantSchemeInfo } from "./quant.js";
export type * from "./stats.js";
export type * from "./transformer.js";
export type * from "./train.js";
export type * from "./quant-methods.js";
export type * from "./kv.js";
export type * from "./select.js";
export type * from "./mix.js";
export type * from "./distill.js";

/**
 * The typed surface of `tersor.node`. One interface per native domain (native/napi/<domain>.cpp),
 * merged here. Conventions every function follows:
 * - typed arrays cross zero-copy (a view's `byteOffset` is honoured); matrices are row-major;
 * - work that can take more than about a millisecond returns a Promise and runs off the main thread;
 * - failures are {@link TersorError}s with a stable `code`.
 */
export interface Binding extends CoreBinding, GemmBinding, LinalgBinding, MlpBinding, ModelOpsBinding, QuantBinding, StatsBinding, TransformerBinding,
    TrainBinding, QuantMethodsBinding, KvBinding, SelectBinding, MixBinding, DistillBinding {}
