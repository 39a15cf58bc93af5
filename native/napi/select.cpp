// Bindings for data selection (tersor/select.hpp): hashing, MinHash signatures and LSH, DSIR
// features, ZIP-FIT compression distances, decontamination, greedy set cover. Texts cross as one
// Uint8Array of UTF-8 bytes plus a Uint32Array of count + 1 offsets. Batch work returns Promises.
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/select.hpp"

namespace tersor::napi {
namespace {

namespace sel = tersor::select;

struct Texts {
  ArgArray<uint8_t> bytes;
  ArgArray<uint32_t> offsets;
  sel::TextBatch view() const {
    return {reinterpret_cast<const char*>(bytes.data), offsets.data, offsets.size ? offsets.size - 1 : 0};
  }
};

Texts arg_texts(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Texts t{arg_array<uint8_t>(info, index, what, true), arg_array<uint32_t>(info, index + 1, what, true)};
  if (t.offsets.size == 0) fail(ErrorCode::Shape, std::string(what) + ": offsets must have count + 1 entries");
  sel::check_batch(t.view(), t.bytes.size, what);
  return t;
}

std::string arg_string(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (index >= info.Length() || !info[index].IsString()) fail(ErrorCode::Range, std::string(what) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

sel::PermutationLayout arg_layout(const Napi::CallbackInfo& info, size_t index) {
  const std::string s = arg_string(info, index, "layout");
  if (s == "datatrove") return sel::PermutationLayout::Datatrove;
  if (s == "datasketch") return sel::PermutationLayout::Datasketch;
  fail(ErrorCode::Range, "layout must be \"datatrove\" or \"datasketch\", got \"" + s + "\"");
}

int arg_level(const Napi::CallbackInfo& info, size_t index) {
  const size_t l = arg_size(info, index, "level");
  if (l > 9) fail(ErrorCode::Range, "compression level must be in [0, 9], got " + std::to_string(l));
  return static_cast<int>(l);
}

uint32_t arg_buckets(const Napi::CallbackInfo& info, size_t index) {
  const size_t b = arg_size(info, index, "numBuckets");
  if (b < 1 || b > (1u << 26)) fail(ErrorCode::Range, "numBuckets must be in [1, 2^26], got " + std::to_string(b));
  return static_cast<uint32_t>(b);
}

// normalisedHashes(bytes, offsets) -> Uint32Array(2n): low, high words of each xxHash64.
TERSOR_NAPI(NormalisedHashes) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Texts t = arg_texts(info, 0, "texts");
    const sel::TextBatch b = t.view();
    std::vector<uint32_t> out(2 * b.count);
    for (size_t i = 0; i < b.count; ++i) {
      const uint64_t h = sel::normalised_text_hash(b.doc(i));
      out[2 * i] = static_cast<uint32_t>(h);
      out[2 * i + 1] = static_cast<uint32_t>(h >> 32);
    }
    return to_typed_array(info.Env(), std::move(out));
  });
}

// xxhash64(bytes, seedLow) -> [low, high]
TERSOR_NAPI(Xxhash64) {
  return guard(info.Env(), [&]() -> Napi::Value {
    ArgArray<uint8_t> b = arg_array<uint8_t>(info, 0, "bytes");
    const uint64_t h = sel::xxhash64(b.data, b.size, arg_size(info, 1, "seed"));
    std::vector<uint32_t> out = {static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32)};
    return to_typed_array(info.Env(), std::move(out));
  });
}

// minhashSignatures(bytes, offsets, ngram, numPerm, seed, layout) -> Promise<Uint32Array(n*numPerm)>
TERSOR_NAPI(MinhashSignatures) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto t = std::make_shared<Texts>(arg_texts(info, 0, "texts"));
    const size_t ngram = arg_size(info, 2, "ngram"), num_perm = arg_size(info, 3, "numPerm");
    const size_t seed = arg_size(info, 4, "seed");
    if (ngram < 1 || ngram > 64) fail(ErrorCode::Range, "ngram must be in [1, 64]");
    if (seed > 0xFFFFFFFFull) fail(ErrorCode::Range, "seed must be below 2^32 (numpy RandomState)");
    auto params = std::make_shared<sel::MinHashParams>(sel::minhash_permutations(num_perm, static_cast<uint32_t>(seed), arg_layout(info, 5)));
    auto out = std::make_shared<std::vector<uint32_t>>(t->view().count * num_perm);
    return run_async(
        env, [t, params, out, ngram] { sel::minhash_batch(t->view(), ngram, *params, out->data()); },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(t->bytes.keep), std::move(t->offsets.keep));
  });
}

