// convkit/src/unpool2d.cpp -- max-unpooling forward (a scatter) and backward (a gather).
//
// Writes: out and grad_x are fully OVERWRITTEN, never accumulated into.
// Duplicate indices within a plane (overlapping pooling windows): the forward scatters each
// plane sequentially in row-major input order, so the LAST input element wins; the backward
// gives every duplicate the same gradient. Threads split the planes, so the result does not
// depend on the thread count.
// Index range: both kernels test every index as they use it (in the same pass, so the indices
// are read once), use offset 0 in place of a bad one, so memory outside the plane is never
// touched, and report it; Python then raises and drops the result (convkit/ops/resample.py
// checks with indices_in_range first when the output is a caller's `out=` array).
#include <algorithm>
#include <cstdint>
#include "resample.hpp"

namespace convkit {

bool indices_in_range(const index_t* indices, index_t count, index_t limit) {
    // v lies in [0, limit) iff v < limit as unsigned (negatives wrap to huge values); below
    // 2**32 that is "high half zero and low half < limit", which vectorises (32-bit compares).
    std::uint64_t bad = 0;
    if (limit <= index_t(UINT32_MAX)) {
        const std::uint32_t lim = std::uint32_t(limit);
#pragma omp parallel for num_threads(num_threads()) schedule(static) reduction(| : bad)
        for (index_t i = 0; i < count; ++i) {
            const std::uint64_t v = std::uint64_t(indices[i]);
            bad |= (v >> 32) | std::uint64_t(std::uint32_t(v) >= lim);
        }
    } else {
#pragma omp parallel for num_threads(num_threads()) schedule(static) reduction(| : bad)
        for (index_t i = 0; i < count; ++i) bad |= std::uint64_t(std::uint64_t(indices[i]) >= std::uint64_t(limit));
    }
    return bad == 0;
}

// Inputs handled between two rounds of prefetches of the next output plane.
constexpr index_t kUnpoolChunk = 16;

// body(i) for i in [0, in_plane) of one plane, in order, the `lines` cache lines at `next`
// (the next output plane) prefetched into L2 along the way, a share per chunk of inputs.
template <int ForWrite, class Body>
inline void with_next_plane_prefetched(const void* next, index_t lines, index_t in_plane, Body&& body) {
    const char* at = static_cast<const char*>(next);
    for (index_t i0 = 0, line = 0; i0 < in_plane; i0 += kUnpoolChunk) {
        const index_t end = std::min(i0 + kUnpoolChunk, in_plane);
        for (const index_t upto = end == in_plane ? lines : end * lines / in_plane; line < upto; ++line)
            __builtin_prefetch(at + 64 * line, ForWrite, 2);
        for (index_t i = i0; i < end; ++i) body(i);
    }
}

// out (planes, OH, OW) = zeros, then out[p, indices[p, i]] = x[p, i] for i in row-major order;
// x, indices (planes, H, W). Each plane is zeroed right before its scatter, while it is in cache.
// While a plane is scattered, the next one's lines are prefetched for writing: its zeroing
// then finds them in L2. Zen 5, 2x2 unpooling, in-process A/B of the binding: 16x64x56x56
// 20% less time, 16x128x28x28 24-40%, float64 2-10%.
template <class T>
bool max_unpool2d_forward(T* out, const T* x, const index_t* indices, const ResampleSizes& s) {
    const index_t in_plane = s.h * s.w, out_plane = s.oh * s.ow;
    const index_t lines = ceil_div(out_plane * index_t(sizeof(T)), index_t(64));   // of an output plane
    const std::uint64_t limit = std::uint64_t(out_plane);
    std::uint64_t bad = 0;
#pragma omp parallel for num_threads(num_threads()) schedule(static) reduction(| : bad)
    for (index_t p = 0; p < s.planes; ++p) {
        T* o = out + p * out_plane;
        const T* xp = x + p * in_plane;
        const index_t* ip = indices + p * in_plane;
        std::fill(o, o + out_plane, T(0));
        with_next_plane_prefetched<1>(p + 1 < s.planes ? o + out_plane : o, lines, in_plane, [&](index_t i) {
            const std::uint64_t v = std::uint64_t(ip[i]);   // negatives wrap to huge values
            const bool ok = v < limit;
            bad |= !ok;
            o[ok ? v : 0] = xp[i];
        });
    }
    return bad == 0;
}

// grad_x (planes, H, W): grad_x[p, i] = grad_out[p, indices[p, i]]; grad_out (planes, OH, OW).
// The next plane of grad_out is prefetched into L2 while this one is gathered. Zen 5,
// in-process A/B of the binding: 16x64x56x56 11% less time, 16x128x28x28 13%, float64 2.1x
// faster.
template <class T>
bool max_unpool2d_backward(T* grad_x, const T* grad_out, const index_t* indices, const ResampleSizes& s) {
    const index_t in_plane = s.h * s.w, out_plane = s.oh * s.ow;
    const index_t lines = ceil_div(out_plane * index_t(sizeof(T)), index_t(64));   // of a grad_out plane
    const std::uint64_t limit = std::uint64_t(out_plane);
    std::uint64_t bad = 0;
#pragma omp parallel for num_threads(num_threads()) schedule(static) reduction(| : bad)
    for (index_t p = 0; p < s.planes; ++p) {
        const index_t* ip = indices + p * in_plane;
        T* gx = grad_x + p * in_plane;
        const T* gy = grad_out + p * out_plane;
        with_next_plane_prefetched<0>(p + 1 < s.planes ? gy + out_plane : gy, lines, in_plane, [&](index_t i) {
            const std::uint64_t v = std::uint64_t(ip[i]);
            const bool ok = v < limit;
            bad |= !ok;
            gx[i] = gy[ok ? v : 0];
        });
    }
    return !bad;
}

#define CONVKIT_INSTANTIATE(T)                                                                    \
    template bool max_unpool2d_forward<T>(T*, const T*, const index_t*, const ResampleSizes&);  \
    template bool max_unpool2d_backward<T>(T*, const T*, const index_t*, const ResampleSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
#undef CONVKIT_INSTANTIATE

}  // namespace convkit
