// External-memory MinHash-LSH bucketing: (key, document id) records written to sorted run files
// under a memory budget, then k-way merged per section (the exact-text key, then each LSH band)
// to emit the candidate pairs, as in the "signatures and buckets spilled to disk in sorted runs"
// design of large-scale near-duplicate detection (Leskovec, Rajaraman & Ullman, "Mining of Massive
// Datasets", ch. 3 and 2.2 on external sorting). Gives exactly the pairs of the in-memory path.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <tuple>

#include "tersor/error.hpp"
#include "tersor/select.hpp"

namespace tersor::select {
namespace {

constexpr char kRunMagic[8] = {'T', 'S', 'L', 'S', 'H', 'R', 'N', '1'};
constexpr size_t kRecordBytes = 12;  // u64 key, u32 id, little-endian, packed

struct File {
  FILE* f = nullptr;
  explicit File(FILE* fp) : f(fp) {}
  ~File() {
    if (f) std::fclose(f);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
};

inline void put_record(unsigned char* p, uint64_t key, uint32_t id) {
  std::memcpy(p, &key, 8);
  std::memcpy(p + 8, &id, 4);
}

void write_all(FILE* f, const void* p, size_t bytes, const std::string& path) {
  if (bytes && std::fwrite(p, 1, bytes, f) != bytes) fail(ErrorCode::IO, "cannot write the LSH run " + path);
}

void read_all(FILE* f, void* p, size_t bytes, const std::string& path) {
  if (bytes && std::fread(p, 1, bytes, f) != bytes) fail(ErrorCode::Format, path + ": truncated LSH run file");
}

struct RunHeader {
  uint32_t sections = 0;
  std::vector<uint64_t> counts;
  size_t data_offset = 0;
};

RunHeader read_header(FILE* f, const std::string& path) {
  char magic[8];
  read_all(f, magic, 8, path);
  if (std::memcmp(magic, kRunMagic, 8) != 0) fail(ErrorCode::Format, path + ": not an LSH run file");
  RunHeader h;
  uint32_t reserved = 0;
  read_all(f, &h.sections, 4, path);
  read_all(f, &reserved, 4, path);
  if (h.sections == 0 || h.sections > 4097) fail(ErrorCode::Format, path + ": bad section count");
  h.counts.resize(h.sections);
  read_all(f, h.counts.data(), 8 * h.sections, path);
  h.data_offset = 16 + 8 * h.sections;
  return h;
}

/// Sequential buffered reader of one section of one run.
class SectionReader {
 public:
  SectionReader(const std::string& path, size_t offset, uint64_t count) : path_(path), file_(std::fopen(path.c_str(), "rb")), left_(count) {
    if (!file_.f) fail(ErrorCode::IO, "cannot open the LSH run " + path);
    if (std::fseek(file_.f, static_cast<long>(offset), SEEK_SET) != 0) fail(ErrorCode::IO, "cannot seek in " + path);
  }
  /// Next record; false at the end of the section.
  bool next(uint64_t& key, uint32_t& id) {
    if (pos_ == buf_.size()) {
      if (left_ == 0) return false;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(left_, 4096));
      buf_.resize(take * kRecordBytes);
      read_all(file_.f, buf_.data(), buf_.size(), path_);
      left_ -= take;
      pos_ = 0;
    }
    std::memcpy(&key, buf_.data() + pos_, 8);
    std::memcpy(&id, buf_.data() + pos_ + 8, 4);
    pos_ += kRecordBytes;
    return true;
  }

