// Bindings for dtype conversions and the seeded RNG.
#include "napi_util.hpp"
#include "tersor/half.hpp"
#include "tersor/rng.hpp"

namespace tersor::napi {
namespace {

void check_same_length(size_t a, size_t b) {
  require(a == b, ErrorCode::Shape, "source has " + std::to_string(a) + " elements but destination has " + std::to_string(b));
}

// (src: Float32Array, dst: Uint16Array) -> undefined
TERSOR_NAPI(F32ToF16) {
  return guard(info.Env(), [&] {
    auto src = arg_array<float>(info, 0, "src");
    auto dst = arg_array<uint16_t>(info, 1, "dst");
    check_same_length(src.size, dst.size);
    f32_to_f16(src.data, dst.data, src.size);
    return info.Env().Undefined();
  });
}
TERSOR_NAPI(F16ToF32) {
  return guard(info.Env(), [&] {
    auto src = arg_array<uint16_t>(info, 0, "src");
    auto dst = arg_array<float>(info, 1, "dst");
    check_same_length(src.size, dst.size);
    f16_to_f32(src.data, dst.data, src.size);
    return info.Env().Undefined();
  });
}
TERSOR_NAPI(F32ToBf16) {
  return guard(info.Env(), [&] {
    auto src = arg_array<float>(info, 0, "src");
    auto dst = arg_array<uint16_t>(info, 1, "dst");
    check_same_length(src.size, dst.size);
    f32_to_bf16(src.data, dst.data, src.size);
    return info.Env().Undefined();
  });
}
TERSOR_NAPI(Bf16ToF32) {
  return guard(info.Env(), [&] {
    auto src = arg_array<uint16_t>(info, 0, "src");
    auto dst = arg_array<float>(info, 1, "dst");
    check_same_length(src.size, dst.size);
    bf16_to_f32(src.data, dst.data, src.size);
    return info.Env().Undefined();
  });
}

// (seedHi: number, seedLo: number, out: Uint32Array) -> fills out with the stream's next_u32 draws.
// The seed crosses as two 32-bit halves so that 64-bit seeds are exact.
TERSOR_NAPI(RngFillU32) {
  return guard(info.Env(), [&] {
    const double hi = arg_number(info, 0, "seedHi");
    const double lo = arg_number(info, 1, "seedLo");
    auto out = arg_array<uint32_t>(info, 2, "out");
    Rng rng((static_cast<uint64_t>(static_cast<uint32_t>(hi)) << 32) | static_cast<uint32_t>(lo));
    for (size_t i = 0; i < out.size; ++i) out.data[i] = rng.next_u32();
    return info.Env().Undefined();
  });
}

// (seedHi, seedLo, out: Float64Array) -> standard normal draws (the stream's next_normal).
TERSOR_NAPI(RngFillNormal) {
  return guard(info.Env(), [&] {
    const double hi = arg_number(info, 0, "seedHi");
    const double lo = arg_number(info, 1, "seedLo");
    auto out = arg_array<double>(info, 2, "out");
    Rng rng((static_cast<uint64_t>(static_cast<uint32_t>(hi)) << 32) | static_cast<uint32_t>(lo));
    for (size_t i = 0; i < out.size; ++i) out.data[i] = rng.next_normal();
    return info.Env().Undefined();
  });
}

}  // namespace

void init_core(Napi::Env env, Napi::Object exports) {
  exports.Set("f32ToF16", Napi::Function::New(env, F32ToF16, "f32ToF16"));
  exports.Set("f16ToF32", Napi::Function::New(env, F16ToF32, "f16ToF32"));
  exports.Set("f32ToBf16", Napi::Function::New(env, F32ToBf16, "f32ToBf16"));
  exports.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32, "bf16ToF32"));
  exports.Set("rngFillU32", Napi::Function::New(env, RngFillU32, "rngFillU32"));
  exports.Set("rngFillNormal", Napi::Function::New(env, RngFillNormal, "rngFillNormal"));
}

}  // namespace tersor::napi
