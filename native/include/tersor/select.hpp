// Data-selection kernels: hashing (xxHash64, SHA-256), word shingles, MinHash signatures with
// datasketch/datatrove-compatible permutations, LSH banding and its (b, r) optimiser, DSIR hashed
// n-gram features, normalised compression distance (deflate) and greedy set cover. No Node-API
// here: every function is usable (and tested) on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tersor::select {

/// A batch of UTF-8 documents: `data` holds them back to back, document i is
/// `data[offsets[i], offsets[i+1])`; `offsets` has `count + 1` entries, non-decreasing.
struct TextBatch {
  const char* data = nullptr;
  const uint32_t* offsets = nullptr;
  size_t count = 0;
  std::string_view doc(size_t i) const { return {data + offsets[i], offsets[i + 1] - offsets[i]}; }
};

/// Checks a batch's offsets (first 0, non-decreasing, last = byte length): E_SHAPE otherwise.
void check_batch(const TextBatch& batch, size_t byte_length, const char* what);

// ---- hashing ----------------------------------------------------------------------------------

/// XXH64 (Collet, xxHash specification v0.1.1), the 64-bit hash datatrove uses for shingles.
uint64_t xxhash64(const void* data, size_t len, uint64_t seed = 0);

/// SHA-256 (FIPS 180-4). Uses the SHA-NI instructions when the CPU has them.
void sha256(const void* data, size_t len, uint8_t out[32]);
/// SHA-256 without the SHA extensions (the portable block function), for tests and baselines.
void sha256_portable(const void* data, size_t len, uint8_t out[32]);

/// The 256-bit digest read as a big-endian integer, modulo m (what Python's
/// `int(hashlib.sha256(s).hexdigest(), 16) % m` computes).
uint32_t digest_mod(const uint8_t digest[32], uint32_t m);

// ---- text normalisation -----------------------------------------------------------------------

/// Character class of a code point as Python's `re` sees it for `\w` / `\s` (str patterns).
/// ASCII is exact; beyond ASCII, whitespace is exact and the common punctuation, symbol, currency,
/// arrow, box-drawing and emoji blocks are non-word; every other code point counts as a word
/// character (letters and digits of all scripts).
enum class CharClass : uint8_t { Space, Word, Other };
CharClass char_class(uint32_t cp);

/// Lower-cases a code point: ASCII, Latin-1, Latin Extended-A pairs, Greek and Cyrillic capitals
/// (the single-code-point cases of Python's `str.lower`); others unchanged.
uint32_t lower_code_point(uint32_t cp);

/// Tokens of NLTK's WordPunctTokenizer (`\w+|[^\w\s]+`) over the lower-cased text, as in DSIR
/// (Xie et al. 2023). `lowered` receives the lower-cased UTF-8 text the views point into.
void wordpunct_tokens(std::string_view text, std::string& lowered, std::vector<std::string_view>& tokens);

/// Simplified words for shingling (datatrove's `simplify_text` idea): lower-cased, punctuation and
/// symbols dropped, words (runs of word characters) joined by one space into `normalised`;
/// `starts`/`ends` are the byte ranges of each word in it.
void simplified_words(std::string_view text, std::string& normalised, std::vector<uint32_t>& starts,
                      std::vector<uint32_t>& ends);

/// The word tokens datatrove shingles (MinhashDedupSignature.get_shingles, English): its
/// `simplify_text` with the default TextNormConfig (lower-case; whitespace stripped and collapsed;
/// its PUNCTUATION characters and the C0/C1 controls deleted without splitting words; NFD with the
/// Mn marks dropped; each run of decimal digits replaced by "0"), then what NLTK's word_tokenize
/// still changes on such text (U+2018 split off; cannot/gimme/gonna/gotta/lemme/wanna split in two).
/// Tokens are joined by one space into `joined`; `starts`/`ends` are their byte ranges.
void datatrove_words(std::string_view text, std::string& joined, std::vector<uint32_t>& starts, std::vector<uint32_t>& ends);

/// xxHash64 of the normalised text (lower-cased, punctuation dropped, whitespace collapsed): the key
/// of exact deduplication.
uint64_t normalised_text_hash(std::string_view text);

// ---- MinHash ----------------------------------------------------------------------------------

constexpr uint64_t kMersennePrime = (uint64_t{1} << 61) - 1;

