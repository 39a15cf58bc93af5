/**
 * `@tersor/eval`: what a compression cost, measured. Perplexity, bits per byte and bits per
 * character with lm-evaluation-harness's exact definitions.
 * @packageDocumentation
 */
export * from "./metrics.js";
export * from "./perplexity.js";
export * from "./windows.js";
export * from "./calibration.js";
export * from "./compression.js";
export * from "./neural-mi.js";
export * from "./plot.js";
export * from "./information/index.js";
