// convkit/src/pool2d_flat.hpp -- max pooling without indices of planes with short rows, each
// plane as one flat row (included by pool2d_impl.hpp, compiled once per instruction set).
//
// Rows of at most one vector leave the separable kernel (pool2d_rows.hpp) mostly per-row
// bookkeeping and partial vectors. Here a plane is copied into a buffer (probed for NaN on
// the way) and treated as one long row:
//   along W   the window max at every flat position p (taps p .. p + K-1, one max each),
//   down H    the max of those at p, p + W, ... (K taps, one max each), every flat position,
//   pick      output (oh, ow) is position oh*S*W + ow*S (S = 2: the even lanes of two loads).
// Positions whose window would wrap into the next row (or past the plane) are computed but
// never picked. The scan order is the separable kernel's -- along each row, then down -- so
// ties go to the first maximum in row-major window order, as PyTorch; a plane holding a
// NaN runs PyTorch's rule element by element instead.
// Applies (flat_applies) to square 2x2 / 3x3 windows, equal strides 1 or 2, no padding, no
// dilation, every window inside the plane, rows of at most one vector: 7x7 -> 3x3 takes 20%
// less time than the separable kernel, whose rows read in place were as fast at 13x13 and
// faster at 14x14 and 27x27 (bench/RESULTS.md).
// Writes: out is fully OVERWRITTEN. Planes are independent: any thread count, same bits.
#pragma once
#include <algorithm>
#include <limits>
#include <vector>
#include "pool2d_rows.hpp"

namespace convkit {
namespace CONVKIT_ISA {

inline bool flat_applies(const Pool2dSizes& s, index_t lanes) {
    const index_t k = s.kh, st = s.stride_h;
    return s.kw == k && (k == 2 || k == 3) && s.stride_w == st && (st == 1 || st == 2) && s.pad_h == 0 &&
           s.pad_w == 0 && s.dil_h == 1 && s.dil_w == 1 && (s.oh - 1) * st + k <= s.h &&
           (s.ow - 1) * st + k <= s.w && s.w <= lanes;
}

// PyTorch's rule (greater or NaN replaces), element by element: planes that hold a NaN.
template <int S, int N, class T>
void max_plane_exact(T* __restrict y, const T* __restrict xp, const Pool2dSizes& s) {
    for (index_t oh = 0; oh < s.oh; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow) {
            T m = -std::numeric_limits<T>::infinity();
            for (index_t kh = 0; kh < N; ++kh)
                for (index_t kw = 0; kw < N; ++kw) {
                    const T v = xp[(oh * S + kh) * s.w + ow * S + kw];
                    if (v > m || v != v) m = v;
                }
            y[oh * s.ow + ow] = m;
        }
}

template <int S, int N, class T>
void max_pool2d_flat_as(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW)
    using V = typename Simd<T>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const index_t hw = s.h * s.w, ohw = s.oh * s.ow;
    const index_t n_down = round_up((s.oh - 1) * S * s.w + (s.ow - 1) * S + 1, L);   // through the last picked
    const index_t n_along = round_up(n_down + (N - 1) * s.w, L);                    // what down reads
    const index_t n_flat = round_up(std::max(hw, n_along + N), L);                  // what along reads
    struct Scratch { AlignedBuffer<T> flat, along, down, y; };
    const int nt = num_threads();
    std::vector<Scratch> scratch(nt);
    for (auto& b : scratch) {   // filled once: the values past the plane only reach unpicked positions
        b.flat = aligned_buffer<T>(n_flat), b.along = aligned_buffer<T>(n_along);
        b.down = aligned_buffer<T>(n_down + 2 * L), b.y = aligned_buffer<T>(ohw + 2 * L);
        std::fill_n(b.flat.get(), n_flat, -std::numeric_limits<T>::infinity());
        std::fill_n(b.down.get(), n_down + 2 * L, T(0));
    }
#pragma omp parallel num_threads(nt)
    {
        Scratch& b = scratch[thread_index()];
        T *flat = b.flat.get(), *along = b.along.get(), *down = b.down.get(), *y = b.y.get();
#pragma omp for schedule(dynamic, std::max<index_t>(1, s.planes / (64 * static_cast<index_t>(nt))))
        for (index_t plane = 0; plane < s.planes; ++plane) {
            const T* xp = x + plane * hw;
            T* yp = out + plane * ohw;
            V probe{};
            copy_short(flat, xp, hw, &probe);
            if (any_nan(probe)) {
                max_plane_exact<S, N>(yp, xp, s);
                continue;
            }
            for (index_t p = 0; p < n_along; p += L) store(along + p, window_max<V>(flat + p, N, 1));
            for (index_t p = 0; p < n_down; p += L) store(down + p, window_max<V>(along + p, N, s.w));
            // each output row as whole vectors, in order: a row's extra lanes land where the
            // next row (or the buffer's slack) is written next
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const T* row = down + oh * S * s.w;
                for (index_t ow = 0; ow < s.ow; ow += L) {
                    if constexpr (S == 1) store(y + oh * s.ow + ow, load<V>(row + ow));
                    else store(y + oh * s.ow + ow, even_lanes(load<V>(row + 2 * ow), load<V>(row + 2 * ow + L)));
                }
            }
            copy_short(yp, y, ohw);
        }
    }
}

// Runs max_pool2d_flat for the window and stride of s (flat_applies(s) holds).
template <class T>
void max_pool2d_flat(T* out, const T* x, const Pool2dSizes& s) {
    const bool two = s.stride_h == 2, k3 = s.kh == 3;
    if (two) return k3 ? max_pool2d_flat_as<2, 3>(out, x, s) : max_pool2d_flat_as<2, 2>(out, x, s);
    return k3 ? max_pool2d_flat_as<1, 3>(out, x, s) : max_pool2d_flat_as<1, 2>(out, x, s);
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
