// AWQ's activation-aware scale search (Lin et al. 2024); see tersor/quant_methods.hpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tersor/error.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor {

AwqResult awq_search(const BlockCodec& c, const std::vector<const float*>& ws, const std::vector<size_t>& rows, size_t cols,
                     const double* gram, const float* mean_abs_x, size_t grid) {
  require(!ws.empty() && ws.size() == rows.size(), ErrorCode::Shape, "awq: need one row count per weight");
  require(grid >= 1, ErrorCode::Range, "awq: the grid needs at least one point");
  for (size_t j = 0; j < cols; ++j)
    require(std::isfinite(mean_abs_x[j]) && mean_abs_x[j] >= 0, ErrorCode::Range,
            "awq: mean |x| must be finite and non-negative (channel " + std::to_string(j) + ")");
  AwqResult best;
  best.error = std::numeric_limits<double>::infinity();
  std::vector<float> s(cols), scaled, back;
  for (size_t gi = 0; gi < grid; ++gi) {
    const double alpha = static_cast<double>(gi) / static_cast<double>(grid);
    float smax = 0, smin = std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < cols; ++j) {
      s[j] = std::max(1e-4f, static_cast<float>(std::pow(static_cast<double>(mean_abs_x[j]), alpha)));
      smax = std::max(smax, s[j]);
      smin = std::min(smin, s[j]);
    }
    const float norm = std::sqrt(smax * smin);
    for (float& v : s) v /= norm;
    double err = 0;
    for (size_t i = 0; i < ws.size(); ++i) {
      const size_t n = rows[i] * cols;
      scaled.resize(n);
      for (size_t r = 0; r < rows[i]; ++r)
        for (size_t j = 0; j < cols; ++j) scaled[r * cols + j] = ws[i][r * cols + j] * s[j];
      std::vector<uint8_t> q = rtn_quantize(c, scaled.data(), rows[i], cols);
      back = dequantize_rows(c, q.data(), rows[i], cols);
      for (size_t r = 0; r < rows[i]; ++r)
        for (size_t j = 0; j < cols; ++j) back[r * cols + j] /= s[j];
      err += output_error(ws[i], back.data(), rows[i], cols, gram);
    }
    best.errors.push_back(err);
    if (err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  return best;
}

}  // namespace tersor
