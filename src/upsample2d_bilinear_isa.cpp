// convkit/src/upsample2d_bilinear_isa.cpp -- bilinear upsampling forward and backward,
// compiled once per instruction set (CMakeLists.txt: -DCONVKIT_ISA=generic|avx2|avx512;
// resample_dispatch.cpp picks one at run time): the loops below are plain C++ that the
// compiler vectorises, so the width is the instruction set's (the SSE baseline made the
// backward instruction-bound: 2x slower than a copy of its bytes).
//
// Separable: per plane out = A_h x A_w^T, where A_h (OH x H) and A_w (OW x W) have two taps
// per row (PyTorch's source indices and weights, tables from convkit/_shapes.py).
//   forward   each input row is interpolated along W into a "wide" row (OW), then every
//             output row blends two wide rows;
//   backward  grad_x = A_h^T grad_out A_w: for each input row, the output rows that read it
//             (a contiguous range per tap) are summed with their weights into one OW-wide
//             row, which is then sent back along W.
// An axis scaled by exactly 2 (U-Net / FCN decoders) repeats one pattern of taps inside the
// edges; that interior runs as vectorisable loops, the edges and other factors generically.
//
// Writes: out and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: threads split the planes; every sum inside a plane runs in a fixed order.
// Backward sums are accumulated in T while each has few terms (both factors <= 8: at most
// about 18 per axis), in double beyond.
#include <algorithm>
#include <vector>
#include "resample.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace {

// The taps of one axis: output o = w0[o] * in[t0[o]] + w1[o] * in[t1[o]]. For a doubling,
// outputs 2k + r (r = 0, 1; k in [k0, k1)) read in[k + d[r]] and in[k + d[r] + 1] with
// weights a[r], b[r]; k0 == k1 when there is no such interior.
template <class T>
struct AxisTaps {
    const index_t *t0, *t1;
    const T *w0, *w1;
    index_t n_in, n_out;
    index_t k0 = 0, k1 = 0, d[2] = {0, 0};
    T a[2] = {T(0), T(0)}, b[2] = {T(0), T(0)};
};

template <class T>
AxisTaps<T> axis_taps(const index_t* taps, const T* weights, index_t n_in, index_t n_out) {
    AxisTaps<T> ax{taps, taps + n_out, weights, weights + n_out, n_in, n_out};
    if (n_out != 2 * n_in || n_in < 3) return ax;
    const index_t mid = n_in / 2;   // the pattern is read off the middle pair of outputs
    for (int r = 0; r < 2; ++r) {
        ax.d[r] = ax.t0[2 * mid + r] - mid;
        ax.a[r] = ax.w0[2 * mid + r];
        ax.b[r] = ax.w1[2 * mid + r];
    }
    auto follows_pattern = [&](index_t k) {
        for (int r = 0; r < 2; ++r) {
            const index_t o = 2 * k + r;
            if (ax.t0[o] != k + ax.d[r] || ax.t1[o] != k + ax.d[r] + 1 || ax.w0[o] != ax.a[r] ||
                ax.w1[o] != ax.b[r])
                return false;
        }
        return true;
    };
    if (!follows_pattern(mid)) return ax;
    index_t k0 = mid, k1 = mid + 1;
    while (k0 > 0 && follows_pattern(k0 - 1)) --k0;
    while (k1 < n_in && follows_pattern(k1)) ++k1;
    ax.k0 = k0;
    ax.k1 = k1;
    return ax;
}

// wide (n_out) = one input row (n_in) interpolated along the axis.
template <class T>
void interpolate_row(T* __restrict wide, const T* __restrict row, const AxisTaps<T>& ax) {
    auto generic = [&](index_t o0, index_t o1) {
        for (index_t o = o0; o < o1; ++o) wide[o] = ax.w0[o] * row[ax.t0[o]] + ax.w1[o] * row[ax.t1[o]];
    };
    generic(0, 2 * ax.k0);
    const index_t d0 = ax.d[0], d1 = ax.d[1];
    const T a0 = ax.a[0], b0 = ax.b[0], a1 = ax.a[1], b1 = ax.b[1];
    for (index_t k = ax.k0; k < ax.k1; ++k) {
        wide[2 * k] = a0 * row[k + d0] + b0 * row[k + d0 + 1];
        wide[2 * k + 1] = a1 * row[k + d1] + b1 * row[k + d1 + 1];
    }
    generic(2 * ax.k1, ax.n_out);
}

