// A tiny benchmark harness for tersor_bench: each case times "ours" and a named baseline in the
// same process run (median of >= 5 repetitions after warm-up) and prints one JSON object per line:
//   {"suite","case","ours_s","baseline","baseline_s","ratio", ...extra}  with ratio = baseline_s / ours_s.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tersor::bench {

inline double median_seconds(const std::function<void()>& fn, int reps = 5, int warmup = 1, double min_total_s = 0.0) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  double total = 0;
  while (static_cast<int>(t.size()) < reps || total < min_total_s) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.push_back(s);
    total += s;
    if (t.size() >= 1000) break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Extra numeric fields for a result line (e.g. GFLOP/s).
using Extra = std::vector<std::pair<std::string, double>>;

inline void report(const std::string& suite, const std::string& name, double ours_s, const std::string& baseline,
                   double baseline_s, const Extra& extra = {}) {
  std::printf("{\"suite\":\"%s\",\"case\":\"%s\",\"ours_s\":%.9g,\"baseline\":\"%s\",\"baseline_s\":%.9g,\"ratio\":%.6g",
              suite.c_str(), name.c_str(), ours_s, baseline.c_str(), baseline_s, baseline_s / ours_s);
  for (const auto& [k, v] : extra) std::printf(",\"%s\":%.6g", k.c_str(), v);
  std::printf("}\n");
  std::fflush(stdout);
}

/// A suite is one or more parts (each a function running some cases), registered from any file;
/// `quick` shrinks sizes for smoke tests.
using SuiteFn = std::function<void(bool quick)>;
inline std::map<std::string, std::vector<SuiteFn>>& registry() {
  static std::map<std::string, std::vector<SuiteFn>> r;
  return r;
}
struct Register {
  Register(const std::string& name, SuiteFn fn) { registry()[name].push_back(std::move(fn)); }
};

}  // namespace tersor::bench

#define TERSOR_BENCH_SUITE(name, fn) static ::tersor::bench::Register tersor_bench_reg_##fn(name, fn)
