/**
 * `@tersor/mix`: training-free, RegMix regression (native GBDT), mixing laws, online mixers and proxy swarms.
 * @packageDocumentation
 */
export * from "./mixture.js";
export * from "./training-free.js";
export * from "./stats.js";
export * from "./csv.js";
export * from "./regression.js";
export * from "./lbfgs.js";
export * from "./laws.js";
export * from "./online.js";
export * from "./swarm.js";
export * from "./fit.js";
