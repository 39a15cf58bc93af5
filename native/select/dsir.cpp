// DSIR hashed n-gram features (Xie et al. 2023, "Data Selection for Language Models via Importance
// Resampling"): WordPunct tokens of the lower-cased text, unigrams and bigrams hashed by SHA-256
// mod the bucket count, exactly as the reference `data_selection.hashed_ngram_dsir`.
#include <omp.h>

#include <string>
#include <algorithm>
#include <cstring>

#include "tersor/error.hpp"
#include "tersor/select.hpp"

namespace tersor::select {

uint32_t dsir_bucket(std::string_view ngram, uint32_t num_buckets) {
  require(num_buckets >= 1, ErrorCode::Range, "num_buckets must be >= 1");
  uint8_t d[32];
  sha256(ngram.data(), ngram.size(), d);
  return digest_mod(d, num_buckets);
}

namespace {
/// Per-thread memo of n-gram -> bucket (text is Zipfian: most n-grams repeat): an open-addressing
/// table keyed by xxHash64 of the n-gram, the bytes kept in an arena and compared on a hit, so a
/// hash collision can never change a bucket. Cleared when half full.
struct BucketCache {
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0, len = 0, bucket = 0, used = 0;
  };
  static constexpr size_t kSlots = size_t{1} << 16;
  uint32_t num_buckets = 0;
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
  std::string arena;
  size_t filled = 0;
  void clear() {
    std::fill(slots.begin(), slots.end(), Slot{});
    arena.clear();
    filled = 0;
  }
  uint32_t get(std::string_view g) {
    const uint64_t h = xxhash64(g.data(), g.size(), 0x5eed);
    size_t i = h & (kSlots - 1);
    for (;;) {
      Slot& s = slots[i];
      if (!s.used) break;
      if (s.hash == h && s.len == g.size() && std::memcmp(arena.data() + s.offset, g.data(), g.size()) == 0) return s.bucket;
      i = (i + 1) & (kSlots - 1);
    }
    const uint32_t b = dsir_bucket(g, num_buckets);
    if (filled >= kSlots / 2 || arena.size() + g.size() > (size_t{1} << 31)) {
      clear();
      i = h & (kSlots - 1);
    }
    Slot& s = slots[i];
    s = {h, static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(g.size()), b, 1};
    arena.append(g);
    ++filled;
    return b;
  }
};

template <class Sink>
void for_each_feature(std::string_view text, uint32_t num_buckets, size_t ngrams, Sink&& sink) {
  thread_local std::string lowered, joined;
  thread_local std::vector<std::string_view> toks;
  thread_local BucketCache cache;
  if (cache.num_buckets != num_buckets) {
    cache.clear();
    cache.num_buckets = num_buckets;
  }
  wordpunct_tokens(text, lowered, toks);
  for (auto t : toks) sink(cache.get(t));
  for (size_t n = 2; n <= ngrams; ++n) {
    for (size_t i = 0; i + n <= toks.size(); ++i) {
      joined.assign(toks[i]);
      for (size_t j = 1; j < n; ++j) {
        joined.push_back(' ');
        joined.append(toks[i + j]);
      }
      sink(cache.get(joined));
    }
  }
}

void check_params(uint32_t num_buckets, size_t ngrams) {
  require(num_buckets >= 1, ErrorCode::Range, "num_buckets must be >= 1");
  require(ngrams >= 1 && ngrams <= 8, ErrorCode::Range, "ngrams must be in [1, 8], got " + std::to_string(ngrams));
}
}  // namespace

void dsir_features(std::string_view text, uint32_t num_buckets, size_t ngrams, std::vector<uint32_t>& out) {
  check_params(num_buckets, ngrams);
  out.clear();
  for_each_feature(text, num_buckets, ngrams, [&](uint32_t b) { out.push_back(b); });
}

void dsir_count_batch(const TextBatch& batch, uint32_t num_buckets, size_t ngrams, double* counts) {
  check_params(num_buckets, ngrams);
  const auto n = static_cast<std::ptrdiff_t>(batch.count);
#pragma omp parallel
  {
    std::vector<double> local(num_buckets, 0.0);
#pragma omp for schedule(dynamic, 16)
    for (std::ptrdiff_t i = 0; i < n; ++i)
      for_each_feature(batch.doc(static_cast<size_t>(i)), num_buckets, ngrams, [&](uint32_t b) { local[b] += 1.0; });
#pragma omp critical
    for (uint32_t k = 0; k < num_buckets; ++k) counts[k] += local[k];
  }
}

void dsir_log_weights(const TextBatch& batch, uint32_t num_buckets, size_t ngrams, const double* log_diff, double* out) {
  check_params(num_buckets, ngrams);
  const auto n = static_cast<std::ptrdiff_t>(batch.count);
#pragma omp parallel for schedule(dynamic, 16)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    double s = 0;
    for_each_feature(batch.doc(static_cast<size_t>(i)), num_buckets, ngrams, [&](uint32_t b) { s += log_diff[b]; });
    out[i] = s;
  }
}

}  // namespace tersor::select
