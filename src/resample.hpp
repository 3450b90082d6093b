// convkit/src/resample.hpp -- max-unpooling and upsampling (nearest, bed of nails, bilinear), CPU.
//
// Kernels: src/unpool2d.cpp (max_unpool2d_*, indices_in_range), src/upsample2d.cpp (nearest,
// bed of nails), src/upsample2d_bilinear_isa.cpp (one variant per instruction set,
// resample_dispatch.cpp).
// Every op works plane by plane: `planes` = N*C independent (H, W) -> (OH, OW) planes of
// C-contiguous arrays; 1-D ops run with h = oh = 1. The per-axis coordinate tables of the
// upsampling modes are computed once in Python (convkit/_shapes.py, PyTorch's formulas).
// Arguments were validated in Python (the unpooling kernels also check every index as they
// use it, see unpool2d.cpp); the coordinate tables are in range.
#pragma once
#include "common.hpp"

namespace convkit {

struct ResampleSizes {
    index_t planes;    // N * C
    index_t h, w;      // input plane
    index_t oh, ow;    // output plane
};

// Whether every one of indices[0 .. count) lies in [0, limit).
bool indices_in_range(const index_t* indices, index_t count, index_t limit);

// Max-unpooling. indices (planes, H, W): flat offsets into each OH*OW output plane, each
// checked as it is used: false when one lies outside [0, OH*OW) (it was replaced by 0, so the
// result is wrong and must be dropped; nothing outside the planes was touched).
template <class T>
bool max_unpool2d_forward(T* out, const T* x, const index_t* indices, const ResampleSizes& s);
template <class T>
bool max_unpool2d_backward(T* grad_x, const T* grad_out, const index_t* indices, const ResampleSizes& s);

// Nearest. src_h (OH), src_w (OW): non-decreasing input row/column read by each output one.
// Backward: first_h (H+1), first_w (W+1): output rows first_h[i] .. first_h[i+1]-1 read input row i.
template <class T>
void upsample_nearest2d_forward(T* out, const T* x, const index_t* src_h, const index_t* src_w,
                                const ResampleSizes& s);
template <class T>
void upsample_nearest2d_backward(T* grad_x, const T* grad_out, const index_t* first_h,
                                 const index_t* first_w, const ResampleSizes& s);

// Bed of nails: integer factors OH/H and OW/W; x[i, j] goes to out[i*fh, j*fw], zeros elsewhere.
template <class T>
void upsample_bed_of_nails2d_forward(T* out, const T* x, const ResampleSizes& s);
template <class T>
void upsample_bed_of_nails2d_backward(T* grad_x, const T* grad_out, const ResampleSizes& s);

// Bilinear. taps_h (2, OH): the two input rows of each output row, weights_h (2, OH) their
// weights (taps_h[0] non-decreasing, taps_h[1] in {taps_h[0], taps_h[0] + 1}); same along W.
template <class T>
void upsample_bilinear2d_forward(T* out, const T* x, const index_t* taps_h, const T* weights_h,
                                 const index_t* taps_w, const T* weights_w, const ResampleSizes& s);
template <class T>
void upsample_bilinear2d_backward(T* grad_x, const T* grad_out, const index_t* taps_h, const T* weights_h,
                                  const index_t* taps_w, const T* weights_w, const ResampleSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (upsample2d_bilinear_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (resample_dispatch.cpp).
#define CONVKIT_BILINEAR_INSTANTIATE(T)                                                               \
    template void upsample_bilinear2d_forward<T>(T*, const T*, const index_t*, const T*,              \
                                                 const index_t*, const T*, const ResampleSizes&);     \
    template void upsample_bilinear2d_backward<T>(T*, const T*, const index_t*, const T*,             \
                                                  const index_t*, const T*, const ResampleSizes&);

}  // namespace convkit
