// Typed fields of plain JS option objects (errors are E_RANGE naming `prefix + name`), and the
// runtime's TransformerConfig parsed from its binding form. Defined in config.cpp.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "napi_util.hpp"
#include "tersor/transformer.hpp"

namespace tersor::napi {

/// undefined or null.
bool absent(const Napi::Value& v);
double cfg_number(Napi::Object o, const char* name, const std::string& prefix, bool optional = false,
                  double fallback = 0);
size_t cfg_size(Napi::Object o, const char* name, const std::string& prefix, bool optional = false,
                size_t fallback = 0);
bool cfg_bool(Napi::Object o, const char* name, const std::string& prefix);
/// One of `allowed`; `fallback` (when given) stands for an absent field.
std::string cfg_string(Napi::Object o, const char* name, const std::string& prefix,
                       const std::vector<const char*>& allowed, const char* fallback = nullptr);
/// The `config` argument of createTransformer / TrainableTransformer, validated by transformer_config_validate.
TransformerConfig parse_transformer_config(const Napi::Value& value);

}  // namespace tersor::napi
