// convkit/src/pool2d.hpp -- public C++ entry points of the CPU pooling kernels.
//
// Every array is NCHW, C-contiguous, and is treated as `planes` = N*C independent
// (H, W) planes (1-D pooling runs with H = KH = 1). Arguments were validated in Python
// (convkit/_shapes.py, pool section).
//
// Windowed max/avg pooling (pool2d_impl.hpp) has one variant per instruction set,
// chosen at run time like conv2d (active_isa() in conv2d.hpp); adaptive pooling
// (adaptive_pool2d.cpp) is portable.
#pragma once
#include <cstdint>
#include <limits>
#include "common.hpp"

namespace convkit {

// Sizes of one pooling call. Adaptive pooling and max_pool2d_backward read only
// planes, h, w, oh, ow.
struct Pool2dSizes {
    index_t planes;                // N*C independent planes
    index_t h, w;                  // input plane
    index_t oh, ow;                // output plane
    index_t kh, kw;
    index_t stride_h, stride_w;
    index_t pad_h, pad_w;          // padding before (top, left); ceil_mode windows may run further
    index_t dil_h, dil_w;          // max pooling only (avg: 1)
    index_t count_include_pad;     // avg: 1 = pool size counts padding (window clipped to the padded input)
    index_t divisor_override;      // avg: 0 = none, else the divisor of every window
};

// Whether max pooling runs a plane at a time in registers (src/pool2d_short_rows.hpp): square
// 2x2 / 3x3 windows, equal strides 1 to 3, padding 0 or 1, no dilation, the padded columns the
// windows read in at most 8 vectors of `lanes` values (and H*W < 2^31 with indices).
inline bool max_pool2d_short_rows_apply(const Pool2dSizes& s, index_t lanes, bool with_indices) {
    const index_t k = s.kh, st = s.stride_h;
    return s.kw == k && (k == 2 || k == 3) && s.stride_w == st && st >= 1 && st <= 3 && s.pad_h <= 1 &&
           s.pad_w <= 1 && s.dil_h == 1 && s.dil_w == 1 && windows_span(s.ow, st, k, 1) <= 8 * lanes &&
           (!with_indices || s.h * s.w <= std::numeric_limits<std::int32_t>::max());
}

// out (planes, OH, OW) = max over each window of x (planes, H, W); indices (same shape as
// out, or null) = flat offset ih*W + iw of the chosen element within its plane.
template <class T> void max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s);
// grad_x (planes, H, W) = grad_out (planes, OH, OW) scattered through indices. Every index is
// checked as it is used (the indices are read once): false when one lies outside [0, H*W) (it
// was replaced by 0, so nothing outside the planes was touched; the result must be dropped).
template <class T> bool max_pool2d_backward(T* grad_x, const T* grad_out, const index_t* indices, const Pool2dSizes& s);

template <class T> void avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s);
template <class T> void avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s);

// Adaptive pooling: output bin i of an axis covers [floor(i*In/Out), ceil((i+1)*In/Out)).
template <class T> void adaptive_avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s);
template <class T> void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s);
template <class T> void adaptive_max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (pool2d_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (pool2d_dispatch.cpp).
#define CONVKIT_POOL2D_INSTANTIATE(T)                                                   \
    template void max_pool2d_forward<T>(T*, index_t*, const T*, const Pool2dSizes&);    \
    template void avg_pool2d_forward<T>(T*, const T*, const Pool2dSizes&);              \
    template void avg_pool2d_backward<T>(T*, const T*, const Pool2dSizes&);

}  // namespace convkit
