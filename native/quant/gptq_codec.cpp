// Block codecs for the quantization methods: tersor's reference integer codec, and the schemes of
// tersor/quant_formats.hpp when that header is present. See tersor/quant_methods.hpp.
#include <cmath>
#include <cstring>
#include <string>

#include "tersor/error.hpp"
#include "tersor/quant_formats.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor {

BlockCodec int_codec(int bits, size_t group, bool symmetric, size_t row_len) {
  require(bits >= 2 && bits <= 8, ErrorCode::Range, "integer codec: bits must be in [2, 8], got " + std::to_string(bits));
  require(row_len > 0, ErrorCode::Shape, "integer codec: empty rows");
  const size_t g = group == 0 ? row_len : group;
  require(row_len % g == 0, ErrorCode::Shape,
          "integer codec: group " + std::to_string(group) + " does not divide the row length " + std::to_string(row_len));
  BlockCodec c;
  c.name = "int" + std::to_string(bits) + (group ? "-g" + std::to_string(group) : std::string()) + (symmetric ? "" : "-asym");
  c.block = g;
  c.block_bytes = 8 + g;
  const float maxq = static_cast<float>((1 << bits) - 1);
  c.quantize = [=](const float* x, void* blk, const float*) {
    float lo = 0.f, hi = 0.f;
    for (size_t i = 0; i < g; ++i) {
      lo = std::fmin(lo, x[i]);
      hi = std::fmax(hi, x[i]);
    }
    float scale, zero;
    if (symmetric) {
      const float m = std::fmax(-lo, hi);
      scale = m > 0 ? 2.f * m / maxq : 1.f;
      zero = (maxq + 1.f) / 2.f;
    } else {
      if (hi - lo <= 0) {
        lo = -1.f;
        hi = 1.f;
      }
      scale = (hi - lo) / maxq;
      zero = std::nearbyint(-lo / scale);
    }
    auto* b = static_cast<uint8_t*>(blk);
    std::memcpy(b, &scale, 4);
    std::memcpy(b + 4, &zero, 4);
    for (size_t i = 0; i < g; ++i) b[8 + i] = static_cast<uint8_t>(std::fmin(maxq, std::fmax(0.f, std::nearbyint(x[i] / scale) + zero)));
  };
  c.snap = [=](void* blk, size_t i, float x) {
    auto* b = static_cast<uint8_t*>(blk);
    float scale, zero;
    std::memcpy(&scale, b, 4);
    std::memcpy(&zero, b + 4, 4);
    const float q = std::fmin(maxq, std::fmax(0.f, std::nearbyint(x / scale) + zero));
    b[8 + i] = static_cast<uint8_t>(q);
    return scale * (q - zero);
  };
  c.dequantize = [=](const void* blk, float* y) {
    const auto* b = static_cast<const uint8_t*>(blk);
    float scale, zero;
    std::memcpy(&scale, b, 4);
    std::memcpy(&zero, b + 4, 4);
    for (size_t i = 0; i < g; ++i) y[i] = scale * (static_cast<float>(b[8 + i]) - zero);
  };
  return c;
}

BlockCodec scheme_codec(const std::string& scheme, size_t row_len) {
  const QuantScheme q = parse_quant_scheme(scheme);
  require(!q.per_tensor, ErrorCode::Range, "scheme " + scheme + ": per-tensor scales are not supported by the layer methods (use a per-channel or grouped scheme)");
  require(!q.double_quant, ErrorCode::Range, "scheme " + scheme + ": NF4 double quantization keeps its scales in a row header; the layer methods need self-contained blocks (use nf4)");
  require(row_len > 0, ErrorCode::Shape, "scheme " + scheme + ": empty rows");
  const size_t b = scheme_block(q);
  const size_t blk = b == 0 ? row_len : b;
  require(row_len % blk == 0, ErrorCode::Shape,
          "scheme " + scheme + ": block " + std::to_string(blk) + " does not divide the row length " + std::to_string(row_len));
  BlockCodec c;
  c.name = quant_scheme_name(q);
  c.block = blk;
  c.block_bytes = b == 0 ? scheme_row_bytes(q, row_len) : scheme_block_bytes(q, row_len);
  require(c.block_bytes * (row_len / blk) == scheme_row_bytes(q, row_len), ErrorCode::Format,
          "scheme " + scheme + ": rows are not a plain sequence of blocks");
  c.quantize = [q, blk](const float* x, void* out, const float* imp) { quantize_row(q, x, out, blk, imp); };
  c.snap = [q](void* block, size_t i, float x) { return snap_to_block(q, block, i, x); };
  c.snap_many = [q](void* b0, size_t stride, size_t count, size_t i, const float* x, float* out) {
    snap_to_blocks(q, b0, stride, count, i, x, out);
  };
  c.dequantize = [q, blk](const void* in, float* y) { dequantize_row(q, in, y, blk); };
  return c;
}

}  // namespace tersor
