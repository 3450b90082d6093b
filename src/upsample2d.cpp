// convkit/src/upsample2d.cpp -- 2-D upsampling forward and backward: nearest and bed of nails
// (bilinear: src/upsample2d_bilinear_isa.cpp).
//
// Writes: out and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: threads split the planes; inside a plane every value is produced by one
// sequential loop in a fixed order, so results do not depend on the thread count.
// The nearest backward gathers, for each input pixel, the block of outputs that copied it
// (summed in double; the 2x2 fast path's four terms in T).
#include <algorithm>
#include "resample.hpp"

namespace convkit {
namespace {

// Whether src[o] == o / 2 for every output o: each input repeated twice (the x2 fast paths).
bool doubles(const index_t* src, index_t n_in, index_t n_out) {
    if (n_out != 2 * n_in) return false;
    for (index_t o = 0; o < n_out; ++o)
        if (src[o] != o / 2) return false;
    return true;
}

// The same seen from the backward's table: outputs first[i] .. first[i+1]-1 are 2i and 2i+1.
bool doubles_ranges(const index_t* first, index_t n_in, index_t n_out) {
    if (n_out != 2 * n_in) return false;
    for (index_t i = 0; i <= n_in; ++i)
        if (first[i] != 2 * i) return false;
    return true;
}

}  // namespace

// out (planes, OH, OW)[p, oh, ow] = x (planes, H, W)[p, src_h[oh], src_w[ow]].
// An output row reading the same input row as the one before is a copy of it.
template <class T>
void upsample_nearest2d_forward(T* out, const T* x, const index_t* src_h, const index_t* src_w,
                                const ResampleSizes& s) {
    const bool doubled_w = doubles(src_w, s.w, s.ow);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t p = 0; p < s.planes; ++p) {
        const T* xp = x + p * s.h * s.w;
        T* op = out + p * s.oh * s.ow;
        for (index_t oh = 0; oh < s.oh; ++oh) {
            T* __restrict orow = op + oh * s.ow;
            if (oh > 0 && src_h[oh] == src_h[oh - 1]) {
                std::copy(orow - s.ow, orow, orow);
                continue;
            }
            const T* __restrict xrow = xp + src_h[oh] * s.w;
            if (doubled_w)
                for (index_t iw = 0; iw < s.w; ++iw) orow[2 * iw] = orow[2 * iw + 1] = xrow[iw];
            else
                for (index_t ow = 0; ow < s.ow; ++ow) orow[ow] = xrow[src_w[ow]];
        }
    }
}

// grad_x (planes, H, W)[p, ih, iw] = sum of grad_out (planes, OH, OW) over rows
// first_h[ih] .. first_h[ih+1]-1 and columns first_w[iw] .. first_w[iw+1]-1.
template <class T>
void upsample_nearest2d_backward(T* grad_x, const T* grad_out, const index_t* first_h,
                                 const index_t* first_w, const ResampleSizes& s) {
    const bool doubled_w = doubles_ranges(first_w, s.w, s.ow);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t p = 0; p < s.planes; ++p) {
        const T* gy = grad_out + p * s.oh * s.ow;
        T* gx = grad_x + p * s.h * s.w;
        for (index_t ih = 0; ih < s.h; ++ih) {
            T* __restrict grow = gx + ih * s.w;
            const index_t r0 = first_h[ih], r1 = first_h[ih + 1];
            if (doubled_w && r1 - r0 == 2) {   // a 2x2 block: four terms, summed in T
                const T *g0 = gy + r0 * s.ow, *g1 = g0 + s.ow;
                for (index_t iw = 0; iw < s.w; ++iw)
                    grow[iw] = (g0[2 * iw] + g0[2 * iw + 1]) + (g1[2 * iw] + g1[2 * iw + 1]);
                continue;
            }
            for (index_t iw = 0; iw < s.w; ++iw) {
                double acc = 0.0;
                for (index_t r = r0; r < r1; ++r)
                    for (index_t c = first_w[iw]; c < first_w[iw + 1]; ++c) acc += gy[r * s.ow + c];
                grow[iw] = T(acc);
            }
        }
    }
}

