// Thread control for every parallel loop in tersor (OpenMP underneath).
// The default thread count is the number of physical cores: SMT siblings share the FMA units that
// the dense kernels saturate, so they add contention rather than throughput.
#pragma once
#include <algorithm>
#include <cstddef>

namespace tersor {

/// Number of physical cores (falls back to the logical count when the topology is unreadable).
int physical_cores();
/// Threads used by tersor's parallel loops.
int num_threads();
/// Set the thread count; n <= 0 restores the default (physical cores).
void set_num_threads(int n);

/// Below this many touched elements a loop stays on the calling thread: an OpenMP fork/join costs a
/// few microseconds, about what 32k elements of the element-wise kernels cost.
constexpr size_t kParallelMin = size_t{1} << 15;

/// Threads for `work` touched elements spread over `items` independent items.
inline int threads_for(size_t items, size_t work) {
  if (items < 2 || work < kParallelMin) return 1;
  return static_cast<int>(std::min<size_t>(static_cast<size_t>(num_threads()), items));
}

/// Runs f(i) for i in [0, items), on several threads when `work` (elements touched) is large.
template <class F>
void parallel_for(size_t items, size_t work, F&& f) {
  const int nt = threads_for(items, work);
  if (nt <= 1) {
    for (size_t i = 0; i < items; ++i) f(i);
    return;
  }
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(items);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::ptrdiff_t i = 0; i < n; ++i) f(static_cast<size_t>(i));
}

}  // namespace tersor