/// numpy's legacy `RandomState` generator (MT19937 seeded with `init_genrand`), enough of it to
/// reproduce `randint(low, 2**61 - 1, dtype=np.uint64)`: masked rejection over 64-bit draws made of
/// two 32-bit outputs, high word first.
class NumpyMt19937 {
 public:
  explicit NumpyMt19937(uint32_t seed);
  uint32_t next_u32();
  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  /// `randint(low, high, dtype=np.uint64)` for high - low > 2^32 (numpy's masked rejection).
  uint64_t randint_u64(uint64_t low, uint64_t high);

 private:
  uint32_t mt_[624];
  int index_ = 624;
};

/// Permutation layouts of the two reference libraries with the same seed: datatrove draws all a's
/// then all b's (`randint(1, p, size=K)`, `randint(0, p, size=K)`); datasketch draws (a, b) pairs.
enum class PermutationLayout { Datatrove, Datasketch };

struct MinHashParams {
  std::vector<uint64_t> a, b;  // one per permutation
};

MinHashParams minhash_permutations(size_t num_perm, uint32_t seed, PermutationLayout layout);

/// Hashes of the word n-grams (`n` tokens of datatrove_words joined by one space, xxHash64 with
/// seed 0): datatrove's shingles. As datatrove (nltk's ngrams), a text with fewer than `n` tokens
/// has no shingles; its signature is all 0xFFFFFFFF and LSH leaves it out of every bucket.
void word_shingles(std::string_view text, size_t n, std::vector<uint64_t>& out);

/// The 32-bit MinHash signature `min_s ((a·h_s + b) mod (2^61 − 1)) & 0xFFFFFFFF`, the products
/// and sums wrapping in uint64 exactly as numpy does in datasketch and datatrove. With no shingles
/// every entry is 0xFFFFFFFF.
void minhash_signature(const uint64_t* shingles, size_t count, const MinHashParams& p, uint32_t* sig);

/// Signatures of a batch (`count` x num_perm, row-major), in parallel.
void minhash_batch(const TextBatch& batch, size_t ngram, const MinHashParams& p, uint32_t* sigs);

/// Decontamination (as in GPT-3 / Llama evaluations): for each document, how many of its word
/// n-grams (exactly `n` simplified words, no short-text fallback) occur among the targets' n-grams.
void ngram_overlap_counts(const TextBatch& docs, const TextBatch& targets, size_t n, uint32_t* out);

/// Fraction of equal entries: the MinHash estimate of the Jaccard similarity.
double minhash_jaccard(const uint32_t* a, const uint32_t* b, size_t num_perm);

// ---- LSH --------------------------------------------------------------------------------------

/// Band keys: xxHash64 (seed = band index) of each band's `rows` signature values. keys is n x bands.
void lsh_band_keys(const uint32_t* sigs, size_t n, size_t num_perm, size_t bands, size_t rows, uint64_t* keys);

/// Candidate pairs: per band, documents with equal keys; each is linked to the lowest-index member
/// of its bucket. Pairs (i, j) with j < i, each pair once, sorted.
std::vector<std::pair<uint32_t, uint32_t>> lsh_candidate_pairs(const uint64_t* keys, size_t n, size_t bands);

/// True for the signature of a text without shingles (every entry 0xFFFFFFFF).
bool signature_is_empty(const uint32_t* sig, size_t num_perm);

/// The same pairs straight from signatures, one band at a time (peak memory 16 bytes per document
/// plus the pairs, instead of the n x bands key matrix). Documents without shingles (empty
/// signatures) are in no bucket, as datatrove writes no signature for them.
std::vector<std::pair<uint32_t, uint32_t>> lsh_candidate_pairs_from_signatures(const uint32_t* sigs, size_t n, size_t num_perm,
                                                                              size_t bands, size_t rows);

// ---- external-memory LSH (sorted runs on disk) -------------------------------------------------

/// Writes one sorted run: for each of `sections` key columns of `keys` (n x sections, row-major),
/// the records (key, first_id + i) sorted by (key, id), as packed little-endian (u64, u32) after a
/// header (magic, section count, per-section record counts). E_IO when the file cannot be written.
/// With `in_bands`, a document whose entry is 0 has a record in section 0 only.
void lsh_write_run(const std::string& path, const uint64_t* keys, size_t n, size_t sections, uint32_t first_id,
                   const uint8_t* in_bands = nullptr);

/// One run of a streaming dedup: section 0 holds the exact-text keys `exact` (n values), sections
/// 1..bands the LSH band keys of `sigs` (n x num_perm; null for exact-only dedup: no band sections).
/// Document ids are first_id .. first_id + n − 1. Empty signatures get no band records.
void lsh_spill_run(const std::string& path, const uint32_t* sigs, const uint64_t* exact, size_t n, uint32_t first_id, size_t num_perm,
                   size_t bands, size_t rows);