 private:
  std::string path_;
  File file_;
  uint64_t left_;
  std::vector<unsigned char> buf_;
  size_t pos_ = 0;
};

}  // namespace

void lsh_write_run(const std::string& path, const uint64_t* keys, size_t n, size_t sections, uint32_t first_id, const uint8_t* in_bands) {
  require(sections >= 1 && sections <= 4097, ErrorCode::Range, "an LSH run needs 1 to 4097 sections");
  require(static_cast<uint64_t>(first_id) + n <= 0xFFFFFFFFull, ErrorCode::Range, "document ids must stay below 2^32 - 1");
  File out(std::fopen(path.c_str(), "wb"));
  if (!out.f) fail(ErrorCode::IO, "cannot create the LSH run " + path);
  write_all(out.f, kRunMagic, 8, path);
  const uint32_t s32 = static_cast<uint32_t>(sections), reserved = 0;
  write_all(out.f, &s32, 4, path);
  write_all(out.f, &reserved, 4, path);
  size_t banded = n;
  if (in_bands) banded = static_cast<size_t>(std::count_if(in_bands, in_bands + n, [](uint8_t v) { return v != 0; }));
  std::vector<uint64_t> counts(sections, banded);
  counts[0] = n;
  write_all(out.f, counts.data(), 8 * sections, path);
  std::vector<std::pair<uint64_t, uint32_t>> col;
  std::vector<unsigned char> buf(n * kRecordBytes);
  for (size_t s = 0; s < sections; ++s) {
    col.clear();
    for (size_t i = 0; i < n; ++i)
      if (s == 0 || !in_bands || in_bands[i]) col.emplace_back(keys[i * sections + s], first_id + static_cast<uint32_t>(i));
    std::sort(col.begin(), col.end());
    for (size_t i = 0; i < col.size(); ++i) put_record(buf.data() + i * kRecordBytes, col[i].first, col[i].second);
    write_all(out.f, buf.data(), col.size() * kRecordBytes, path);
  }
  if (std::fflush(out.f) != 0 || std::ferror(out.f)) fail(ErrorCode::IO, "cannot write the LSH run " + path);
}

void lsh_spill_run(const std::string& path, const uint32_t* sigs, const uint64_t* exact, size_t n, uint32_t first_id, size_t num_perm,
                   size_t bands, size_t rows) {
  const size_t sections = 1 + (sigs ? bands : 0);
  std::vector<uint64_t> keys(n * sections);
  if (sigs) {
    std::vector<uint64_t> bk(n * bands);
    lsh_band_keys(sigs, n, num_perm, bands, rows, bk.data());
    for (size_t i = 0; i < n; ++i) std::copy(bk.begin() + static_cast<std::ptrdiff_t>(i * bands), bk.begin() + static_cast<std::ptrdiff_t>((i + 1) * bands), keys.begin() + static_cast<std::ptrdiff_t>(i * sections + 1));
  }
  for (size_t i = 0; i < n; ++i) keys[i * sections] = exact[i];
  std::vector<uint8_t> in_bands(n, 1);
  if (sigs)
    for (size_t i = 0; i < n; ++i) in_bands[i] = signature_is_empty(sigs + i * num_perm, num_perm) ? 0 : 1;
  lsh_write_run(path, keys.data(), n, sections, first_id, in_bands.data());
}

namespace {

std::vector<RunHeader> read_headers(const std::vector<std::string>& paths) {
  std::vector<RunHeader> heads;
  for (const auto& p : paths) {
    File f(std::fopen(p.c_str(), "rb"));
    if (!f.f) fail(ErrorCode::IO, "cannot open the LSH run " + p);
    heads.push_back(read_header(f.f, p));
    if (heads.back().sections != heads.front().sections) fail(ErrorCode::Format, p + ": runs disagree on the number of sections");
  }
  return heads;
}

/// k-way merge of section s of the runs: calls sink(key, id) in (key, id) order.
template <class Sink>
void merge_section(const std::vector<std::string>& paths, const std::vector<RunHeader>& heads, size_t s, Sink&& sink) {
  using Item = std::tuple<uint64_t, uint32_t, size_t>;  // key, id, run
  std::vector<std::unique_ptr<SectionReader>> readers;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (size_t r = 0; r < paths.size(); ++r) {
    size_t offset = heads[r].data_offset;
    for (size_t q = 0; q < s; ++q) offset += heads[r].counts[q] * kRecordBytes;
    readers.push_back(std::make_unique<SectionReader>(paths[r], offset, heads[r].counts[s]));
    uint64_t k;
    uint32_t id;
    if (readers.back()->next(k, id)) heap.emplace(k, id, r);
  }
  while (!heap.empty()) {
    const auto [k, id, r] = heap.top();
    heap.pop();
    sink(k, id);
    uint64_t nk;
    uint32_t nid;
    if (readers[r]->next(nk, nid)) heap.emplace(nk, nid, r);
  }
}

/// Merges runs into one run file with the same layout.
void merge_into_run(const std::vector<std::string>& paths, const std::string& out_path) {
  const auto heads = read_headers(paths);
  const size_t sections = heads.front().sections;
  File out(std::fopen(out_path.c_str(), "wb"));
  if (!out.f) fail(ErrorCode::IO, "cannot create the LSH run " + out_path);
  write_all(out.f, kRunMagic, 8, out_path);
  const uint32_t s32 = static_cast<uint32_t>(sections), reserved = 0;
  write_all(out.f, &s32, 4, out_path);
  write_all(out.f, &reserved, 4, out_path);
  std::vector<uint64_t> counts(sections, 0);
  for (const auto& h : heads)
    for (size_t s = 0; s < sections; ++s) counts[s] += h.counts[s];
  write_all(out.f, counts.data(), 8 * sections, out_path);
  std::vector<unsigned char> buf;
  buf.reserve(4096 * kRecordBytes);
  for (size_t s = 0; s < sections; ++s) {
    merge_section(paths, heads, s, [&](uint64_t k, uint32_t id) {
      buf.resize(buf.size() + kRecordBytes);
      put_record(buf.data() + buf.size() - kRecordBytes, k, id);
      if (buf.size() >= 4096 * kRecordBytes) {
        write_all(out.f, buf.data(), buf.size(), out_path);
        buf.clear();
      }
    });
    write_all(out.f, buf.data(), buf.size(), out_path);
    buf.clear();
  }
  if (std::fflush(out.f) != 0 || std::ferror(out.f)) fail(ErrorCode::IO, "cannot write the LSH run " + out_path);
}

/// Removes the intermediate runs it holds when it goes out of scope (also on error).
struct TempRuns {
  std::vector<std::string> paths;
  ~TempRuns() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};

}  // namespace

SpilledPairs lsh_merge_runs(const std::vector<std::string>& paths, size_t max_fan_in) {
  require(max_fan_in >= 2, ErrorCode::Range, "the merge fan-in must be at least 2");
  SpilledPairs out;
  if (paths.empty()) return out;
  if (paths.size() > max_fan_in) {
    // Too many runs to hold open at once: merge groups of max_fan_in into intermediate runs first.
    TempRuns tmp;
    for (size_t g = 0; g < paths.size(); g += max_fan_in) {
      const std::vector<std::string> group(paths.begin() + static_cast<std::ptrdiff_t>(g),
                                           paths.begin() + static_cast<std::ptrdiff_t>(std::min(paths.size(), g + max_fan_in)));
      tmp.paths.push_back(group.front() + ".merged");
      merge_into_run(group, tmp.paths.back());
    }
    return lsh_merge_runs(tmp.paths, max_fan_in);
  }
  const auto heads = read_headers(paths);
  const size_t sections = heads.front().sections;
  out.sections = sections;
  for (size_t s = 0; s < sections; ++s) {
    auto& pairs = s == 0 ? out.exact : out.lsh;
    bool have = false;
    uint64_t cur = 0;
    uint32_t first = 0, last = 0;
    merge_section(paths, heads, s, [&](uint64_t k, uint32_t id) {
      if (have && k == cur) {
        if (id <= last) fail(ErrorCode::Format, "LSH runs overlap: document " + std::to_string(id) + " appears twice");
        pairs.emplace_back(id, first);
      } else {
        have = true;
        cur = k;
        first = id;
      }
      last = id;
    });
    if (s > 0) {
      std::sort(out.lsh.begin(), out.lsh.end());
      out.lsh.erase(std::unique(out.lsh.begin(), out.lsh.end()), out.lsh.end());
    }
  }
  std::sort(out.exact.begin(), out.exact.end());
  return out;
}

size_t spilled_pairs_above(const std::string& sig_path, size_t num_perm, const std::vector<std::pair<uint32_t, uint32_t>>& pairs,
                           double threshold) {
  require(num_perm >= 1, ErrorCode::Range, "num_perm must be at least 1");
  File f(std::fopen(sig_path.c_str(), "rb"));
  if (!f.f) fail(ErrorCode::IO, "cannot open the signature file " + sig_path);
  std::vector<uint32_t> a(num_perm), b(num_perm);
  const size_t row = num_perm * 4;
  auto load = [&](uint32_t id, std::vector<uint32_t>& v) {
    if (std::fseek(f.f, static_cast<long>(static_cast<uint64_t>(id) * row), SEEK_SET) != 0) fail(ErrorCode::IO, "cannot seek in " + sig_path);
    read_all(f.f, v.data(), row, sig_path);
  };
  size_t good = 0;
  for (const auto& [i, j] : pairs) {
    load(i, a);
    load(j, b);
    if (minhash_jaccard(a.data(), b.data(), num_perm) >= threshold) ++good;
  }
  return good;
}

}  // namespace tersor::select
