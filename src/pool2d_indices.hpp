// convkit/src/pool2d_indices.hpp -- the indices of max pooling found after the values
// (included by pool2d_impl.hpp, compiled once per instruction set).
//
// With the values of a task's output rows written (the fast kernel without indices,
// pool2d_rows.hpp), the index of an output is the first element of its window, in row-major
// order, that equals it: the kernel's "greater replaces" scan keeps the first of the
// elements that tie for the maximum (-0.0 and +0.0 tie), so that is the element it picked,
// and an all -inf window gives its first element inside the input, as PyTorch. So each tap
// costs a compare and a select of the tap's offset (scanned from the last tap back, the
// first match is the one kept), with no value to carry: half the work of tracking the
// winner's row and column through both passes, and the rows are still in cache. Index arrays
// of kStreamBytes and more go out past the caches (the ResNet stem's 25 MB: 20% less time).
// A NaN equals nothing: an output without a match (a window holding a NaN) sends the task's
// rows to PyTorch's rule element by element, and so does a task whose whole-vector reads
// would leave x (the first rows of the first plane, the last rows of the last plane).
// Applies (indices_by_compare) to 2x2 / 3x3 windows, stride_w 1 or 2, no dilation, left
// padding below one vector, no window reaching into the right padding, output rows of at
// least one vector (shorter ones ran 10% slower than the kernel that tracks the winner
// through both passes, pool2d_impl.hpp), AVX-512 only (with AVX2's 8 lanes and
// two-instruction de-interleave, 17% slower on 27x27 maps, 5% faster on the stem). Planes
// without padding whose rows fit in registers (AlexNet's maps) take pool2d_short_rows.hpp,
// which tracks the winners there (2-4x faster than either).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include "pool2d_rows.hpp"
#include "streaming.hpp"

namespace convkit {
namespace CONVKIT_ISA {

inline bool indices_by_compare(const Pool2dSizes& s, index_t lanes) {
    return kVecBytes >= 64 && s.kh == s.kw && (s.kh == 2 || s.kh == 3) && (s.stride_w == 1 || s.stride_w == 2) && s.dil_h == 1 &&
           s.dil_w == 1 && s.pad_w < lanes && (s.ow - 1) * s.stride_w + s.kw - 1 - s.pad_w < s.w &&
           s.ow >= lanes && s.h * s.w <= std::numeric_limits<std::int32_t>::max();
}

// Stores v at p, past the caches where p is line_aligned (streaming.hpp).
template <class V>
inline void store_streaming(index_t* p, V v) {
    static_assert(sizeof(V) % 64 == 0 || 64 % sizeof(V) == 0, "whole lines or parts of one");
    if (sizeof(V) % 64 != 0 || !line_aligned(p)) return store(p, v);
    for (std::size_t k = 0; k < sizeof(V); k += 64)
        stream_line(reinterpret_cast<char*>(p) + k, reinterpret_cast<const char*>(&v) + k);
}

// Indices of output rows [oh0, oh1) of `plane`, whose values are in out. x_size: values in x.
// stream: indices too large to stay in cache go straight to memory (no read for ownership).
template <int S, int N, class T>
void task_indices(index_t* indices, T* out, const T* x, index_t x_size, const Pool2dSizes& s, index_t plane,
                  index_t oh0, index_t oh1, bool stream) {
    using V = typename Simd<T>::vec;
    using Lane = SameWidthInt<T>;
    using I = typename TapLanes<T, Lane>::vec;   // offsets < H*W <= INT32_MAX
    using Wide = typename TapLanes<T, index_t>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const index_t w = s.w, pw = s.pad_w, ow = s.ow;
    const T* xp = x + plane * s.h * w;
    T* yp = out + plane * s.oh * ow;
    index_t* ip = indices + plane * s.oh * ow;
    const index_t ih_lo = std::max<index_t>(0, oh0 * s.stride_h - s.pad_h);
    const index_t ih_hi = std::min(s.h, (oh1 - 1) * s.stride_h - s.pad_h + N);
    const index_t first_read = (xp - x) + ih_lo * w - pw, last_row = (xp - x) + (ih_hi - 1) * w - pw;
    // reads reach S*(j + L) + N - 1 <= S*round_up(OW, L) + L from a padded row's start
    if (first_read < 0 || x_size - last_row < row_reach(s, round_up(ow, L), S, L))
        return max_rows_exact(yp, ip, xp, s, oh0, oh1);
    I lane{};
    Wide lane_wide{};
    for (index_t i = 0; i < L; ++i) lane[i] = Lane(i), lane_wide[i] = i;
    I off[N][N];   // tap (kh, kw): its offset from the window's top-left corner
    for (int kh = 0; kh < N; ++kh)
        for (int kw = 0; kw < N; ++kw) off[kh][kw] = I{} + Lane(kh * w + kw);
    // The offset of the first tap of rows [k_lo, k_hi) equal to y, -1 if none: taps scanned
    // from the last, each match replacing. All N rows (Full) unroll; Edge: the left padding.
    const auto first_match = [&](const T* top, V y, index_t j, index_t k_lo, index_t k_hi, auto full, auto edge) {
        I t = I{} - 1;
        const index_t lo = full ? 0 : k_lo, hi = full ? N : k_hi;
#pragma GCC unroll 3
        for (index_t kh = hi - 1; kh >= lo; --kh)
#pragma GCC unroll 3
            for (int kw = N - 1; kw >= 0; --kw) {
                auto eq = tap_lanes<S, V>(top + (kh - lo) * w + kw + S * j) == y;
                if constexpr (decltype(edge)::value)   // a lane left of the input never matches
                    if (kw < pw) eq &= lane * Lane(S) + Lane(kw - pw) >= 0;
                t = eq ? off[kh][kw] : t;
            }
        return t;
    };
    I missed{};   // lanes of outputs without a match: -1
    for (index_t oh = oh0; oh < oh1; ++oh) {
        const index_t ih0 = oh * s.stride_h - s.pad_h;
        const index_t k_lo = std::max<index_t>(0, -ih0), k_hi = std::min<index_t>(N, s.h - ih0);
        const bool full = k_lo == 0 && k_hi == N;
        const T* top = xp + (ih0 + k_lo) * w - pw;   // the first window row inside the input, at j = 0
        for (index_t jb = 0; jb < ow; jb += L) {
            const index_t j = std::min(jb, ow - L);   // the last block overlaps the one before
            const V y = load<V>(yp + oh * ow + j);
            const std::true_type yes;
            const std::false_type no;
            const I t = j * S < pw ? first_match(top, y, j, k_lo, k_hi, no, yes)
                        : full     ? first_match(top, y, j, k_lo, k_hi, yes, no)
                                   : first_match(top, y, j, k_lo, k_hi, no, no);
            missed |= t < 0;
            const Wide at = lane_wide * index_t(S) + (ih0 * w - pw + S * j) + __builtin_convertvector(t, Wide);
            if (stream) store_streaming(ip + oh * ow + j, at);
            else store(ip + oh * ow + j, at);
        }
    }
    if (stream) stream_fence();
    bool miss = false;
    for (index_t i = 0; i < L; ++i) miss |= missed[i] != 0;
    if (miss) max_rows_exact(yp, ip, xp, s, oh0, oh1);
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
