/**
 * `@tersor/select`: exact and MinHash-LSH deduplication, decontamination, DSIR, ZIP-FIT, submodular, information and embedding selectors, quality filters.
 * @packageDocumentation
 */
export {};
