// Suite "mix": the histogram GBDT of RegMix (tersor/gbdt.hpp) fitted to RegMix's 512 published
// proxy runs (17 mixture proportions -> Pile-CC validation loss), against the exhaustive-split
// reference (tersor::gbdt::fit_exhaustive: every distinct value of every feature sorted per leaf, no
// histograms) in the same run, with identical boosting settings.
//   gbdt/regmix-512/rounds=<R>   leaf-wise, 31 leaves, lr 0.05, 255 bins, no early stopping
// Extra fields: rows, features, rounds, ours_train_mse, baseline_train_mse.
// Data: $TERSOR_REGMIX_DIR, else ../shared/data/regmix relative to the working directory or to the
// repository; the suite prints a skip message when the CSVs are absent.
// Proxy-swarm throughput (proxy runs per hour) is reported by `tersor mix swarm` itself.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "tersor/gbdt.hpp"

namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    rows.push_back(std::move(cells));
  }
  return rows;
}

std::string find_dir() {
  if (const char* e = std::getenv("TERSOR_REGMIX_DIR")) return e;
  const std::string here = __FILE__;  // <repo>/native/bench/bench_mix.cpp
  const std::string repo = here.substr(0, here.rfind("/native/bench/"));
  for (const std::string& d : {std::string("../shared/data/regmix"), std::string("../../shared/data/regmix"), repo + "/../shared/data/regmix"})
    if (std::ifstream(d + "/train_mixture_1m.csv").good()) return d;
  return "";
}

void run(bool quick) {
  const std::string dir = find_dir();
  if (dir.empty()) {
    std::fprintf(stderr, "bench mix: RegMix CSVs not found (set TERSOR_REGMIX_DIR or place ../shared/data/regmix); skipping\n");
    return;
  }
  const auto mix = read_csv(dir + "/train_mixture_1m.csv");
  const auto loss = read_csv(dir + "/train_pile_loss_1m.csv");
  if (mix.size() < 2 || loss.size() != mix.size()) {
    std::fprintf(stderr, "bench mix: unexpected CSV shapes in %s; skipping\n", dir.c_str());
    return;
  }
  size_t target = 0;
  for (size_t j = 0; j < loss[0].size(); ++j)
    if (loss[0][j] == "metric/the_pile_pile_cc_val_loss") target = j;
  if (target == 0) {
    std::fprintf(stderr, "bench mix: no Pile-CC loss column; skipping\n");
    return;
  }
  const size_t n = mix.size() - 1, d = mix[0].size() - 1;
  std::vector<double> x(n * d), y(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) x[i * d + j] = std::strtod(mix[i + 1][j + 1].c_str(), nullptr);
    y[i] = std::strtod(loss[i + 1][target].c_str(), nullptr);
  }
  tersor::gbdt::Options o;
  o.num_rounds = quick ? 20 : 300;
  o.learning_rate = 0.05;
  o.num_leaves = 31;
  o.max_depth = 0;
  o.min_child_samples = 5;
  o.valid_fraction = 0;
  tersor::gbdt::FitResult a, b;
  const int reps = quick ? 3 : 5;
  const double ours = tersor::bench::median_seconds([&] { a = tersor::gbdt::fit(x.data(), n, d, y.data(), o); }, reps, 1);
  const double base = tersor::bench::median_seconds([&] { b = tersor::gbdt::fit_exhaustive(x.data(), n, d, y.data(), o); }, reps, 1);
  tersor::bench::report("mix", "gbdt/regmix-512/rounds=" + std::to_string(o.num_rounds), ours, "exhaustive-split", base,
                        {{"rows", static_cast<double>(n)}, {"features", static_cast<double>(d)}, {"rounds", static_cast<double>(o.num_rounds)},
                         {"ours_train_mse", a.train_mse.back()}, {"baseline_train_mse", b.train_mse.back()}});
}

}  // namespace

TERSOR_BENCH_SUITE("mix", run);