// row (n_in) = the transpose of interpolate_row applied to wide (n_out); acc: n_in scratch.
// Inputs reached only by the doubling's interior (all but a few at each edge) are gathered
// in one pass, their four terms added in the order of the edge code below; the edges
// scatter into acc (one loop per tap: a scatter pass per tap over the whole row made each
// pass reload values the previous one had just stored one lane over, which stalls).
template <class T, class Acc>
void scatter_row(T* __restrict row, Acc* __restrict acc, const Acc* __restrict wide, const AxisTaps<T>& ax) {
    const index_t d0 = ax.d[0], d1 = ax.d[1];
    // [i_lo, i_hi): inputs whose four interior taps exist and that no edge output reads
    index_t i_lo = ax.k0 + std::max(d0, d1) + 1, i_hi = ax.k1 + std::min(d0, d1);
    if (ax.k0 > 0) i_lo = std::max(i_lo, ax.t1[2 * ax.k0 - 1] + 1);
    if (2 * ax.k1 < ax.n_out) i_hi = std::min(i_hi, ax.t0[2 * ax.k1]);
    if (ax.k0 == ax.k1 || i_lo >= i_hi) i_lo = i_hi = ax.n_in;
    {
        const Acc a0 = ax.a[0], b0 = ax.b[0], a1 = ax.a[1], b1 = ax.b[1];
        const Acc *e_a = wide - 2 * d0, *e_b = wide - 2 * d0 - 2, *o_a = wide - 2 * d1 + 1, *o_b = wide - 2 * d1 - 1;
        for (index_t i = i_lo; i < i_hi; ++i) {   // wide[2k + r] for the k with k + d (+ 1) == i
            Acc v = a0 * e_a[2 * i];
            v += b0 * e_b[2 * i];
            v += a1 * o_a[2 * i];
            v += b1 * o_b[2 * i];
            row[i] = T(v);
        }
    }
    // the few edge inputs, one by one (as loops GCC turns these into memset / memmove calls,
    // which cost more than the copies)
    auto each_edge = [&](auto&& f) {
        for (index_t i = i_lo == 0 ? i_hi : 0; i < ax.n_in; i = i + 1 == i_lo ? i_hi : i + 1) {
            f(i);
            asm volatile("" ::: "memory");
        }
    };
    each_edge([&](index_t i) { acc[i] = Acc(0); });
    auto generic = [&](index_t o0, index_t o1) {
        for (index_t o = o0; o < o1; ++o) {
            acc[ax.t0[o]] += Acc(ax.w0[o]) * wide[o];
            acc[ax.t1[o]] += Acc(ax.w1[o]) * wide[o];
        }
    };
    // one tap of one phase: acc[k + e] += c * wide[2k + r] for the k whose k + e is an edge input
    auto edge_tap = [&](int r, index_t e, Acc c) {
        for (index_t k = ax.k0; k < std::min(ax.k1, i_lo - e); ++k) acc[k + e] += c * wide[2 * k + r];
        for (index_t k = std::max(ax.k0, i_hi - e); k < ax.k1; ++k) acc[k + e] += c * wide[2 * k + r];
    };
    generic(0, 2 * ax.k0);
    for (int r = 0; r < 2; ++r) {
        edge_tap(r, ax.d[r], ax.a[r]);
        edge_tap(r, ax.d[r] + 1, ax.b[r]);
    }
    generic(2 * ax.k1, ax.n_out);
    each_edge([&](index_t i) { row[i] = T(acc[i]); });
}

// first[i] (n_in + 1 entries): the first output o with t[o] >= i, t non-decreasing; the
// outputs reading input i through this tap are first[i] .. first[i+1]-1.
std::vector<index_t> tap_ranges(const index_t* t, index_t n_in, index_t n_out) {
    std::vector<index_t> first(n_in + 1);
    for (index_t i = 0, o = 0; i <= n_in; ++i) {
        while (o < n_out && t[o] < i) ++o;
        first[i] = o;
    }
    return first;
}

