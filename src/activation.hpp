// convkit/src/activation.hpp -- elementwise activation kernels: relu and dropout's scaling.
//
//   relu_forward      y  = x < 0 ? 0 : x          (NaN stays NaN, -0 stays -0: as torch.relu)
//   relu_backward     gx = x <= 0 ? 0 : gy         (0 at x == 0; gy at NaN: torch's convention)
//   dropout_forward   y  = x * (keep ? scale : 0)  (a multiply, so a dropped inf/NaN gives NaN
//   dropout_backward  gx = gy * (keep ? scale : 0)  exactly as torch's input * noise)
// keep is one byte per element (0 or 1, from the Python side's random mask); scale = 1/(1-p).
// Every output is OVERWRITTEN; arrays are contiguous and hold `count` elements. Memory-bound,
// so one portable (baseline instruction set) build suffices.
#pragma once
#include <cstdint>
#include "common.hpp"

namespace convkit {

struct ElementwiseSizes {
    index_t count;    // elements of every array
    double scale;     // dropout: 1 / (1 - p), already rounded to T by the caller; relu: unused
};

template <class T> void relu_forward(T* y, const T* x, const ElementwiseSizes& s);
template <class T> void relu_backward(T* grad_x, const T* grad_y, const T* x, const ElementwiseSizes& s);
template <class T> void dropout_forward(T* y, const T* x, const std::uint8_t* keep, const ElementwiseSizes& s);
template <class T> void dropout_backward(T* grad_x, const T* grad_y, const std::uint8_t* keep, const ElementwiseSizes& s);

}  // namespace convkit
