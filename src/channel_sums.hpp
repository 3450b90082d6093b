// convkit/src/channel_sums.hpp -- per-channel sums of an (N, C, P) array: the bias gradient of
// conv2d and conv_transpose2d (grad_out summed over images and positions).
#pragma once
#include "common.hpp"

namespace convkit {

// sums (C) [c] = sum over i < n, j < p of x[(i * c_count + c) * p + j]. Deterministic: one
// thread per channel, a fixed order; any thread count gives the same bits.
template <class T> void channel_sums(T* sums, const T* x, index_t n, index_t c_count, index_t p);

}  // namespace convkit
