// convkit/src/pool2d.cpp -- portable pooling kernels: max-pool backward (a scatter through the
// saved indices; also serves adaptive max pooling) and adaptive average / max pooling.
//
// Adaptive bins: output i of an axis with In inputs and Out outputs covers
// [floor(i*In/Out), ceil((i+1)*In/Out)) (PyTorch's rule; neighbouring bins may overlap).
// Adaptive max uses PyTorch's update rule, as max_pool2d (pool2d_impl.hpp): an element
// replaces the running max when it is greater or NaN, in row-major order within the bin.
//
// Writes: out, indices and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: one plane per task, each plane computed by one thread in a fixed order.
#include <algorithm>
#include <limits>
#include <vector>
#include "pool2d.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {

// Planes per scheduling chunk: about 8 chunks per thread (dynamic, so a busy core does not stall the rest).
static index_t plane_chunk(index_t planes, int nt) { return std::max<index_t>(1, planes / (8 * static_cast<index_t>(nt))); }

// The adaptive bins of one axis, computed once per call (no divisions in the loops).
struct Bins {
    std::vector<index_t> start, end;
    Bins(index_t in, index_t out) : start(out), end(out) {
        for (index_t i = 0; i < out; ++i) start[i] = i * in / out, end[i] = ceil_div((i + 1) * in, out);
    }
    index_t size(index_t i) const { return end[i] - start[i]; }
};

template <class T>
void max_pool2d_backward(T* grad_x, const T* grad_out, const index_t* indices, const Pool2dSizes& s) {
    // grad_out, indices (planes, OH, OW) -> grad_x (planes, H, W); indices in [0, H*W) (checked in Python)
    const index_t in_plane = s.h * s.w, out_plane = s.oh * s.ow;
    const int nt = num_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, plane_chunk(s.planes, nt))
    for (index_t plane = 0; plane < s.planes; ++plane) {
        T* gx = grad_x + plane * in_plane;
        const T* gy = grad_out + plane * out_plane;
        const index_t* idx = indices + plane * out_plane;
        std::fill(gx, gx + in_plane, T(0));
        for (index_t j = 0; j < out_plane; ++j) gx[idx[j]] += gy[j];
    }
}

// Sum of n contiguous values: blocks of up to 128 values are summed by eight lanes of T
// (vectorised; 16 terms per lane, so the error stays within a few ulp of the block), the
// block sums accumulate in double. A fixed order: the result does not depend on the thread count.
template <class T>
static double contiguous_sum(const T* v, index_t n) {
    constexpr index_t kLanes = 8, kBlock = 128;
    const index_t n_lanes = n - n % kLanes;
    double sum = 0;
    index_t i = 0;
    while (i < n_lanes) {
        T lane[kLanes] = {};
        for (const index_t end = std::min(n_lanes, i + kBlock); i < end; i += kLanes)
            for (index_t k = 0; k < kLanes; ++k) lane[k] += v[i + k];
        sum += double(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
    }
    for (; i < n; ++i) sum += double(v[i]);
    return sum;
}

template <class T>
void adaptive_avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW): bin means (sums in double, whole-row bins in blocks)
    const int nt = num_threads();
    if (s.oh == s.h && s.ow == s.w) {   // every bin is one element, its own mean: a copy in equal slices
        const index_t n = s.planes * s.h * s.w;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (index_t part = 0; part < nt; ++part)
            std::copy(x + n * part / nt, x + n * (part + 1) / nt, out + n * part / nt);
        return;
    }
    if (s.oh == 1 && s.ow == 1) {   // global pooling: one contiguous run per plane
        const index_t n = s.h * s.w;
#pragma omp parallel for num_threads(nt) schedule(dynamic, plane_chunk(s.planes, nt))
        for (index_t plane = 0; plane < s.planes; ++plane) out[plane] = T(contiguous_sum(x + plane * n, n) / double(n));
        return;
    }
    const Bins rows(s.h, s.oh), cols(s.w, s.ow);
    std::vector<double> inv_area(s.oh * s.ow);   // 1 / bin size: a multiply per output, not a division
    for (index_t oh = 0; oh < s.oh; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow) inv_area[oh * s.ow + ow] = 1.0 / double(rows.size(oh) * cols.size(ow));
    // Per thread: one row of column sums, on cache lines of its own (rows sharing a line
    // made 2 threads slower than 1 on AlexNet's 13x13 planes).
    const index_t cs_stride = round_up(s.w, 8) + 8;
    std::vector<double> col_sums(nt * cs_stride);
