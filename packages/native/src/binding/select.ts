/**
 * Data-selection kernels (native/napi/select.cpp over native/include/tersor/select.hpp). Texts cross
 * as one `Uint8Array` of UTF-8 bytes plus a `Uint32Array` of `count + 1` byte offsets (document `i`
 * is `bytes[offsets[i], offsets[i+1])`). Batch functions return Promises and keep their inputs
 * alive until they settle. Failures are `TersorError`s: `E_DTYPE` (wrong typed array), `E_SHAPE`
 * (offsets that do not start at 0, decrease or do not end at the byte length; sizes that disagree),
 * `E_RANGE` (out-of-range parameters, an empty target).
 */
export interface SelectBinding {
  /** xxHash64 of each document's normalised text (lower-cased, punctuation dropped, whitespace collapsed), as (low, high) 32-bit words. */
  selectNormalisedHashes(bytes: Uint8Array, offsets: Uint32Array): Uint32Array;
  /** XXH64 of raw bytes, as (low, high) 32-bit words. */
  selectXxhash64(bytes: Uint8Array, seed: number): Uint32Array;
  /**
   * 32-bit MinHash signatures (`count × numPerm`, row-major) of word `ngram`-shingles hashed with
   * xxHash64, under the permutations numpy's `RandomState(seed)` gives datatrove (`"datatrove"`: all
   * a then all b) or datasketch (`"datasketch"`: (a, b) pairs).
   */
  selectMinhashSignatures(bytes: Uint8Array, offsets: Uint32Array, ngram: number, numPerm: number, seed: number, layout: "datatrove" | "datasketch"): Promise<Uint32Array>;
  /** LSH candidate pairs `(i, j)`, `j < i`, flattened: documents whose band keys agree in some band (each linked to its bucket's lowest index). */
  selectLshCandidatePairs(signatures: Uint32Array, n: number, numPerm: number, bands: number, rows: number): Promise<Uint32Array>;
  /** datasketch's `optimal_param`: bands and rows minimising the weighted false-positive/negative areas. */
  selectLshOptimalParams(threshold: number, numPerm: number, fpWeight: number, fnWeight: number): { bands: number; rows: number };
  /** DSIR's bucket of one n-gram: `int(sha256(ngram).hexdigest(), 16) % numBuckets`. */
  selectDsirBucket(ngram: string, numBuckets: number): number;
  /** DSIR's hashed features of one text (unigram buckets, then bigram buckets, ... up to `ngrams`). */
  selectDsirFeatures(text: string, numBuckets: number, ngrams: number): Uint32Array;
  /** Summed DSIR feature counts of a batch (`numBuckets`). */
  selectDsirCounts(bytes: Uint8Array, offsets: Uint32Array, numBuckets: number, ngrams: number): Promise<Float64Array>;
  /** DSIR log importance weights `Σ_k c_k · logDiff[k]` per document. */
  selectDsirLogWeights(bytes: Uint8Array, offsets: Uint32Array, numBuckets: number, ngrams: number, logDiff: Float64Array): Promise<Float64Array>;
  /** ZIP-FIT: each document's mean normalised compression distance (gzip sizes at `level`) to the targets. */
  selectNcdMeanToTargets(bytes: Uint8Array, offsets: Uint32Array, targetBytes: Uint8Array, targetOffsets: Uint32Array, level: number): Promise<Float64Array>;
  /** `len(gzip.compress(text, level))`. */
  selectGzipSize(text: string, level: number): number;
  /** Normalised compression distance of two texts. */
  selectNcd(x: string, y: string, level: number): number;
  /** Per document, how many of its word `n`-grams occur in the targets (decontamination). */
  selectNgramOverlap(bytes: Uint8Array, offsets: Uint32Array, targetBytes: Uint8Array, targetOffsets: Uint32Array, n: number): Promise<Uint32Array>;
  /**
   * Writes one sorted LSH run file for documents `firstId .. firstId + n − 1`: section 0 their exact
   * keys (`exactHashes`, (low, high) words per document), sections 1..bands their band keys
   * (`signatures` n × numPerm, or empty for exact-only dedup). `E_IO` when the file cannot be written.
   */
  selectLshSpillRun(path: string, signatures: Uint32Array, exactHashes: Uint32Array, n: number, firstId: number, numPerm: number, bands: number, rows: number): Promise<void>;
  /**
   * k-way merges run files: `exact` holds (id, lowest id with the same exact key) pairs, `lsh` the
   * LSH candidate pairs (i, j), j < i, flattened, sorted (the same set as `selectLshCandidatePairs`);
   * `above` counts LSH pairs whose MinHash Jaccard (rows read from the `sigPath` file of numPerm
   * uint32 per document) is at least `threshold` (0 when `sigPath` is "").
   */
  selectLshMergeRuns(paths: string[], sigPath: string, numPerm: number, threshold: number): Promise<{ exact: Uint32Array; lsh: Uint32Array; above: number }>;
  /** Greedy set cover / max coverage: the picked set indices in order (set `i` is `elements[offsets[i], offsets[i+1])`). */
  selectGreedySetCover(elements: Uint32Array, offsets: Uint32Array, maxSets: number): Uint32Array;
}
