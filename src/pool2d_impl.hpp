// convkit/src/pool2d_impl.hpp -- windowed max pooling (forward) and avg pooling (forward,
// backward) for one instruction set (pool2d_isa.cpp, built once per CONVKIT_ISA, includes this
// file). Max-pool backward and adaptive pooling are portable: pool2d.cpp.
//
// Forward (pool2d_rows.hpp): separable, KW taps along each input row, then KH taps down
// the row results, on full vectors without bounds tests in the loops; max pooling of short
// rows without indices: a plane at a time in registers (pool2d_short_rows.hpp).
//
// Max pooling follows PyTorch's CPU kernel: over the window's input elements in row-major
// order, an element replaces the running max when it is greater or NaN. So the first
// maximum wins ties, NaN propagates, and of several NaNs the last is reported. Padding
// (-inf) never replaces anything. The winner's row and column are tracked in integer
// lanes as wide as T and turned into the flat offset ih*W + iw at the end; when nothing
// replaced the start value (all -inf) the answer is the first window element inside the
// input, as in PyTorch (for a window wholly in the padding, possible only with dilation,
// that offset lies outside the plane, also as in PyTorch).
//
// Backward of avg pooling (phase layout, pool2d_phase.hpp): each plane's shares are added
// tap by tap into a padded, stride-de-interleaved buffer, one contiguous run per tap.
//
// Writes: out, indices and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: forward outputs are independent of each other; the backward kernel gives
// each plane of grad_x to one thread, which accumulates into it in a fixed order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#include "pool2d_avg.hpp"
#include "pool2d_indices.hpp"
#include "pool2d_short_rows.hpp"
#include "pool2d_rows.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Buffer position of every window tap, in row-major window order.
inline std::vector<index_t> tap_positions(const Pool2dSizes& s, const PhaseLayout& p) {
    std::vector<index_t> at(s.kh * s.kw);
    for (index_t t = 0; t < s.kh * s.kw; ++t) at[t] = p.at(t / s.kw * s.dil_h, t % s.kw * s.dil_w);
    return at;
}

template <class T>
void add_run(T* __restrict acc, const T* __restrict v, index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] += v[i];
}

// Tap is the integer lane type of the winner's row and column (int32 for float, int64 for double).
template <class T, class Tap>
void max_pool2d_rows(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out, indices (planes, OH, OW)
    std::vector<index_t> first_col(s.ow);   // first window column inside the input, per ow
    for (index_t ow = 0; ow < s.ow; ++ow) {
        const index_t iw0 = ow * s.stride_w - s.pad_w;
        first_col[ow] = iw0 + first_tap(iw0, s.dil_w) * s.dil_w;
    }
    const T fill = -std::numeric_limits<T>::infinity();
    constexpr index_t lanes = sizeof(typename Simd<T>::vec) / sizeof(T);
    if (max_pool2d_short_rows_apply(s, lanes, indices != nullptr)) return max_pool2d_short_rows(out, indices, x, s);
    if (!indices) {
        pool_rows<PoolKind::max_no_nan, T, Tap>(x, s, fill, out);   // rows written in place
        return;
    }
    if (indices_by_compare(s, lanes)) {   // the values, then each task's indices (pool2d_indices.hpp)
        const index_t x_size = s.planes * s.h * s.w;
        const bool stream = s.planes * s.oh * s.ow * index_t(sizeof(index_t)) >= kStreamBytes;
        pool_rows<PoolKind::max_no_nan, T, Tap>(x, s, fill, out, [&](index_t plane, index_t oh0, index_t oh1, auto S, auto N) {
            if constexpr (decltype(N)::value != 0)
                task_indices<decltype(S)::value, decltype(N)::value>(indices, out, x, x_size, s, plane, oh0, oh1,
                                                                     stream);
        });
        return;
    }
    pool_rows<PoolKind::max_indices_no_nan, T, Tap>(x, s, fill, [&](index_t plane, index_t oh, const T* yv,
                                                                    const Tap* __restrict yr, const Tap* __restrict yc) {
        const index_t o = (plane * s.oh + oh) * s.ow, ih0 = oh * s.stride_h - s.pad_h;
        const index_t first = (ih0 + first_tap(ih0, s.dil_h) * s.dil_h) * s.w;   // the first window row inside
        copy_stored(out + o, yv, s.ow);
        index_t* __restrict idx = indices + o;
        const index_t* __restrict miss_col = first_col.data();
        const index_t w = s.w, n = s.ow;   // locals: idx (index_t) could alias s.w and s.ow
        for (index_t ow = 0; ow < n; ++ow) {   // both branches computed: the loop vectorises
            const index_t hit = index_t(yr[ow]) * w + yc[ow], miss = first + miss_col[ow];
            idx[ow] = yr[ow] >= 0 ? hit : miss;
        }
    });
}