// lshCandidatePairs(sigs, n, numPerm, bands, rows) -> Promise<Uint32Array(2 * pairs)> as (i, j), j < i
TERSOR_NAPI(LshCandidatePairs) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto sigs = std::make_shared<ArgArray<uint32_t>>(arg_array<uint32_t>(info, 0, "signatures", true));
    const size_t n = arg_size(info, 1, "n"), k = arg_size(info, 2, "numPerm"), bands = arg_size(info, 3, "bands"),
                 rows = arg_size(info, 4, "rows");
    if (n * k != sigs->size) fail(ErrorCode::Shape, "signatures has " + std::to_string(sigs->size) + " values, expected n x numPerm");
    if (bands < 1 || rows < 1 || bands * rows > k)
      fail(ErrorCode::Range, "bands x rows must be >= 1 and <= numPerm (" + std::to_string(k) + ")");
    auto out = std::make_shared<std::vector<uint32_t>>();
    return run_async(
        env,
        [sigs, out, n, k, bands, rows] {
          const auto pairs = sel::lsh_candidate_pairs_from_signatures(sigs->data, n, k, bands, rows);
          out->reserve(pairs.size() * 2);
          for (auto [i, j] : pairs) out->push_back(i), out->push_back(j);
        },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(sigs->keep));
  });
}

TERSOR_NAPI(LshOptimalParams) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const sel::LshParams p = sel::lsh_optimal_params(arg_number(info, 0, "threshold"), arg_size(info, 1, "numPerm"),
                                                     arg_number(info, 2, "fpWeight"), arg_number(info, 3, "fnWeight"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("bands", static_cast<double>(p.bands));
    o.Set("rows", static_cast<double>(p.rows));
    return o;
  });
}

TERSOR_NAPI(DsirBucket) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), sel::dsir_bucket(arg_string(info, 0, "ngram"), arg_buckets(info, 1)));
  });
}

TERSOR_NAPI(DsirFeatures) {
  return guard(info.Env(), [&]() -> Napi::Value {
    std::vector<uint32_t> f;
    sel::dsir_features(arg_string(info, 0, "text"), arg_buckets(info, 1), arg_size(info, 2, "ngrams"), f);
    return to_typed_array(info.Env(), std::move(f));
  });
}

// dsirCounts(bytes, offsets, numBuckets, ngrams) -> Promise<Float64Array(numBuckets)>
TERSOR_NAPI(DsirCounts) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto t = std::make_shared<Texts>(arg_texts(info, 0, "texts"));
    const uint32_t nb = arg_buckets(info, 2);
    const size_t ng = arg_size(info, 3, "ngrams");
    if (ng < 1 || ng > 8) fail(ErrorCode::Range, "ngrams must be in [1, 8]");
    auto out = std::make_shared<std::vector<double>>(nb, 0.0);
    return run_async(
        env, [t, out, nb, ng] { sel::dsir_count_batch(t->view(), nb, ng, out->data()); },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(t->bytes.keep), std::move(t->offsets.keep));
  });
}

// dsirLogWeights(bytes, offsets, numBuckets, ngrams, logDiff) -> Promise<Float64Array(n)>
TERSOR_NAPI(DsirLogWeights) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto t = std::make_shared<Texts>(arg_texts(info, 0, "texts"));
    const uint32_t nb = arg_buckets(info, 2);
    const size_t ng = arg_size(info, 3, "ngrams");
    if (ng < 1 || ng > 8) fail(ErrorCode::Range, "ngrams must be in [1, 8]");
    auto ld = std::make_shared<ArgArray<double>>(arg_array<double>(info, 4, "logDiff", true));
    if (ld->size != nb) fail(ErrorCode::Shape, "logDiff has " + std::to_string(ld->size) + " values, expected numBuckets = " + std::to_string(nb));
    auto out = std::make_shared<std::vector<double>>(t->view().count);
    return run_async(
        env, [t, ld, out, nb, ng] { sel::dsir_log_weights(t->view(), nb, ng, ld->data, out->data()); },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(t->bytes.keep),
        std::move(t->offsets.keep), std::move(ld->keep));
  });
}

