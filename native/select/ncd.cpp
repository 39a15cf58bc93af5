// Normalised compression distance with deflate (zlib), gzip-sized, for ZIP-FIT (Obbad et al. 2024,
// "ZIP-FIT: Embedding-Free Data Selection via Compression-Based Alignment").
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <string>

#include "tersor/error.hpp"
#include "tersor/select.hpp"

namespace tersor::select {
namespace {

/// One deflate state per thread and level, reset between inputs (deflateInit allocates ~256 KiB).
class Deflater {
 public:
  explicit Deflater(int level) : level_(level) {
    zs_.zalloc = Z_NULL;
    zs_.zfree = Z_NULL;
    zs_.opaque = Z_NULL;
    // Raw deflate, 32 KiB window, memLevel 8: the stream Python's gzip.compress produces.
    if (deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      fail(ErrorCode::Native, "zlib deflateInit2 failed");
  }
  ~Deflater() { deflateEnd(&zs_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  int level() const { return level_; }

  /// Compressed size of the concatenation a + b.
  size_t size(std::string_view a, std::string_view b) {
    deflateReset(&zs_);
    const size_t bound = deflateBound(&zs_, a.size() + b.size()) + 64;
    if (buf_.size() < bound) buf_.resize(bound);
    zs_.next_out = buf_.data();
    zs_.avail_out = static_cast<uInt>(buf_.size());
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(a.data()));
    zs_.avail_in = static_cast<uInt>(a.size());
    if (!b.empty()) {
      if (deflate(&zs_, Z_NO_FLUSH) != Z_OK && a.size()) fail(ErrorCode::Native, "zlib deflate failed");
      zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data()));
      zs_.avail_in = static_cast<uInt>(b.size());
    }
    const int rc = deflate(&zs_, Z_FINISH);
    if (rc != Z_STREAM_END) fail(ErrorCode::Native, "zlib deflate did not finish");
    return zs_.total_out;
  }

 private:
  z_stream zs_{};
  int level_;
  std::vector<Bytef> buf_;
};

constexpr size_t kGzipOverhead = 18;  // 10-byte header (no file name) + CRC32 + ISIZE

Deflater& deflater(int level) {
  require(level >= 0 && level <= 9, ErrorCode::Range, "compression level must be in [0, 9], got " + std::to_string(level));
  thread_local std::unique_ptr<Deflater> d;
  if (!d || d->level() != level) d = std::make_unique<Deflater>(level);
  return *d;
}

inline double ncd_of(double cx, double cy, double cxy) {
  return (cxy - std::min(cx, cy)) / std::max(cx, cy);
}
}  // namespace

size_t gzip_size(std::string_view text, int level) { return deflater(level).size(text, {}) + kGzipOverhead; }

double ncd(std::string_view x, std::string_view y, int level) {
  Deflater& d = deflater(level);
  const double cx = static_cast<double>(d.size(x, {}) + kGzipOverhead);
  const double cy = static_cast<double>(d.size(y, {}) + kGzipOverhead);
  const double cxy = static_cast<double>(d.size(x, y) + kGzipOverhead);
  return ncd_of(cx, cy, cxy);
}

void ncd_mean_to_targets(const TextBatch& docs, const TextBatch& targets, int level, double* out) {
  require(targets.count >= 1, ErrorCode::Range, "ZIP-FIT needs at least one target example");
  deflater(level);  // validates the level on the calling thread
  std::vector<double> ct(targets.count), cd(docs.count);
  const auto nt = static_cast<std::ptrdiff_t>(targets.count), nd = static_cast<std::ptrdiff_t>(docs.count);
#pragma omp parallel for schedule(dynamic, 8)
  for (std::ptrdiff_t j = 0; j < nt; ++j) ct[j] = static_cast<double>(gzip_size(targets.doc(j), level));
#pragma omp parallel for schedule(dynamic, 8)
  for (std::ptrdiff_t i = 0; i < nd; ++i) cd[i] = static_cast<double>(gzip_size(docs.doc(i), level));
  const size_t total = docs.count * targets.count;
  std::vector<double> acc(docs.count, 0.0);
#pragma omp parallel for schedule(dynamic, 64)
  for (std::ptrdiff_t p = 0; p < static_cast<std::ptrdiff_t>(total); ++p) {
    const size_t i = static_cast<size_t>(p) / targets.count, j = static_cast<size_t>(p) % targets.count;
    const double cxy = static_cast<double>(deflater(level).size(docs.doc(i), targets.doc(j)) + kGzipOverhead);
    const double v = ncd_of(cd[i], ct[j], cxy);
#pragma omp atomic
    acc[i] += v;
  }
  for (size_t i = 0; i < docs.count; ++i) out[i] = acc[i] / static_cast<double>(targets.count);
}

}  // namespace tersor::select
