// Data-selection kernels: hash test vectors, numpy-compatible MinHash permutations, Jaccard
// estimates, LSH (b, r) optimiser, DSIR fixtures of the reference implementation, NCD, set cover.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <zlib.h>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/rng.hpp"
#include "tersor/select.hpp"

using namespace tersor::select;

namespace {
std::string hex(const uint8_t* d, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(k[d[i] >> 4]);
    s.push_back(k[d[i] & 15]);
  }
  return s;
}
uint64_t u64(tersor::Rng& r) {
  const uint64_t hi = r.next_u32();
  return (hi << 32) | r.next_u32();
}
struct OwnedBatch {
  std::string data;
  std::vector<uint32_t> offsets{0};
  void add(const std::string& s) {
    data += s;
    offsets.push_back(static_cast<uint32_t>(data.size()));
  }
  TextBatch view() const { return {data.data(), offsets.data(), offsets.size() - 1}; }
};
}  // namespace

TEST_CASE("select xxhash64 matches the published test vectors") {
  CHECK(xxhash64("", 0, 0) == 0xEF46DB3751D8E999ULL);
  CHECK(xxhash64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
  const std::string s = "Nobody inspects the spammish repetition";
  CHECK(xxhash64(s.data(), s.size(), 0) == 0xFBCEA83C8A378BF1ULL);
}

TEST_CASE("select sha256 matches FIPS 180-4 vectors on both block functions") {
  uint8_t d[32];
  sha256("abc", 3, d);
  CHECK(hex(d, 32) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  sha256_portable("abc", 3, d);
  CHECK(hex(d, 32) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string a200(200, 'a');
  sha256(a200.data(), a200.size(), d);
  CHECK(hex(d, 32) == "c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5");
  // Every length 0..130 (one, two and three blocks, every padding case): both paths agree.
  tersor::Rng rng(3);
  std::string buf;
  for (size_t n = 0; n <= 130; ++n) {
    uint8_t x[32], y[32];
    sha256(buf.data(), buf.size(), x);
    sha256_portable(buf.data(), buf.size(), y);
    CHECK(std::memcmp(x, y, 32) == 0);
    buf.push_back(static_cast<char>(rng.next_u32() & 0xFF));
  }
}

TEST_CASE("select wordpunct tokens follow Python re for word and punctuation runs") {
  std::string low;
  std::vector<std::string_view> toks;
  wordpunct_tokens("H\xC3\xA9llo, WORLD!! \xC2\xAB\xC3\x87" "a va?\xC2\xBB \xE2\x80\x94 na\xC3\xAFve_caf\xC3\xA9 3.14", low, toks);
  const std::vector<std::string> want = {"h\xC3\xA9llo", ",", "world", "!!", "\xC2\xAB", "\xC3\xA7" "a", "va", "?\xC2\xBB",
                                         "\xE2\x80\x94", "na\xC3\xAFve_caf\xC3\xA9", "3", ".", "14"};
  REQUIRE(toks.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(std::string(toks[i]) == want[i]);
}

TEST_CASE("select DSIR buckets and features match the reference fixtures") {
  CHECK(dsir_bucket("alice", 10000) == 6720);
  CHECK(dsir_bucket("alice went", 10000) == 114);
  std::vector<uint32_t> f;
  dsir_features("Alice went to the store", 10000, 2, f);
  // hash_buckets of the 5 unigrams then the 4 bigrams (Python hashlib reference).
  CHECK(f == std::vector<uint32_t>{6720, 5816, 2441, 8288, 9879, 114, 4126, 1087, 3440});
  OwnedBatch b;
  b.add("Alice went to the store");
  b.add("alice alice");
  std::vector<double> counts(10000, 0.0);
  dsir_count_batch(b.view(), 10000, 2, counts.data());
  CHECK(counts[6720] == 3.0);
  double total = 0;
  for (double c : counts) total += c;
  CHECK(total == 9.0 + 3.0);
  std::vector<double> ld(10000, 0.0), w(2);
  ld[6720] = 1.5;
  ld[114] = -0.25;
  dsir_log_weights(b.view(), 10000, 2, ld.data(), w.data());
  CHECK(w[0] == doctest::Approx(1.25));
  CHECK(w[1] == doctest::Approx(3.0));
}

TEST_CASE("select MinHash permutations reproduce numpy RandomState") {
  // numpy: RandomState(1).randint(1, 2**61-1, dtype=uint64, size=(1,112)), then randint(0, ...).
  const MinHashParams dt = minhash_permutations(112, 1, PermutationLayout::Datatrove);
  CHECK(dt.a[0] == 775169054918279404ULL);
  CHECK(dt.a[1] == 1758426461858698313ULL);
  CHECK(dt.a[2] == 2109959069025162ULL);
  CHECK(dt.a[111] == 223865076026037746ULL);
  CHECK(dt.b[0] == 1062448801025099917ULL);
  CHECK(dt.b[111] == 1097409548522419201ULL);
  // datasketch draws (a, b) pairs from the same stream.
  const MinHashParams ds = minhash_permutations(128, 1, PermutationLayout::Datasketch);
  CHECK(ds.a[0] == 775169054918279404ULL);
  CHECK(ds.b[0] == 1758426461858698312ULL);
  CHECK(ds.a[1] == 2109959069025162ULL);
  CHECK(ds.b[1] == 965365488286768773ULL);
  CHECK(ds.a[127] == 1931671111240692334ULL);
  CHECK(ds.b[127] == 1454448473341514576ULL);
}

TEST_CASE("select MinHash signature equals the numpy wrap-around definition") {
  const MinHashParams p = minhash_permutations(112, 1, PermutationLayout::Datatrove);
  const uint64_t sh[2] = {12345678901234567890ULL, 42};
  std::vector<uint32_t> sig(112);
  minhash_signature(sh, 2, p, sig.data());
  // np.bitwise_and((h * a + b) % p, 2**32-1).min(axis=0)[:4] with numpy's uint64 arithmetic.
  CHECK(sig[0] == 316616523u);
  CHECK(sig[1] == 499620953u);
  CHECK(sig[2] == 2118834621u);
  CHECK(sig[3] == 2009826485u);
  // And the definition with 128-bit arithmetic for all entries (the uint64 wrap made explicit).
  for (size_t k = 0; k < 112; ++k) {
    uint32_t m = 0xFFFFFFFFu;
    for (uint64_t h : sh) {
      const uint64_t wrapped = static_cast<uint64_t>(static_cast<unsigned __int128>(p.a[k]) * h + p.b[k]);
      m = std::min(m, static_cast<uint32_t>(wrapped % kMersennePrime));
    }
    CHECK(sig[k] == m);
  }
  std::vector<uint32_t> empty(112);
  minhash_signature(nullptr, 0, p, empty.data());
  CHECK(std::all_of(empty.begin(), empty.end(), [](uint32_t v) { return v == 0xFFFFFFFFu; }));
}

TEST_CASE("select MinHash Jaccard estimates are unbiased within 0.05 on 1000 random pairs") {
  const MinHashParams p = minhash_permutations(128, 7, PermutationLayout::Datasketch);
  tersor::Rng rng(11);
  double abs_err = 0, bias = 0;
  size_t within_3sigma = 0;
  const int pairs = 1000;
  std::vector<uint32_t> sa(128), sb(128);
  for (int t = 0; t < pairs; ++t) {
    const size_t shared = rng.next_u32() % 200, only_a = rng.next_u32() % 100, only_b = rng.next_u32() % 100;
    std::vector<uint64_t> a, b;
    for (size_t i = 0; i < shared; ++i) {
      const uint64_t h = u64(rng);
      a.push_back(h);
      b.push_back(h);
    }
    for (size_t i = 0; i < only_a; ++i) a.push_back(u64(rng));
    for (size_t i = 0; i < only_b; ++i) b.push_back(u64(rng));
    if (a.empty() || b.empty()) a.push_back(1), b.push_back(1);
    std::set<uint64_t> ua(a.begin(), a.end()), ub(b.begin(), b.end()), un = ua;
    un.insert(ub.begin(), ub.end());
    const double inter = static_cast<double>(ua.size() + ub.size() - un.size());
    const double j = inter / static_cast<double>(un.size());
    minhash_signature(a.data(), a.size(), p, sa.data());
    minhash_signature(b.data(), b.size(), p, sb.data());
    const double est = minhash_jaccard(sa.data(), sb.data(), 128);
    abs_err += std::fabs(est - j);
    bias += est - j;
    within_3sigma += std::fabs(est - j) <= 3 * std::sqrt(j * (1 - j) / 128) + 1e-9;
  }
  CHECK(abs_err / pairs < 0.05);
  CHECK(std::fabs(bias / pairs) < 0.01);
  CHECK(within_3sigma >= 990);
}

TEST_CASE("select shingles of simplified words") {
  std::vector<uint64_t> a, b, c;
  word_shingles("The quick, brown fox; jumps!", 2, a);
  word_shingles("the QUICK brown   fox jumps", 2, b);
  CHECK(a.size() == 4);
  CHECK(a == b);
  const std::string q = "quick brown";
  CHECK(a[1] == xxhash64(q.data(), q.size(), 0));
  // As datatrove (nltk's ngrams): fewer words than n, no shingles.
  word_shingles("two words", 5, c);
  CHECK(c.empty());
  word_shingles(" ,; ", 5, c);
  CHECK(c.empty());
  word_shingles("two words", 2, c);
  REQUIRE(c.size() == 1);
  const std::string t = "two words";
  CHECK(c[0] == xxhash64(t.data(), t.size(), 0));
  CHECK(normalised_text_hash("Hello,   World") == normalised_text_hash("hello world"));
}

TEST_CASE("select LSH optimal parameters equal datasketch optimal_param") {
  LshParams p = lsh_optimal_params(0.7, 256);
  CHECK(p.bands == 25);
  CHECK(p.rows == 10);
  p = lsh_optimal_params(0.5, 200);
  CHECK(p.bands == 33);
  CHECK(p.rows == 6);
  p = lsh_optimal_params(0.8, 128);
  CHECK(p.bands == 9);
  CHECK(p.rows == 13);
  // Areas against closed forms: b = 1, r = 1 gives ∫_0^t s ds and ∫_t^1 (1 − s) ds.
  CHECK(lsh_false_positive_area(0.6, 1, 1) == doctest::Approx(0.18).epsilon(1e-12));
  CHECK(lsh_false_negative_area(0.6, 1, 1) == doctest::Approx(0.08).epsilon(1e-12));
  CHECK_THROWS_AS(lsh_optimal_params(1.5, 128), tersor::Error);
}

TEST_CASE("select LSH bands find planted near duplicates and union-find keeps the lowest id") {
  const MinHashParams p = minhash_permutations(112, 1, PermutationLayout::Datatrove);
  OwnedBatch b;
  std::string base;
  const char* words[] = {"whale", "sea", "ship", "captain", "harpoon", "ocean", "deck", "sail", "storm", "crew"};
  tersor::Rng rng(5);
  for (int i = 0; i < 300; ++i) base += std::string(words[rng.next_u32() % 10]) + std::to_string(rng.next_u32() % 50) + " ";
  b.add(base);                                   // 0
  b.add("completely different text about mathematics and proofs of theorems in algebra today");  // 1
  b.add(base.substr(0, base.size() - 20) + " tail");  // 2: near copy of 0
  b.add("another unrelated document on the topic of cooking pasta with tomatoes and basil leaves");  // 3
  std::string edited = base;
  edited.replace(100, 5, "XXXXX");
  b.add(edited);  // 4: small edit of 0
  std::vector<uint32_t> sigs(5 * 112);
  minhash_batch(b.view(), 5, p, sigs.data());
  std::vector<uint64_t> keys(5 * 14);
  lsh_band_keys(sigs.data(), 5, 112, 14, 8, keys.data());
  const auto pairs = lsh_candidate_pairs(keys.data(), 5, 14);
  CHECK(lsh_candidate_pairs_from_signatures(sigs.data(), 5, 112, 14, 8) == pairs);
  UnionFind uf(5);
  for (auto [i, j] : pairs) uf.unite(i, j);
  CHECK(uf.find(2) == 0);
  CHECK(uf.find(4) == 0);
  CHECK(uf.find(1) == 1);
  CHECK(uf.find(3) == 3);
}

TEST_CASE("select gzip sizes match Python gzip and NCD is a distance") {
  std::string s;
  for (int i = 0; i < 5; ++i) s += "Call me Ishmael. Some years ago never mind how long precisely having little or no money in my purse ";
  // len(gzip.compress(s, level)) in CPython.
  CHECK(gzip_size(s, 1) == 111);
  CHECK(gzip_size(s, 6) == 110);
  CHECK(gzip_size(s, 9) == 110);
  CHECK(gzip_size(s.substr(0, 100), 9) == 99);
  const std::string x = s, y = "Entirely unrelated: 0xDEADBEEF, quantum chromodynamics & the price of tea in 1887.";
  CHECK(ncd(x, x, 9) < 0.1);
  CHECK(ncd(x, y, 9) > 0.5);
  OwnedBatch docs, targets;
  docs.add(x);
  docs.add(y);
  targets.add(x.substr(0, 150));
  targets.add(x.substr(50, 150));
  std::vector<double> m(2);
  ncd_mean_to_targets(docs.view(), targets.view(), 6, m.data());
  CHECK(m[0] == doctest::Approx((ncd(x, targets.view().doc(0), 6) + ncd(x, targets.view().doc(1), 6)) / 2));
  CHECK(m[0] < m[1]);
  CHECK_THROWS_AS(gzip_size(x, 12), tersor::Error);
}

TEST_CASE("select greedy set cover picks the largest set first") {
  // Universe {1..6}: A = {1,2,3}, B = {4,5,6}, C = {1,2,4,5}.
  const std::vector<uint32_t> elems = {1, 2, 3, 4, 5, 6, 1, 2, 4, 5};
  const std::vector<uint32_t> offs = {0, 3, 6, 10};
  const auto picked = greedy_set_cover(elems.data(), offs.data(), 3, 10);
  REQUIRE(picked.size() == 3);
  CHECK(picked[0] == 2);
  CHECK(std::set<uint32_t>(picked.begin(), picked.end()).size() == 3);
  // Budgeted: max coverage with one set.
  CHECK(greedy_set_cover(elems.data(), offs.data(), 3, 1) == std::vector<uint32_t>{2});
}

TEST_CASE("select decontamination counts shared word n-grams") {
  OwnedBatch docs, targets;
  targets.add("What is the capital of France? Paris is the capital.");
  docs.add("Trivia: what is the capital of France, asked the teacher.");  // shares "what is the capital of france" (6 words)
  docs.add("The capital of Spain is Madrid.");
  docs.add("short");
  std::vector<uint32_t> c(3);
  ngram_overlap_counts(docs.view(), targets.view(), 6, c.data());
  CHECK(c[0] == 1);
  CHECK(c[1] == 0);
  CHECK(c[2] == 0);
  ngram_overlap_counts(docs.view(), targets.view(), 3, c.data());
  CHECK(c[0] == 4);  // what is the / is the capital / the capital of / capital of france
  CHECK(c[1] == 1);  // the capital of
}

TEST_CASE("select spilled LSH runs give the in-memory candidate pairs") {
  // 300 documents: random signatures, with planted near copies (some bands equal) and exact copies.
  tersor::Rng rng(11);
  const size_t n = 300, k = 64, bands = 8, rows = 8;
  std::vector<uint32_t> sigs(n * k);
  std::vector<uint64_t> exact(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < k; ++j) sigs[i * k + j] = rng.next_u32();
    exact[i] = u64(rng);
    if (i >= 10 && i % 7 == 0) {
      const size_t src = rng.next_u32() % i;
      const size_t keep_bands = 1 + rng.next_u32() % bands;  // copy the first keep_bands bands
      std::copy(sigs.begin() + static_cast<std::ptrdiff_t>(src * k), sigs.begin() + static_cast<std::ptrdiff_t>(src * k + keep_bands * rows),
                sigs.begin() + static_cast<std::ptrdiff_t>(i * k));
      if (i % 3 == 0) exact[i] = exact[src];
    }
  }
  const auto want = lsh_candidate_pairs_from_signatures(sigs.data(), n, k, bands, rows);
  std::vector<std::pair<uint32_t, uint32_t>> want_exact;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < i; ++j)
      if (exact[j] == exact[i]) {
        want_exact.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(j));
        break;
      }
  REQUIRE(want.size() > 20);
  REQUIRE(want_exact.size() > 5);
  const std::string dir = "/tmp/tersor_test_lsh_spill_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  for (size_t per_run : {size_t{1}, size_t{17}, size_t{300}}) {
    std::vector<std::string> paths;
    for (size_t s = 0; s < n; s += per_run) {
      const size_t m = std::min(per_run, n - s);
      paths.push_back(dir + "/run" + std::to_string(paths.size()));
      lsh_spill_run(paths.back(), sigs.data() + s * k, exact.data() + s, m, static_cast<uint32_t>(s), k, bands, rows);
    }
    const SpilledPairs got = lsh_merge_runs(paths);
    CHECK(got.sections == 1 + bands);
    CHECK(got.lsh == want);
    CHECK(got.exact == want_exact);
    // A fan-in of 3 merges in levels through intermediate runs, removed afterwards.
    const SpilledPairs lv = lsh_merge_runs(paths, 3);
    CHECK(lv.lsh == want);
    CHECK(lv.exact == want_exact);
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.path().string().find(".merged") == std::string::npos ? 0 : 1;
    CHECK(files == 0);
    // Precision counts from the signature file equal those from memory.
    const std::string sp = dir + "/sigs";
    {
      FILE* f = std::fopen(sp.c_str(), "wb");
      REQUIRE(f);
      std::fwrite(sigs.data(), 4, sigs.size(), f);
      std::fclose(f);
    }
    size_t good = 0;
    for (auto [i, j] : want) good += minhash_jaccard(sigs.data() + i * k, sigs.data() + j * k, k) >= 0.5 ? 1 : 0;
    CHECK(spilled_pairs_above(sp, k, got.lsh, 0.5) == good);
  }
  // Exact-only runs have one section; a file that is not a run is E_FORMAT.
  lsh_spill_run(dir + "/x0", nullptr, exact.data(), n, 0, k, bands, rows);
  CHECK(lsh_merge_runs({dir + "/x0"}).exact == want_exact);
  CHECK(lsh_merge_runs({dir + "/x0"}).lsh.empty());
  CHECK_THROWS_AS(lsh_merge_runs({dir + "/sigs"}), tersor::Error);
  // The same run twice repeats ids: E_FORMAT.
  CHECK_THROWS_AS(lsh_merge_runs({dir + "/x0", dir + "/x0"}), tersor::Error);
  std::filesystem::remove_all(dir);
}