// out (planes, OH, OW): out[p, ih*fh, iw*fw] = x (planes, H, W)[p, ih, iw], zeros elsewhere.
template <class T>
void upsample_bed_of_nails2d_forward(T* out, const T* x, const ResampleSizes& s) {
    const index_t fh = s.oh / s.h, fw = s.ow / s.w;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t p = 0; p < s.planes; ++p) {
        const T* xp = x + p * s.h * s.w;
        T* op = out + p * s.oh * s.ow;
        for (index_t oh = 0; oh < s.oh; ++oh) {
            T* __restrict orow = op + oh * s.ow;
            const T* __restrict xrow = xp + (oh / fh) * s.w;
            if (oh % fh) {
                std::fill(orow, orow + s.ow, T(0));
            } else if (fw == 2) {
                for (index_t iw = 0; iw < s.w; ++iw) {
                    orow[2 * iw] = xrow[iw];
                    orow[2 * iw + 1] = T(0);
                }
            } else {
                std::fill(orow, orow + s.ow, T(0));
                for (index_t iw = 0; iw < s.w; ++iw) orow[iw * fw] = xrow[iw];
            }
        }
    }
}

// The bed-of-nails backward prefetches the grad_out row it will read about this many bytes
// of rows later. It reads one row in fh: following that gapped stream, the hardware
// prefetchers kept too few lines in flight. Zen 5, 112-float rows, in-process A/B of the
// binding: 15-50% less time (the machine's slow and fast phases). In a C++ loop, 16 rows on
// took 14% less time than 8 rows on, and 10-16% less than 24-32.
constexpr index_t kBedOfNailsPrefetchBytes = 7 << 10;

// grad_x (planes, H, W)[p, ih, iw] = grad_out (planes, OH, OW)[p, ih*fh, iw*fw].
template <class T>
void upsample_bed_of_nails2d_backward(T* grad_x, const T* grad_out, const ResampleSizes& s) {
    const index_t fh = s.oh / s.h, fw = s.ow / s.w, rows = s.planes * s.h;   // OH = H fh: row r of all planes
    const index_t row_bytes = s.ow * index_t(sizeof(T));
    const index_t ahead = std::max<index_t>(1, kBedOfNailsPrefetchBytes / row_bytes);
    const index_t line_step = std::max<index_t>(1, 64 / (fw * index_t(sizeof(T))));   // iw per cache line
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t p = 0; p < s.planes; ++p)
        for (index_t ih = 0; ih < s.h; ++ih) {
            const index_t r = p * s.h + ih;
            // The elements that row will read, a line apart, and its last one (its own line
            // when the row does not start on a line boundary).
            const T* later = grad_out + std::min(r + ahead, rows - 1) * fh * s.ow;
            for (index_t iw = 0; iw < s.w; iw += line_step) __builtin_prefetch(later + iw * fw);
            __builtin_prefetch(later + (s.w - 1) * fw);
            const T* __restrict grow = grad_out + r * fh * s.ow;
            T* __restrict xrow = grad_x + r * s.w;
            if (fw == 2)   // a constant stride vectorises
                for (index_t iw = 0; iw < s.w; ++iw) xrow[iw] = grow[2 * iw];
            else
                for (index_t iw = 0; iw < s.w; ++iw) xrow[iw] = grow[iw * fw];
        }
}

#define CONVKIT_INSTANTIATE(T)                                                                      \
    template void upsample_nearest2d_forward<T>(T*, const T*, const index_t*, const index_t*,      \
                                                const ResampleSizes&);                             \
    template void upsample_nearest2d_backward<T>(T*, const T*, const index_t*, const index_t*,     \
                                                 const ResampleSizes&);                            \
    template void upsample_bed_of_nails2d_forward<T>(T*, const T*, const ResampleSizes&);          \
    template void upsample_bed_of_nails2d_backward<T>(T*, const T*, const ResampleSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
#undef CONVKIT_INSTANTIATE

}  // namespace convkit