// ncdMeanToTargets(bytes, offsets, targetBytes, targetOffsets, level) -> Promise<Float64Array(n)>
TERSOR_NAPI(NcdMeanToTargets) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto d = std::make_shared<Texts>(arg_texts(info, 0, "texts"));
    auto t = std::make_shared<Texts>(arg_texts(info, 2, "targets"));
    if (t->view().count == 0) fail(ErrorCode::Range, "ZIP-FIT needs at least one target example (the target is empty)");
    const int level = arg_level(info, 4);
    auto out = std::make_shared<std::vector<double>>(d->view().count);
    return run_async(
        env, [d, t, out, level] { sel::ncd_mean_to_targets(d->view(), t->view(), level, out->data()); },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(d->bytes.keep),
        std::move(d->offsets.keep), std::move(t->bytes.keep), std::move(t->offsets.keep));
  });
}

TERSOR_NAPI(GzipSize) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(sel::gzip_size(arg_string(info, 0, "text"), arg_level(info, 1))));
  });
}

TERSOR_NAPI(Ncd) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), sel::ncd(arg_string(info, 0, "x"), arg_string(info, 1, "y"), arg_level(info, 2)));
  });
}

// ngramOverlap(bytes, offsets, targetBytes, targetOffsets, n) -> Promise<Uint32Array(n)>
TERSOR_NAPI(NgramOverlap) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    auto d = std::make_shared<Texts>(arg_texts(info, 0, "texts"));
    auto t = std::make_shared<Texts>(arg_texts(info, 2, "targets"));
    const size_t n = arg_size(info, 4, "n");
    if (n < 1 || n > 64) fail(ErrorCode::Range, "n must be in [1, 64]");
    auto out = std::make_shared<std::vector<uint32_t>>(d->view().count);
    return run_async(
        env, [d, t, out, n] { sel::ngram_overlap_counts(d->view(), t->view(), n, out->data()); },
        [out](Napi::Env e) { return to_typed_array(e, std::move(*out)); }, std::move(d->bytes.keep),
        std::move(d->offsets.keep), std::move(t->bytes.keep), std::move(t->offsets.keep));
  });
}

// lshSpillRun(path, sigs, exactHashes, n, firstId, numPerm, bands, rows) -> Promise<undefined>
// sigs: n x numPerm Uint32Array, or an empty one for exact-only runs; exactHashes: (low, high) x n.
TERSOR_NAPI(LshSpillRun) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    const std::string path = arg_string(info, 0, "path");
    auto sigs = std::make_shared<ArgArray<uint32_t>>(arg_array<uint32_t>(info, 1, "signatures", true));
    auto exact = std::make_shared<ArgArray<uint32_t>>(arg_array<uint32_t>(info, 2, "exactHashes", true));
    const size_t n = arg_size(info, 3, "n"), first = arg_size(info, 4, "firstId"), k = arg_size(info, 5, "numPerm"),
                 bands = arg_size(info, 6, "bands"), rows = arg_size(info, 7, "rows");
    if (exact->size != 2 * n) fail(ErrorCode::Shape, "exactHashes must hold 2 x n words");
    const bool with_sigs = sigs->size != 0;
    if (with_sigs && sigs->size != n * k) fail(ErrorCode::Shape, "signatures has " + std::to_string(sigs->size) + " values, expected n x numPerm");
    if (with_sigs && (bands < 1 || rows < 1 || bands * rows > k))
      fail(ErrorCode::Range, "bands x rows must be >= 1 and <= numPerm (" + std::to_string(k) + ")");
    if (first + n >= 0xFFFFFFFFull) fail(ErrorCode::Range, "document ids must stay below 2^32 - 1");
    return run_async(
        env,
        [path, sigs, exact, n, first, k, bands, rows, with_sigs] {
          std::vector<uint64_t> ex(n);
          for (size_t i = 0; i < n; ++i) ex[i] = (static_cast<uint64_t>(exact->data[2 * i + 1]) << 32) | exact->data[2 * i];
          sel::lsh_spill_run(path, with_sigs ? sigs->data : nullptr, ex.data(), n, static_cast<uint32_t>(first), k, bands, rows);
        },
        [](Napi::Env e) { return e.Undefined(); }, std::move(sigs->keep), std::move(exact->keep));
  });
}