namespace {
/// len(gzip.compress(s, level)) from a fresh zero-initialised zlib stream per call (the reference).
size_t fresh_gzip_size(const std::string& s, int level) {
  z_stream zs{};
  zs.zalloc = [](voidpf, uInt items, uInt size) -> voidpf { return std::calloc(items, size); };
  zs.zfree = [](voidpf, voidpf p) { std::free(p); };
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<Bytef> out(deflateBound(&zs, s.size()) + 64);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  zs.avail_in = static_cast<uInt>(s.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  const size_t n = zs.total_out + 18;
  deflateEnd(&zs);
  return n;
}
}  // namespace

TEST_CASE("select gzip sizes do not depend on what the reused stream compressed before") {
  // Repetitive texts of many lengths in a shuffled order: a reset stream that kept the previous
  // input in its window past the end of the current one chose different matches.
  tersor::Rng rng(5);
  const char* words[] = {"whale", "sea", "ship", "the", "captain", "harpoon", "of", "ocean", "deck", "sail"};
  std::vector<std::string> texts;
  for (int t = 0; t < 120; ++t) {
    std::string s;
    const size_t len = 20 + rng.next_u32() % 3000;
    while (s.size() < len) {
      s += words[rng.next_u32() % 10];
      s += ' ';
    }
    texts.push_back(s);
  }
  // Planted: R1 and R2 share a prefix Q; S = R1 + R2 + Q ends inside a match whose two candidates
  // (R1, R2) tie on the real bytes. After compressing P = R1 + R2 + R1, the reset window still holds
  // R1's continuation past the end of S, which made the farther candidate look longer.
  for (int trial = 0; trial < 40; ++trial) {
    std::string q, r1, r2;
    for (int i = 0; i < 300; ++i) q.push_back(static_cast<char>('a' + rng.next_u32() % 26));
    r1 = q;
    r2 = q;
    for (int i = 0; i < 300; ++i) r1.push_back(static_cast<char>('a' + rng.next_u32() % 26));
    for (int i = 0; i < 300; ++i) r2.push_back(static_cast<char>('a' + rng.next_u32() % 26));
    const std::string p = r1 + r2 + r1, s = r1 + r2 + q.substr(0, 200 + trial * 2);
    for (int level : {6, 9}) {
      gzip_size(p, level);
      CHECK(gzip_size(s, level) == fresh_gzip_size(s, level));
    }
  }
  for (int level : {1, 6, 9})
    for (size_t i = 0; i < texts.size(); ++i) {
      const size_t j = rng.next_u32() % texts.size();
      CHECK(gzip_size(texts[j], level) == fresh_gzip_size(texts[j], level));
      CHECK(gzip_size(texts[j] + texts[i], level) == fresh_gzip_size(texts[j] + texts[i], level));
    }
  // ZIP-FIT means of a document are the same alone and inside a batch.
  OwnedBatch all, targets;
  for (size_t i = 0; i < 40; ++i) all.add(texts[i]);
  for (size_t i = 100; i < 106; ++i) targets.add(texts[i]);
  std::vector<double> m(40), one(1);
  ncd_mean_to_targets(all.view(), targets.view(), 6, m.data());
  for (size_t i = 0; i < 40; i += 7) {
    OwnedBatch single;
    single.add(texts[i]);
    ncd_mean_to_targets(single.view(), targets.view(), 6, one.data());
    CHECK(one[0] == m[i]);  // the same bits: summed in target order whatever the batch
  }
}

namespace {
std::vector<std::string> dt_words(const std::string& text) {
  std::string joined;
  std::vector<uint32_t> s, e;
  datatrove_words(text, joined, s, e);
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size(); ++i) out.push_back(joined.substr(s[i], e[i] - s[i]));
  return out;
}
using Words = std::vector<std::string>;
}  // namespace

