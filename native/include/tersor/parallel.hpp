// Thread control for every parallel loop in tersor (OpenMP underneath).
// The default thread count is the number of physical cores: SMT siblings share the FMA units that
// the dense kernels saturate, so they add contention rather than throughput.
#pragma once
#include <cstddef>

namespace tersor {

/// Number of physical cores (falls back to the logical count when the topology is unreadable).
int physical_cores();
/// Threads used by tersor's parallel loops.
int num_threads();
/// Set the thread count; n <= 0 restores the default (physical cores).
void set_num_threads(int n);

}  // namespace tersor