// lshMergeRuns(paths, sigPath, numPerm, threshold) -> Promise<{ exact, lsh, above }>; sigPath "" skips the precision count.
TERSOR_NAPI(LshMergeRuns) {
  Napi::Env env = info.Env();
  return guard_async(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsArray()) fail(ErrorCode::Range, "paths must be an array of strings");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) fail(ErrorCode::Range, "paths must be an array of strings");
      paths.push_back(v.As<Napi::String>().Utf8Value());
    }
    const std::string sig_path = arg_string(info, 1, "sigPath");
    const size_t k = arg_size(info, 2, "numPerm");
    const double thr = arg_number(info, 3, "threshold");
    auto res = std::make_shared<sel::SpilledPairs>();
    auto above = std::make_shared<size_t>(0);
    return run_async(
        env,
        [paths, sig_path, k, thr, res, above] {
          *res = sel::lsh_merge_runs(paths);
          if (!sig_path.empty()) *above = sel::spilled_pairs_above(sig_path, k, res->lsh, thr);
        },
        [res, above](Napi::Env e) -> Napi::Value {
          auto flat = [](const std::vector<std::pair<uint32_t, uint32_t>>& p) {
            std::vector<uint32_t> v;
            v.reserve(2 * p.size());
            for (auto [i, j] : p) v.push_back(i), v.push_back(j);
            return v;
          };
          Napi::Object o = Napi::Object::New(e);
          o.Set("exact", to_typed_array(e, flat(res->exact)));
          o.Set("lsh", to_typed_array(e, flat(res->lsh)));
          o.Set("above", static_cast<double>(*above));
          return o;
        });
  });
}

// greedySetCover(elems, offsets, maxSets) -> Uint32Array of picked set indices
TERSOR_NAPI(GreedySetCover) {
  return guard(info.Env(), [&]() -> Napi::Value {
    ArgArray<uint32_t> e = arg_array<uint32_t>(info, 0, "elements");
    ArgArray<uint32_t> o = arg_array<uint32_t>(info, 1, "offsets");
    if (o.size == 0 || o.data[0] != 0 || o.data[o.size - 1] != e.size) fail(ErrorCode::Shape, "offsets must start at 0 and end at elements.length");
    for (size_t i = 0; i + 1 < o.size; ++i)
      if (o.data[i + 1] < o.data[i]) fail(ErrorCode::Shape, "offsets must be non-decreasing");
    auto picked = sel::greedy_set_cover(e.data, o.data, o.size - 1, arg_size(info, 2, "maxSets"));
    return to_typed_array(info.Env(), std::move(picked));
  });
}

}  // namespace

void init_select(Napi::Env env, Napi::Object exports) {
  exports.Set("selectNormalisedHashes", Napi::Function::New(env, NormalisedHashes, "selectNormalisedHashes"));
  exports.Set("selectXxhash64", Napi::Function::New(env, Xxhash64, "selectXxhash64"));
  exports.Set("selectMinhashSignatures", Napi::Function::New(env, MinhashSignatures, "selectMinhashSignatures"));
  exports.Set("selectLshCandidatePairs", Napi::Function::New(env, LshCandidatePairs, "selectLshCandidatePairs"));
  exports.Set("selectLshOptimalParams", Napi::Function::New(env, LshOptimalParams, "selectLshOptimalParams"));
  exports.Set("selectDsirBucket", Napi::Function::New(env, DsirBucket, "selectDsirBucket"));
  exports.Set("selectDsirFeatures", Napi::Function::New(env, DsirFeatures, "selectDsirFeatures"));
  exports.Set("selectDsirCounts", Napi::Function::New(env, DsirCounts, "selectDsirCounts"));
  exports.Set("selectDsirLogWeights", Napi::Function::New(env, DsirLogWeights, "selectDsirLogWeights"));
  exports.Set("selectNcdMeanToTargets", Napi::Function::New(env, NcdMeanToTargets, "selectNcdMeanToTargets"));
  exports.Set("selectGzipSize", Napi::Function::New(env, GzipSize, "selectGzipSize"));
  exports.Set("selectNcd", Napi::Function::New(env, Ncd, "selectNcd"));
  exports.Set("selectNgramOverlap", Napi::Function::New(env, NgramOverlap, "selectNgramOverlap"));
  exports.Set("selectLshSpillRun", Napi::Function::New(env, LshSpillRun, "selectLshSpillRun"));
  exports.Set("selectLshMergeRuns", Napi::Function::New(env, LshMergeRuns, "selectLshMergeRuns"));
  exports.Set("selectGreedySetCover", Napi::Function::New(env, GreedySetCover, "selectGreedySetCover"));
}

}  // namespace tersor::napi