template <class T, class Acc>
void bilinear_backward(T* grad_x, const T* grad_out, const AxisTaps<T>& ah, const AxisTaps<T>& aw,
                       const ResampleSizes& s) {
    const std::vector<index_t> first0 = tap_ranges(ah.t0, s.h, s.oh), first1 = tap_ranges(ah.t1, s.h, s.oh);
    const int nt = num_threads();
    const index_t ow_pad = round_up(s.ow, 16);
    std::vector<AlignedBuffer<Acc>> scratch;
    for (int t = 0; t < nt; ++t) scratch.push_back(aligned_buffer<Acc>(ow_pad + s.w));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t p = 0; p < s.planes; ++p) {
        const T* gy = grad_out + p * s.oh * s.ow;
        T* gx = grad_x + p * s.h * s.w;
        Acc* __restrict wide = scratch[thread_index()].get();   // input row ih, still OW wide
        Acc* row_acc = wide + ow_pad;
        for (index_t ih = 0; ih < s.h; ++ih) {
            // output rows reading row ih: [a0, a1) through their first tap, [b0, b1) their second
            const index_t a0 = first0[ih], a1 = first0[ih + 1], b0 = first1[ih], b1 = first1[ih + 1];
            T* grow = gx + ih * s.w;
            if (p + 1 < s.planes)   // the thread's next plane (static split): every output row once
                prefetch(gy + (s.oh + a0) * s.ow, (a1 - a0) * s.ow);   // (without: 2.6x the time)
            if (a0 == a1 && b0 == b1) {
                std::fill(grow, grow + s.w, T(0));
                continue;
            }
            if (a1 - a0 == 2 && b1 - b0 == 2) {   // a doubling's interior, in one pass
                const T *g0 = gy + a0 * s.ow, *g1 = g0 + s.ow, *g2 = gy + b0 * s.ow, *g3 = g2 + s.ow;
                const Acc c0 = ah.w0[a0], c1 = ah.w0[a0 + 1], c2 = ah.w1[b0], c3 = ah.w1[b0 + 1];
                for (index_t ow = 0; ow < s.ow; ++ow)
                    wide[ow] = c0 * Acc(g0[ow]) + c1 * Acc(g1[ow]) + c2 * Acc(g2[ow]) + c3 * Acc(g3[ow]);
            } else {
                std::fill(wide, wide + s.ow, Acc(0));
                for (index_t oh = a0; oh < a1; ++oh) {
                    const T* __restrict g = gy + oh * s.ow;
                    const Acc c = ah.w0[oh];
                    for (index_t ow = 0; ow < s.ow; ++ow) wide[ow] += c * Acc(g[ow]);
                }
                for (index_t oh = b0; oh < b1; ++oh) {
                    const T* __restrict g = gy + oh * s.ow;
                    const Acc c = ah.w1[oh];
                    for (index_t ow = 0; ow < s.ow; ++ow) wide[ow] += c * Acc(g[ow]);
                }
            }
            scatter_row(grow, row_acc, wide, aw);
        }
    }
}

}  // namespace

// out (planes, OH, OW)[p, oh] = wh0[oh] * wide(th0[oh]) + wh1[oh] * wide(th1[oh]), where
// wide(i) is input row i of x (planes, H, W) interpolated along W. The two most recent wide
// rows are kept, so each is computed about once per plane.
template <class T>
void upsample_bilinear2d_forward(T* out, const T* x, const index_t* taps_h, const T* weights_h,
                                 const index_t* taps_w, const T* weights_w, const ResampleSizes& s) {
    const AxisTaps<T> ah = axis_taps(taps_h, weights_h, s.h, s.oh);
    const AxisTaps<T> aw = axis_taps(taps_w, weights_w, s.w, s.ow);
    const int nt = num_threads();
    std::vector<AlignedBuffer<T>> scratch;
    for (int t = 0; t < nt; ++t) scratch.push_back(aligned_buffer<T>(2 * round_up(s.ow, 16)));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t p = 0; p < s.planes; ++p) {
        const T* xp = x + p * s.h * s.w;
        T* op = out + p * s.oh * s.ow;
        T* slot[2] = {scratch[thread_index()].get(), scratch[thread_index()].get() + round_up(s.ow, 16)};
        index_t held[2] = {-1, -1};   // input row held by each slot
        auto wide = [&](index_t ih, index_t keep) -> const T* {   // never evicts row `keep`
            if (held[0] == ih) return slot[0];
            if (held[1] == ih) return slot[1];
            const int k = held[0] == keep ? 1 : 0;
            interpolate_row(slot[k], xp + ih * s.w, aw);
            held[k] = ih;
            return slot[k];
        };
        for (index_t oh = 0; oh < s.oh; ++oh) {
            const T* __restrict r0 = wide(ah.t0[oh], ah.t1[oh]);
            const T* __restrict r1 = wide(ah.t1[oh], ah.t0[oh]);
            const T a0 = ah.w0[oh], a1 = ah.w1[oh];
            T* __restrict orow = op + oh * s.ow;
            for (index_t ow = 0; ow < s.ow; ++ow) orow[ow] = a0 * r0[ow] + a1 * r1[ow];
        }
    }
}

// grad_x (planes, H, W) of upsample_bilinear2d_forward from grad_out (planes, OH, OW).
template <class T>
void upsample_bilinear2d_backward(T* grad_x, const T* grad_out, const index_t* taps_h, const T* weights_h,
                                  const index_t* taps_w, const T* weights_w, const ResampleSizes& s) {
    const AxisTaps<T> ah = axis_taps(taps_h, weights_h, s.h, s.oh);
    const AxisTaps<T> aw = axis_taps(taps_w, weights_w, s.w, s.ow);
    if (s.oh > 8 * s.h || s.ow > 8 * s.w)   // long sums: accumulate in double
        bilinear_backward<T, double>(grad_x, grad_out, ah, aw, s);
    else
        bilinear_backward<T, T>(grad_x, grad_out, ah, aw, s);
}

CONVKIT_BILINEAR_INSTANTIATE(float)
CONVKIT_BILINEAR_INSTANTIATE(double)

}  // namespace CONVKIT_ISA
}  // namespace convkit
