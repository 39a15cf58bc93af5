/**
 * `@tersor/distill`: fused KD losses, sparse teacher-logit caches, student training, dataset condensation, vocabulary trimming.
 * @packageDocumentation
 */
export {};