TEST_CASE("select shingle words follow datatrove simplify_text and NLTK word_tokenize") {
  // Hand-derived from datatrove's simplify_text (lower; strip and collapse whitespace; delete its
  // PUNCTUATION; NFD minus Mn; digit runs to 0) and NLTK's Treebank rules on the result.
  CHECK(dt_words("Don't STOP-believing in 1,000 caf\xc3\xa9s!") == Words{"dont", "stopbelieving", "in", "0", "cafes"});
  // U+2018 is not in datatrove's list: NLTK splits it off; U+2026 and U+2019 are deleted.
  CHECK(dt_words("I cannot go, gonna wait\xe2\x80\xa6 \xe2\x80\x98" "fine\xe2\x80\x99") ==
        Words{"i", "can", "not", "go", "gon", "na", "wait", "\xe2\x80\x98", "fine"});
  CHECK(dt_words("we wanna") == Words{"we", "wan", "na"});
  CHECK(dt_words("wannabe gotta-go") == Words{"wannabe", "gottago"});
  CHECK(dt_words("v2.0 and 3rd") == Words{"v0", "and", "0rd"});
  CHECK(dt_words("\xc3\x84rger \xc3\xbc" "ber \xc3\x96l") == Words{"arger", "uber", "ol"});
  CHECK(dt_words("\xc4\xb0stanbul") == Words{"istanbul"});  // U+0130 lowers to i + U+0307, a mark
  CHECK(dt_words("a\tb\xc2\xa0" "c\n") == Words{"a", "b", "c"});  // NBSP is whitespace
  CHECK(dt_words(" -- ; ") == Words{});
  // Hangul syllables decompose to jamo (U+D55C -> U+1112 U+1161 U+11AB).
  CHECK(dt_words("\xed\x95\x9c") == Words{"\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"});
  // Shingles are xxHash64 of n words joined by one space.
  std::vector<uint64_t> sh;
  word_shingles("Don't STOP-believing in 1,000 caf\xc3\xa9s!", 3, sh);
  REQUIRE(sh.size() == 3);
  const std::string g = "in 0 cafes";
  CHECK(sh[2] == xxhash64(g.data(), g.size(), 0));
}

TEST_CASE("select LSH leaves texts without shingles out of every bucket") {
  const size_t k = 16;
  std::vector<uint32_t> sigs(4 * k, 0xFFFFFFFFu);
  for (size_t j = 0; j < k; ++j) sigs[2 * k + j] = sigs[3 * k + j] = static_cast<uint32_t>(j);
  const auto pairs = lsh_candidate_pairs_from_signatures(sigs.data(), 4, k, 4, 4);
  REQUIRE(pairs.size() == 1);
  CHECK(pairs[0] == std::pair<uint32_t, uint32_t>{3, 2});
  const std::string dir = "/tmp/tersor_test_lsh_empty_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::vector<uint64_t> exact = {1, 2, 3, 4};
  lsh_spill_run(dir + "/r", sigs.data(), exact.data(), 4, 0, k, 4, 4);
  const SpilledPairs got = lsh_merge_runs({dir + "/r"});
  CHECK(got.lsh == pairs);
  CHECK(got.exact.empty());
  std::filesystem::remove_all(dir);
}
