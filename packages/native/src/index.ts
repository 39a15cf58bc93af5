/**
 * `@tersor/native`: loads tersor's C++ addon and types its surface. Other packages use the binding
 * through {@link native}; users rarely need it directly.
 * @packageDocumentation
 */
import type { Binding } from "./binding/index.js";
import { loadBinding } from "./loader.js";

export type * from "./binding/index.js";
export { TersorError, isTersorError, TERSOR_ERROR_CODES, type TersorErrorCode } from "./errors.js";
export { BUILD_COMMAND, buildDirectory, candidatePaths, cpuProblem, loadBinding } from "./loader.js";

/** The loaded binding (loaded on first call). */
export function native(): Binding {
  return loadBinding();
}

/** Sets the number of threads native kernels use; 0 = physical cores (the default). Returns the count in force. */
export function setNumThreads(n: number): number {
  return loadBinding().setNumThreads(n);
}