struct SpilledPairs {
  size_t sections = 0;
  /// Documents sharing an exact key with a lower id: (id, lowest id of the key), sorted by id.
  std::vector<std::pair<uint32_t, uint32_t>> exact;
  /// LSH candidate pairs (i, j), j < i, each once, sorted: the same set lsh_candidate_pairs gives.
  std::vector<std::pair<uint32_t, uint32_t>> lsh;
};

/// k-way merges the runs section by section (a heap over buffered readers: memory is
/// O(runs) buffers plus the pairs) and links each record to the lowest id of its equal-key group.
/// More than `max_fan_in` runs are first merged in groups into intermediate runs (`<run>.merged`,
/// removed afterwards, also on error), so open files and buffers stay bounded.
/// E_FORMAT for a file that is not a run, runs with different section counts, or a repeated id.
SpilledPairs lsh_merge_runs(const std::vector<std::string>& paths, size_t max_fan_in = 128);

/// How many pairs have a MinHash Jaccard estimate >= threshold, reading the two rows of each pair
/// from a file of `num_perm` uint32 per document (document id = row).
size_t spilled_pairs_above(const std::string& sig_path, size_t num_perm, const std::vector<std::pair<uint32_t, uint32_t>>& pairs,
                           double threshold);

/// Weighted false-positive and false-negative areas of datasketch's `_optimal_param`:
/// ∫_0^t 1 − (1 − s^r)^b ds and ∫_t^1 (1 − s^r)^b ds.
double lsh_false_positive_area(double threshold, size_t b, size_t r);
double lsh_false_negative_area(double threshold, size_t b, size_t r);

struct LshParams {
  size_t bands = 0, rows = 0;
};
/// datasketch's `optimal_param`: the (b, r) with b·r ≤ num_perm minimising
/// fp_weight·FP + fn_weight·FN (first minimum in b-major, r-minor order).
LshParams lsh_optimal_params(double threshold, size_t num_perm, double fp_weight = 0.5, double fn_weight = 0.5);

/// Union-find with path halving and union by lowest index: find() of any member is the lowest
/// index of its component.
class UnionFind {
 public:
  explicit UnionFind(size_t n);
  uint32_t find(uint32_t x);
  void unite(uint32_t a, uint32_t b);

 private:
  std::vector<uint32_t> parent_;
};

// ---- DSIR -------------------------------------------------------------------------------------

/// DSIR's bucket of an n-gram: sha256(UTF-8) as an integer mod `num_buckets`.
uint32_t dsir_bucket(std::string_view ngram, uint32_t num_buckets);

/// The hashed features of one text in DSIR's order: every unigram's bucket, then every bigram's
/// (the two tokens joined by one space), ... up to `ngrams`.
void dsir_features(std::string_view text, uint32_t num_buckets, size_t ngrams, std::vector<uint32_t>& out);

/// Adds every document's feature counts into `counts` (num_buckets). Parallel, exact.
void dsir_count_batch(const TextBatch& batch, uint32_t num_buckets, size_t ngrams, double* counts);

/// Log importance weights Σ_k c_k · log_diff[k] of each document.
void dsir_log_weights(const TextBatch& batch, uint32_t num_buckets, size_t ngrams, const double* log_diff, double* out);

// ---- compression distance ---------------------------------------------------------------------

/// Size in bytes of `gzip.compress(text, level)` (raw deflate with a 32 KiB window, memory level 8,
/// plus the 18 bytes of gzip header and trailer). Reuses one deflate state per thread.
size_t gzip_size(std::string_view text, int level);

/// NCD(x, y) = (C(xy) − min(C(x), C(y))) / max(C(x), C(y)) (Cilibrasi & Vitányi 2005).
double ncd(std::string_view x, std::string_view y, int level);

/// ZIP-FIT (Obbad et al. 2024): for each document, the mean NCD to the target examples. Parallel.
void ncd_mean_to_targets(const TextBatch& docs, const TextBatch& targets, int level, double* out);

// ---- set functions ----------------------------------------------------------------------------

/// Greedy set cover / max coverage over sets of element ids (set i is elems[offsets[i], offsets[i+1])):
/// repeatedly picks the set covering the most uncovered elements (lowest index on ties) until all
/// elements are covered or `max_sets` are picked. Returns the picked sets in order.
std::vector<uint32_t> greedy_set_cover(const uint32_t* elems, const uint32_t* offsets, size_t num_sets, size_t max_sets);

}  // namespace tersor::select
