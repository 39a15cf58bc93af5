/**
 * Information measures: k-NN estimators (Kozachenko–Leonenko entropy, KSG mutual information, Frenzel–
 * Pompe conditional MI, the Gao et al. mixed estimator, the Wang–Kulkarni–Verdú divergence), discrete
 * plug-in / Miller–Madow entropy and MI and equal-mass binned MI of layer activations, kernel and matrix
 * estimators (QUESTS KDE entropy, matrix-based Rényi entropies and MI, Cauchy–Schwarz divergence and
 * quadratic MI), spectral measures of representations (von Neumann entropy, effective rank, coding rate
 * and rate reduction, diffusion spectral entropy and MI), each with an optional resampling confidence
 * interval. Results are {@link InformationEstimate}s, in nats unless a `base` is given.
 * @module
 */
export {
  type ConfidenceInterval,
  type InformationEstimate,
  type ResampleOptions,
  ResampleOptionsSchema,
  quantileSorted,
  resampleInterval,
} from "./bootstrap.js";
export { type DiscreteSamples, type Samples, BaseSchema } from "./input.js";
export * from "./knn.js";
export * from "./discrete.js";
export * from "./kernel.js";
export * from "./spectrum.js";