template <class T>
void max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // int32 rows and columns keep the float lanes and the integer lanes the same width
    constexpr index_t kInt32 = std::numeric_limits<std::int32_t>::max();
    if (sizeof(T) == 4 && s.h + s.pad_h <= kInt32 && padded_width(s) <= kInt32)
        max_pool2d_rows<T, std::int32_t>(out, indices, x, s);
    else
        max_pool2d_rows<T, std::int64_t>(out, indices, x, s);
}

// PyTorch's avg-pool divisor, one axis: the window [start, start + k) clipped to the padded
// input [-pad, n + pad) when padding counts, else to the input [0, n).
inline index_t pool_extent(index_t start, index_t k, index_t n, index_t pad, bool count_pad) {
    return count_pad ? std::min(start + k, n + pad) - start
                     : std::min(start + k, n) - std::max<index_t>(start, 0);
}

// Divisor of every output column (or 1 with divisor_override, applied per row instead).
inline std::vector<index_t> column_divisors(const Pool2dSizes& s) {
    std::vector<index_t> d(s.ow, 1);
    if (!s.divisor_override)
        for (index_t ow = 0; ow < s.ow; ++ow)
            d[ow] = pool_extent(ow * s.stride_w - s.pad_w, s.kw, s.w, s.pad_w, s.count_include_pad);
    return d;
}

inline index_t row_divisor(const Pool2dSizes& s, index_t oh) {
    return s.divisor_override ? s.divisor_override
                              : pool_extent(oh * s.stride_h - s.pad_h, s.kh, s.h, s.pad_h, s.count_include_pad);
}

template <class T>
void avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW): window sums (in T, as PyTorch) / divisor
    if (avg_pool2d_tiled(out, x, s)) return;   // kernel == stride, no padding (pool2d_avg.hpp)
    using Tap = SameWidthInt<T>;
    const std::vector<index_t> col_div = column_divisors(s);
    // The divisor row_div * col_div as T(row_div) * T(col_div) (vectorises; int64 -> T does
    // not): the same value while the integer product, at most KH*KW, is exact in T.
    const bool split_exact = s.divisor_override || s.kh * s.kw <= (index_t(1) << std::numeric_limits<T>::digits);
    std::vector<T> col_div_t(col_div.begin(), col_div.end());
    pool_rows<PoolKind::sum, T, Tap>(x, s, T(0), [&](index_t plane, index_t oh, const T* acc, const Tap*, const Tap*) {
        const index_t div = row_divisor(s, oh);
        T* __restrict y = out + (plane * s.oh + oh) * s.ow;
        if (split_exact)
            for (index_t ow = 0; ow < s.ow; ++ow) y[ow] = acc[ow] / (T(div) * col_div_t[ow]);
        else
            for (index_t ow = 0; ow < s.ow; ++ow) y[ow] = acc[ow] / T(div * col_div[ow]);
    });
}

template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): each output's share, grad/divisor,
    // is added to every input of its window. Per plane: the shares laid out as outputs
    // j = oh*len + ow (0 in the extra columns), added tap by tap into a zeroed phase buffer
    // (the forward's reads, reversed), which is then copied out without its padding.
    const int nt = num_threads();
    const PhaseLayout p(s, std::max(rows_read(s, s.oh), s.pad_h + s.h), padded_width(s));
    const std::vector<index_t> tap_at = tap_positions(s, p), col_div = column_divisors(s);
    const PhaseRuns runs(p, s.w);
    const index_t n = (s.oh - 1) * p.len + s.ow;
    std::vector<AlignedBuffer<T>> bufs, shares;
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(p.size));
        shares.push_back(aligned_buffer<T>(s.oh * p.len));
        std::fill_n(shares.back().get(), s.oh * p.len, T(0));
    }
#pragma omp parallel num_threads(nt)
    {
        T* buf = bufs[thread_index()].get();
        T* share = shares[thread_index()].get();
#pragma omp for schedule(dynamic)
        for (index_t plane = 0; plane < s.planes; ++plane) {
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const T* gy = grad_out + (plane * s.oh + oh) * s.ow;
                const index_t div = row_divisor(s, oh);
                for (index_t ow = 0; ow < s.ow; ++ow) share[oh * p.len + ow] = gy[ow] / T(div * col_div[ow]);
            }
            std::fill_n(buf, p.size, T(0));
            for (const index_t at : tap_at) add_run(buf + at, share, n);
            load_plane(grad_x + plane * s.h * s.w, buf, s, p, runs);
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
