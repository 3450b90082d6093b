// convkit/src/pool2d_short_rows.hpp -- max pooling without indices of planes whose rows fit in
// one or two vectors (AlexNet's 13x13 and 27x27 maps, 7x7), a plane at a time in registers
// (included by pool2d_impl.hpp, compiled once per instruction set).
//
// The separable kernel (pool2d_rows.hpp) stores its row results and reads them back; at these
// sizes that store/load traffic and the per-row bookkeeping cost more than the maxima. Here
// each input row is read once, straight from x, as B vectors (B = 1 or 2; the lanes past W
// read on into the next row and are never picked):
//   along W   the window max at every column of the row (K taps at +0 .. +K-1, one max each),
//   down H    the max of the K row results of an output row's window, kept in registers
//             (a window of K rows slides down by S: only S new rows per output row),
//   pick      stride 2: the even lanes (one permute), stride 1: the lanes as they are.
// The scans run along each row, then down, each with "greater replaces" (one max instruction),
// so ties go to the first maximum in row-major window order, sign of zero included, as in
// PyTorch. Every input row an output reads is added into a probe while it is loaded; a plane
// whose probe is NaN (a NaN in it, or inf - inf: a false alarm) runs PyTorch's rule element by
// element instead, and so does a plane whose whole-vector reads would pass the end of x (the
// last plane, at most).
// Output rows are stored as whole vectors in order, the lanes past OW landing in the plane's
// next row, which is written after; rows whose store would pass the plane go through a copy.
// Applies (short_rows_apply) to square 2x2 / 3x3 windows, equal strides 1 or 2, no padding, no
// dilation, every window inside the plane, W <= 2 vectors.
// Writes: out is fully OVERWRITTEN. Planes are independent: any thread count, same bits.
#pragma once
#include <algorithm>
#include <limits>
#include "pool2d_rows.hpp"

namespace convkit {
namespace CONVKIT_ISA {

constexpr index_t kMaxVecs = 8;   // vectors per row at most

inline bool short_rows_apply(const Pool2dSizes& s, index_t lanes) {
    const index_t k = s.kh, st = s.stride_h;
    return s.kw == k && (k == 2 || k == 3) && s.stride_w == st && (st == 1 || st == 2) && s.pad_h == 0 &&
           s.pad_w == 0 && s.dil_h == 1 && s.dil_w == 1 && (s.oh - 1) * st + k <= s.h &&
           (s.ow - 1) * st + k <= s.w && s.w <= kMaxVecs * lanes;
}

// B vectors: one input row's window maxima, or one output row's.
template <class V, int B> struct RowVecs { V v[B]; };

template <int S, int K, int B, class T>
void max_pool2d_short_rows_as(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW)
    using V = typename Simd<T>::vec;
    using R = RowVecs<V, B>;
    constexpr index_t L = sizeof(V) / sizeof(T);
    constexpr int NO = S == 2 ? (B + 1) / 2 : B;   // output vectors per row
    const index_t w = s.w, hw = s.h * w, ow = s.ow, ohw = s.oh * ow;
    // the rows that can be stored as whole vectors (their spill stays inside the plane)
    const index_t whole_rows = ohw < NO * L ? 0 : std::min(s.oh, (ohw - NO * L) / ow + 1);
    // a plane's reads end here (relative to its start): the last window row's last vector + K-1
    const index_t reach = ((s.oh - 1) * S + K - 1) * w + B * L + K - 1;
    const index_t safe_planes = s.planes * hw >= reach ? (s.planes * hw - reach) / hw + 1 : 0;
    const int nt = num_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, std::max<index_t>(1, s.planes / (64 * static_cast<index_t>(nt))))
    for (index_t plane = 0; plane < s.planes; ++plane) {
        const T* xp = x + plane * hw;
        T* yp = out + plane * ohw;
        if (plane >= safe_planes) {
            max_rows_exact(yp, nullptr, xp, s, 0, s.oh);
            continue;
        }
        V probe{};
        const auto along = [&](index_t ih) {   // window maxima at every column of input row ih
            V v[B];
            for (int b = 0; b < B; ++b) probe += v[b] = load<V>(xp + ih * w + b * L);
            if constexpr (B > 1) prefetch(xp + hw + ih * w, w);   // the thread's next plane, most often
            R r;
            for (int b = 0; b < B; ++b)   // the last vector's own lanes suffice for its taps (W <= B*L)
                r.v[b] = window_max_shifted<K>(v[b], v[std::min(b + 1, B - 1)]);
            return r;
        };
        R win[K];   // the row results of the current output row's window, top first
#pragma GCC unroll 3
        for (int k = 0; k < K; ++k) win[k] = along(k);
        for (index_t oh = 0;;) {
            R m = win[0];
#pragma GCC unroll 3
            for (int k = 1; k < K; ++k)
                for (int b = 0; b < B; ++b) m.v[b] = win[k].v[b] > m.v[b] ? win[k].v[b] : m.v[b];
            V y[NO];
            for (int i = 0; i < NO; ++i)
                y[i] = S == 1 ? m.v[i] : even_lanes(m.v[2 * i], m.v[std::min(2 * i + 1, B - 1)]);
            T* yr = yp + oh * ow;
            if (oh < whole_rows) {
                for (int b = 0; b < NO; ++b) store(yr + b * L, y[b]);
            } else {
                alignas(sizeof(V)) T row[NO * L];
                for (int b = 0; b < NO; ++b) store(row + b * L, y[b]);
                copy_stored(yr, row, ow);
            }
            if (++oh == s.oh) break;
#pragma GCC unroll 3
            for (int k = 0; k < K; ++k) win[k] = k + S < K ? win[k + S] : along(oh * S + k);
        }
        if (any_nan(probe)) max_rows_exact(yp, nullptr, xp, s, 0, s.oh);
    }
}

// Runs the kernel for the window, stride and row length of s (short_rows_apply(s, L) holds).
template <int B, class T>
void max_pool2d_short_rows_b(T* out, const T* x, const Pool2dSizes& s) {
    const bool two = s.stride_h == 2, k3 = s.kh == 3;
    if (two) return k3 ? max_pool2d_short_rows_as<2, 3, B>(out, x, s) : max_pool2d_short_rows_as<2, 2, B>(out, x, s);
    return k3 ? max_pool2d_short_rows_as<1, 3, B>(out, x, s) : max_pool2d_short_rows_as<1, 2, B>(out, x, s);
}
template <class T>
void max_pool2d_short_rows(T* out, const T* x, const Pool2dSizes& s) {
    constexpr index_t L = sizeof(typename Simd<T>::vec) / sizeof(T);
    switch (ceil_div(s.w, L)) {
        case 1: return max_pool2d_short_rows_b<1>(out, x, s);
        case 2: return max_pool2d_short_rows_b<2>(out, x, s);
        case 3: return max_pool2d_short_rows_b<3>(out, x, s);
        case 4: return max_pool2d_short_rows_b<4>(out, x, s);
        case 5: return max_pool2d_short_rows_b<5>(out, x, s);
        case 6: return max_pool2d_short_rows_b<6>(out, x, s);
        case 7: return max_pool2d_short_rows_b<7>(out, x, s);
        default: return max_pool2d_short_rows_b<8>(out, x, s);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
