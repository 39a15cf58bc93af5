// tersor_bench <suite> [--quick] [--threads N]: runs a benchmark suite, one JSON line per case.
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench.hpp"
#include "tersor/parallel.hpp"

int main(int argc, char** argv) {
  std::string suite;
  bool quick = false;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else suite = argv[i];
  }
  auto& reg = tersor::bench::registry();
  if (suite.empty() || !reg.count(suite)) {
    std::fprintf(stderr, "usage: tersor_bench <suite> [--quick] [--threads N]\nsuites:");
    for (const auto& [name, fn] : reg) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  tersor::set_num_threads(threads);
  for (const auto& part : reg[suite]) part(quick);
  return 0;
}
