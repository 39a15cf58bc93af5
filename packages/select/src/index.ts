/**
 * `@tersor/select`: exact and MinHash-LSH deduplication, decontamination, DSIR, ZIP-FIT, submodular, information selectors, quality filters.
 * @packageDocumentation
 */
export * from "./io.js";
export * from "./dedup.js";
export * from "./selectors.js";
export * from "./setfunctions.js";
export * from "./filters.js";
export * from "./run.js";
export * from "./report.js";
export * from "./model.js";
export * from "./shard.js";
