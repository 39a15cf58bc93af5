// Run-time counts to compile-time constants. Kernels that keep one accumulator per row in vector
// registers (the batch rows of a quantized matmul, the query heads of a GQA group) need that row
// count as a template argument; these map the run-time count to the instance compiled for it.
#pragma once
#include <cstddef>
#include <type_traits>

namespace tersor {

/// Calls f(std::integral_constant<size_t, n>) for n in 1..8; any other n calls f with 8.
template <class F>
void with_count_1_to_8(size_t n, F&& f) {
  switch (n) {
    case 1: f(std::integral_constant<size_t, 1>{}); break;
    case 2: f(std::integral_constant<size_t, 2>{}); break;
    case 3: f(std::integral_constant<size_t, 3>{}); break;
    case 4: f(std::integral_constant<size_t, 4>{}); break;
    case 5: f(std::integral_constant<size_t, 5>{}); break;
    case 6: f(std::integral_constant<size_t, 6>{}); break;
    case 7: f(std::integral_constant<size_t, 7>{}); break;
    default: f(std::integral_constant<size_t, 8>{}); break;
  }
}

}  // namespace tersor
