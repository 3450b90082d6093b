// Shared by conv2d.cu and depthwise.cu: the conv sizes every conv kernel receives, mixed-radix
// counters that step a flat index through (hi, mid, lo) digits without dividing, and the
// one-element backward-data gather of the direct kernels.
#pragma once
#include "common.cuh"

// The sixteen `long long` size parameters of every conv kernel, in the order of
// convkit/gpu/conv.py::_sizes (the field order of src/common.hpp's Conv2dSizes).
#define CK_CONV_SIZE_PARAMS                                                             \
    long long n, long long c_in, long long h, long long w, long long c_out, long long kh, \
    long long kw, long long oh, long long ow, long long stride_h, long long stride_w,    \
    long long pad_h, long long pad_w, long long dil_h, long long dil_w, long long groups
#define CK_CONV_SIZES                                                                   \
    ConvSizes(n, c_in, h, w, c_out, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w,     \
              dil_h, dil_w, groups)

// Input (N, C_in, H, W), weight (C_out, C_in/G, KH, KW), output (N, C_out, OH, OW). The
// output size is given, not derived: a transposed conv's adjoint may have fewer output rows
// than the conv formula (output_padding >= stride), so every kernel bounds-checks reads.
struct ConvSizes {
    index_t n, c_in, h, w, c_out, kh, kw, oh, ow, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    index_t cig, cog;        // channels per group: C_in/G, C_out/G
    index_t hw, ohw, khw;    // plane sizes: H*W, OH*OW, KH*KW

    __device__ ConvSizes(index_t n_, index_t c_in_, index_t h_, index_t w_, index_t c_out_,
                         index_t kh_, index_t kw_, index_t oh_, index_t ow_, index_t sh_,
                         index_t sw_, index_t ph_, index_t pw_, index_t dh_, index_t dw_, index_t g_)
        : n(n_), c_in(c_in_), h(h_), w(w_), c_out(c_out_), kh(kh_), kw(kw_), oh(oh_), ow(ow_),
          stride_h(sh_), stride_w(sw_), pad_h(ph_), pad_w(pw_), dil_h(dh_), dil_w(dw_), groups(g_),
          cig(c_in_ / g_), cog(c_out_ / g_), hw(h_ * w_), ohw(oh_ * ow_), khw(kh_ * kw_) {}
};

// A flat index v as digits (hi, mid, lo) of the radix (-, mid_radix, lo_radix), e.g. a
// weight column k = (channel, kernel row, kernel column). `advance` adds a constant step
// (given as digits too) with at most one carry per digit, so walking a GEMM's K dimension
// BK at a time costs a few compares instead of two 64-bit divisions per element.
struct Digits3 {
    index_t hi, mid, lo;

    __device__ static Digits3 of(index_t v, index_t mid_radix, index_t lo_radix) {
        Digits3 d;
        d.lo = v % lo_radix;
        v /= lo_radix;
        d.mid = v % mid_radix;
        d.hi = v / mid_radix;
        return d;
    }

    __device__ void advance(const Digits3& step, index_t mid_radix, index_t lo_radix) {
        lo += step.lo;
        if (lo >= lo_radix) { lo -= lo_radix; ++mid; }
        mid += step.mid;
        if (mid >= mid_radix) { mid -= mid_radix; ++hi; }
        hi += step.hi;
    }
};

__device__ inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// 0 <= i < size, in one unsigned compare.
__device__ inline bool inside(index_t i, index_t size) {
    return (unsigned long long)i < (unsigned long long)size;
}

// For a gather through a strided window: is t = stride * q for some q >= 0 (q returned)?
__device__ inline bool stride_multiple(index_t t, index_t stride, index_t& q) {
    if (stride == 1) { q = t; return t >= 0; }
    q = t / stride;
    return t >= 0 && q * stride == t;
}

// grad_x[img, g * Cig + c, ih, iw] of a conv, as a GATHER in a fixed order: over the group's
// output channels co = g * Cog + m and the taps (r, q) whose output position reads this input,
// oh * stride_h = ih + pad_h - r * dil_h (ow alike, skipped where not a multiple or out of
// range), the sum of grad_out[img, co, oh, ow] * weight[co, c, r, q]. One thread per grad_x
// element: conv2d_backward_data_v1 (any conv) and depthwise_conv2d_backward_data (Cig = 1, g = ci).
template <typename T>
__device__ __forceinline__ T gather_grad_x(const T* grad_out, const T* weight, const ConvSizes& s, index_t img,
                                           index_t g, index_t c, index_t ih, index_t iw) {
    T acc = T(0);
    for (index_t m = 0; m < s.cog; ++m) {
        const index_t co = g * s.cog + m;
        const T* plane = grad_out + (img * s.c_out + co) * s.ohw;
        const T* taps = weight + (co * s.cig + c) * s.khw;
        for (index_t r = 0; r < s.kh; ++r) {
            index_t oh;
            if (!stride_multiple(ih + s.pad_h - r * s.dil_h, s.stride_h, oh) || oh >= s.oh) continue;
            for (index_t q = 0; q < s.kw; ++q) {
                index_t ow;
                if (stride_multiple(iw + s.pad_w - q * s.dil_w, s.stride_w, ow) && ow < s.ow)
                    acc += __ldg(&plane[oh * s.ow + ow]) * __ldg(&taps[r * s.kw + q]);
            }
        }
    }
    return acc;
}
