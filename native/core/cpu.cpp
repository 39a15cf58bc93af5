// Compiled like every other file, but cpuid itself is plain x86-64, and the callers only run this
// before any AVX2 code; the N-API entry that uses it (cpuSupport) touches no vector code.
#include "tersor/cpu.hpp"

#include <cpuid.h>

namespace tersor {

CpuFeatures cpu_features() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c & bit_OSXSAVE) != 0;
  f.fma = (c & bit_FMA) != 0;
  f.f16c = (c & bit_F16C) != 0;
  bool ymm_enabled = false;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    ymm_enabled = (lo & 0x6) == 0x6;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm_enabled && (b & bit_AVX2) != 0;
    f.avx512f = ymm_enabled && (b & bit_AVX512F) != 0;
  }
  f.fma = f.fma && ymm_enabled;
  f.f16c = f.f16c && ymm_enabled;
  return f;
}

std::string cpu_support_problem() {
  const CpuFeatures f = cpu_features();
  std::string missing;
  if (!f.avx2) missing += " AVX2";
  if (!f.fma) missing += " FMA";
  if (!f.f16c) missing += " F16C";
  if (missing.empty()) return {};
  return "this CPU lacks" + missing +
         "; tersor's native addon is built for x86-64-v3 (Intel Haswell / AMD Excavator or newer)";
}

}  // namespace tersor
