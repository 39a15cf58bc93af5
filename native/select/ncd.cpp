// Normalised compression distance with deflate (zlib), gzip-sized, for ZIP-FIT (Obbad et al. 2024,
// "ZIP-FIT: Embedding-Free Data Selection via Compression-Based Alignment").
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/select.hpp"

namespace tersor::select {
namespace {

/// zlib allocations of one stream, recorded so the window can be cleared between inputs.
struct Allocs {
  std::vector<std::pair<void*, size_t>> blocks;  // (pointer, bytes) in allocation order
};

voidpf record_alloc(voidpf opaque, uInt items, uInt size) {
  void* p = std::calloc(items, size);
  if (p) static_cast<Allocs*>(opaque)->blocks.emplace_back(p, static_cast<size_t>(items) * size);
  return p;
}
void record_free(voidpf opaque, voidpf p) {
  auto& b = static_cast<Allocs*>(opaque)->blocks;
  b.erase(std::remove_if(b.begin(), b.end(), [p](const auto& x) { return x.first == p; }), b.end());
  std::free(p);
}

/// One deflate state per thread and level, reset between inputs (deflateInit allocates ~256 KiB).
///
/// deflateReset alone is not enough for sizes independent of what was compressed before: zlib's
/// longest_match compares up to 258 bytes past the end of the input, and a fresh stream has zeros
/// there (it clears WIN_INIT bytes above its high-water mark) while a reset stream still holds the
/// previous input, which can change the match chosen and so the compressed size. The window
/// (zlib 1.2.x allocates it second, w_size x 2 bytes) is therefore cleared up to the previous
/// input's length before each input: the stream then behaves exactly as a fresh one (Python's
/// gzip.compress), at the cost of a memset of the bytes actually used.
class Deflater {
 public:
  explicit Deflater(int level) : level_(level) {
    zs_.zalloc = record_alloc;
    zs_.zfree = record_free;
    zs_.opaque = &allocs_;
    // Raw deflate, 32 KiB window, memLevel 8: the stream Python's gzip.compress produces.
    if (deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      fail(ErrorCode::Native, "zlib deflateInit2 failed");
    // deflate_state, then the window of 2 x 32 KiB: anything else (another zlib) means a fresh
    // stream per input, always correct.
    if (allocs_.blocks.size() >= 2 && allocs_.blocks[1].second == 2 * 32768) window_ = static_cast<unsigned char*>(allocs_.blocks[1].first);
  }
  ~Deflater() { deflateEnd(&zs_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  int level() const { return level_; }

  /// Compressed size of the concatenation a + b.
  size_t size(std::string_view a, std::string_view b) {
    if (window_) {
      deflateReset(&zs_);
      std::memset(window_, 0, std::min<size_t>(dirty_, 2 * 32768));
    } else {
      deflateEnd(&zs_);
      zs_ = z_stream{};
      zs_.zalloc = record_alloc;
      zs_.zfree = record_free;
      zs_.opaque = &allocs_;
      if (deflateInit2(&zs_, level_, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) fail(ErrorCode::Native, "zlib deflateInit2 failed");
    }
    dirty_ = a.size() + b.size() + 258 + 8;
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
  Allocs allocs_;
  z_stream zs_{};
  unsigned char* window_ = nullptr;
  size_t dirty_ = 0;
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
  // Blocks of documents: the pairs of a block in parallel into a buffer, then each document's mean
  // summed in target order, so a document's score is the same bits whatever batch it is in.
  const size_t m = targets.count;
  const size_t block = std::max<size_t>(1, (size_t{1} << 18) / m);
  std::vector<double> vals(std::min(docs.count, block) * m);
  for (size_t b0 = 0; b0 < docs.count; b0 += block) {
    const size_t b1 = std::min(docs.count, b0 + block);
    const auto total = static_cast<std::ptrdiff_t>((b1 - b0) * m);
#pragma omp parallel for schedule(dynamic, 32)
    for (std::ptrdiff_t p = 0; p < total; ++p) {
      const size_t i = b0 + static_cast<size_t>(p) / m, j = static_cast<size_t>(p) % m;
      const double cxy = static_cast<double>(deflater(level).size(docs.doc(i), targets.doc(j)) + kGzipOverhead);
      vals[static_cast<size_t>(p)] = ncd_of(cd[i], ct[j], cxy);
    }
    for (size_t i = b0; i < b1; ++i) {
      double acc = 0;
      for (size_t j = 0; j < m; ++j) acc += vals[(i - b0) * m + j];
      out[i] = acc / static_cast<double>(m);
    }
  }
}

}  // namespace tersor::select
