#include "tersor/parallel.hpp"

#include <omp.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace tersor {
namespace {

int detect_physical_cores() {
  // Count distinct (physical id, core id) pairs in /proc/cpuinfo; SMT siblings share a pair.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  int phys = 0;
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    try {
      if (key == "physical id") phys = std::stoi(line.substr(colon + 1));
      if (key == "core id") cores.insert({phys, std::stoi(line.substr(colon + 1))});
    } catch (...) {
      return 0;
    }
  }
  return static_cast<int>(cores.size());
}

int g_threads = 0;

}  // namespace

int physical_cores() {
  static const int n = [] {
    int c = detect_physical_cores();
    if (c <= 0) c = static_cast<int>(std::thread::hardware_concurrency());
    return c > 0 ? c : 1;
  }();
  return n;
}

int num_threads() { return g_threads > 0 ? g_threads : physical_cores(); }

void set_num_threads(int n) {
  g_threads = n > 0 ? n : 0;
  omp_set_num_threads(num_threads());
}

}  // namespace tersor
