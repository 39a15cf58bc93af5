// Run-time CPU feature checks. The addon is compiled for x86-64-v3 (AVX2, FMA, F16C); loading it on
// an older CPU would die with SIGILL, so the loader asks first through a tiny function that is
// compiled without those instructions (see native/core/cpu.cpp).
#pragma once
#include <string>

namespace tersor {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
};

CpuFeatures cpu_features();
/// Empty when the CPU runs this build; otherwise a message naming the missing features.
std::string cpu_support_problem();

}  // namespace tersor