#pragma omp parallel num_threads(nt)
    {
        double* cs = col_sums.data() + thread_index() * cs_stride;
#pragma omp for schedule(static)   // equal runs of planes: each thread streams its part of x
        for (index_t plane = 0; plane < s.planes; ++plane) {
            const T* xp = x + plane * s.h * s.w;
            T* y = out + plane * s.oh * s.ow;
            for (index_t oh = 0; oh < s.oh; ++oh, y += s.ow) {
                const index_t ih0 = rows.start[oh], ih1 = rows.end[oh];
                const double* inv = inv_area.data() + oh * s.ow;
                if (s.ow == 1) {   // the bin is whole rows: one contiguous run
                    y[0] = T(contiguous_sum(xp + ih0 * s.w, (ih1 - ih0) * s.w) * inv[0]);
                    continue;
                }
                // column sums over the bin's rows (vectorises), then each bin sums its columns
                const T* row = xp + ih0 * s.w;
                for (index_t iw = 0; iw < s.w; ++iw) cs[iw] = double(row[iw]);
                for (index_t ih = ih0 + 1; ih < ih1; ++ih) {
                    row += s.w;
                    for (index_t iw = 0; iw < s.w; ++iw) cs[iw] += double(row[iw]);
                }
                for (index_t ow = 0; ow < s.ow; ++ow) {
                    double sum = 0;
                    for (index_t iw = cols.start[ow]; iw < cols.end[ow]; ++iw) sum += cs[iw];
                    y[ow] = T(sum * inv[ow]);
                }
            }
        }
    }
}

template <class T>
void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): each output's grad / bin size is
    // added to every input of its bin; per output row first summed per column (in double)
    const int nt = num_threads();
    const Bins rows(s.h, s.oh), cols(s.w, s.ow);
    std::vector<std::vector<double>> col_shares(nt, std::vector<double>(s.w));
#pragma omp parallel num_threads(nt)
    {
        double* cs = col_shares[thread_index()].data();
#pragma omp for schedule(dynamic, plane_chunk(s.planes, nt))
        for (index_t plane = 0; plane < s.planes; ++plane) {
            T* gx = grad_x + plane * s.h * s.w;
            std::fill(gx, gx + s.h * s.w, T(0));
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const T* gy = grad_out + (plane * s.oh + oh) * s.ow;
                std::fill(cs, cs + s.w, 0.0);
                for (index_t ow = 0; ow < s.ow; ++ow) {
                    const double share = double(gy[ow]) / double(rows.size(oh) * cols.size(ow));
                    for (index_t iw = cols.start[ow]; iw < cols.end[ow]; ++iw) cs[iw] += share;
                }
                for (index_t ih = rows.start[oh]; ih < rows.end[oh]; ++ih)
                    for (index_t iw = 0; iw < s.w; ++iw) gx[ih * s.w + iw] += T(cs[iw]);
            }
        }
    }
}

template <class T>
void adaptive_max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out, indices (planes, OH, OW); indices may be null
    const Bins rows(s.h, s.oh), cols(s.w, s.ow);
    const int nt = num_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, plane_chunk(s.planes, nt))
    for (index_t plane = 0; plane < s.planes; ++plane) {
        const T* xp = x + plane * s.h * s.w;
        for (index_t oh = 0; oh < s.oh; ++oh) {
            const index_t ih0 = rows.start[oh], ih1 = rows.end[oh];
            for (index_t ow = 0; ow < s.ow; ++ow) {
                const index_t iw0 = cols.start[ow], iw1 = cols.end[ow];
                T m = -std::numeric_limits<T>::infinity();
                index_t best = ih0 * s.w + iw0;   // kept when every element is -inf, as in PyTorch
                for (index_t ih = ih0; ih < ih1; ++ih)
                    for (index_t iw = iw0; iw < iw1; ++iw) {
                        const T v = xp[ih * s.w + iw];
                        const bool take = v > m || v != v;
                        m = take ? v : m;
                        best = take ? ih * s.w + iw : best;
                    }
                const index_t j = (plane * s.oh + oh) * s.ow + ow;
                out[j] = m;
                if (indices) indices[j] = best;
            }
        }
    }
}

#define CONVKIT_INSTANTIATE(T)                                                                    \
    template void max_pool2d_backward<T>(T*, const T*, const index_t*, const Pool2dSizes&);     \
    template void adaptive_avg_pool2d_forward<T>(T*, const T*, const Pool2dSizes&);             \
    template void adaptive_avg_pool2d_backward<T>(T*, const T*, const Pool2dSizes&);            \
    template void adaptive_max_pool2d_forward<T>(T*, index_t*, const T*, const Pool2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)

}  // namespace convkit
