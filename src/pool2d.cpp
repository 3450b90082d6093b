// convkit/src/pool2d.cpp -- portable pooling kernels: max-pool backward (a scatter through the
// saved indices; also serves adaptive max pooling) and adaptive average / max pooling.
//
// Adaptive bins: output i of an axis with In inputs and Out outputs covers
// [floor(i*In/Out), ceil((i+1)*In/Out)) (PyTorch's rule; neighbouring bins may overlap).
// Adaptive max uses PyTorch's update rule, as max_pool2d (pool2d_impl.hpp): an element
// replaces the running max when it is greater or NaN, in row-major order within the bin.
// Adaptive average: float bins of at most kMaxTermsInT (64) inputs, and every double bin, are
// summed in T on vectors, wider float bins in double; the vectorised loops also exist as AVX2
// clones (target attribute, chosen by active_isa()), which add the same values in the same
// order, so every path and instruction set gives the same bits.
//
// Writes: out, indices and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: one plane per task, each plane computed by one thread in a fixed order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#include "conv2d.hpp"   // active_isa
#include "pool2d.hpp"
#ifdef CONVKIT_X86_DISPATCH
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

// The 32-byte vector types below live only inside always_inline helpers of the AVX2 clones,
// never in a call between code built with and without AVX: GCC's ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

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
bool max_pool2d_backward(T* grad_x, const T* grad_out, const index_t* indices, const Pool2dSizes& s) {
    // grad_out, indices (planes, OH, OW) -> grad_x (planes, H, W)
    const index_t in_plane = s.h * s.w, out_plane = s.oh * s.ow;
    const int nt = num_threads();
    std::uint64_t bad = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad)
    for (index_t plane = 0; plane < s.planes; ++plane) {
        T* gx = grad_x + plane * in_plane;
        const T* gy = grad_out + plane * out_plane;
        const index_t* idx = indices + plane * out_plane;
        std::fill(gx, gx + in_plane, T(0));
        for (index_t j = 0; j < out_plane; ++j) {   // as unsigned, a negative index is huge
            const bool ok = std::uint64_t(idx[j]) < std::uint64_t(in_plane);
            bad |= !ok;
            gx[ok ? idx[j] : 0] += ok ? gy[j] : T(0);
        }
    }
    return bad == 0;
}

template <class V, class T> __attribute__((always_inline)) inline V load_as(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <class V, class T> __attribute__((always_inline)) inline void store_as(T* p, V v) { std::memcpy(p, &v, sizeof v); }

// Eight lanes of T (one AVX2 register of float; two of double, or two / four SSE registers).
template <class T> struct Lanes8;
template <> struct Lanes8<float> { typedef float type __attribute__((vector_size(32))); };
template <> struct Lanes8<double> { typedef double type __attribute__((vector_size(64))); };

// Sum of n contiguous values: blocks of up to 128 values are summed by eight lanes of T
// (16 terms per lane, so the error stays within a few ulp of the block), the block sums
// accumulate in double. A fixed order, whatever the vector width: the result does not depend
// on the instruction set or the thread count.
template <class T>
__attribute__((always_inline)) inline double contiguous_sum(const T* v, index_t n) {
    using V = typename Lanes8<T>::type;
    constexpr index_t kLanes = 8, kBlock = 128;
    const index_t n_lanes = n - n % kLanes;
    double sum = 0;
    index_t i = 0;
    while (i < n_lanes) {
        V lane = V{};
        for (const index_t end = std::min(n_lanes, i + kBlock); i < end; i += kLanes) lane += load_as<V>(v + i);
        sum += double(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
    }
    for (; i < n; ++i) sum += double(v[i]);
    return sum;
}

// Global average pooling of the planes [p0, p1): one contiguous run per plane.
template <class T>
__attribute__((always_inline)) inline void global_avg_planes(T* out, const T* x, index_t p0, index_t p1, index_t n) {
    for (index_t plane = p0; plane < p1; ++plane) out[plane] = T(contiguous_sum(x + plane * n, n) / double(n));
}
#ifdef CONVKIT_X86_DISPATCH
template <class T>
__attribute__((target("avx2,fma"))) void global_avg_planes_avx2(T* out, const T* x, index_t p0, index_t p1, index_t n) {
    global_avg_planes(out, x, p0, p1, n);
}

// Global average pooling of float planes [p0, p1), eight planes at a time: one plane at a time
// spends most of a short plane (7x7: 6 vectors) reducing its lanes, one dependent add after
// another. Here the eight planes' lane sums of a block reduce together with horizontal adds,
// which associate exactly as contiguous_sum, ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), and the
// block sums, the tail values and the division are done in double as there, four planes per
// vector: the same bits as global_avg_planes.
__attribute__((target("avx2,fma"))) void global_avg_float_by8_avx2(float* out, const float* x, index_t p0, index_t p1,
                                                                  index_t n) {
    constexpr index_t kLanes = 8, kBlock = 128;
    const index_t n_lanes = n - n % kLanes;
    const __m256d count = _mm256_set1_pd(double(n));
    index_t plane = p0;
    for (; plane + 8 <= p1; plane += 8) {
        const float* v = x + plane * n;
        __m256d sum[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};   // planes 0-3, 4-7
        for (index_t i = 0; i < n_lanes;) {
            const index_t end = std::min(n_lanes, i + kBlock);
            __m256 lane[8];
            for (int p = 0; p < 8; ++p) lane[p] = _mm256_setzero_ps();
            for (; i < end; i += kLanes)
                for (int p = 0; p < 8; ++p) lane[p] = _mm256_add_ps(lane[p], _mm256_loadu_ps(v + p * n + i));
            for (int half = 0; half < 2; ++half) {
                const __m256* l = lane + 4 * half;
                // [p0: (l0+l1)+(l2+l3), p1, p2, p3 | p0: (l4+l5)+(l6+l7), p1, p2, p3]
                const __m256 q = _mm256_hadd_ps(_mm256_hadd_ps(l[0], l[1]), _mm256_hadd_ps(l[2], l[3]));
                const __m128 block = _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));
                sum[half] = _mm256_add_pd(sum[half], _mm256_cvtps_pd(block));
            }
        }
        for (index_t i = n_lanes; i < n; ++i)
            for (int half = 0; half < 2; ++half) {
                const float* t = v + 4 * half * n + i;
                sum[half] = _mm256_add_pd(sum[half], _mm256_cvtps_pd(_mm_setr_ps(t[0], t[n], t[2 * n], t[3 * n])));
            }
        for (int half = 0; half < 2; ++half) _mm_storeu_ps(out + plane + 4 * half, _mm256_cvtpd_ps(_mm256_div_pd(sum[half], count)));
    }
    global_avg_planes(out, x, plane, p1, n);
}
#endif

// Bins of at most this many inputs are summed in T (float: a few ulp per term, far inside the
// 1e-4 budget); wider float bins accumulate in double.
constexpr index_t kMaxTermsInT = 64;


// Every plane in [p0, p1) summed in T, in three passes per plane: the column sums over each
// output row's bin rows (cs, a row of W per output row), the running window sums
// cs[iw] + ... + cs[iw + k - 1] for k = 1 .. kmax, kept for the bin widths k >= kmin (ws, a
// row per output row and width), and bin ow = ws_{width}[start] * (1 / area). Whole passes
// over the plane, not one output row at a time: the window sums reread cs at shifted offsets,
// which stalls when the store is still in flight (no store-to-load forwarding). V is a vector
// of T (or T itself when W is narrower than a vector): whole vectors at 0, L, .. and one
// overlapping the end of the row, so there are no scalar tails. Every value is summed in the
// same order whatever V is (rows top to bottom, then columns left to right), so the result
// does not depend on the instruction set or the thread count.
template <class V, class T>
__attribute__((always_inline)) inline void adaptive_avg_planes_in_t(T* out, const T* x, T* cs, T* ws, index_t p0,
                                                                    index_t p1, const Bins& rows, const Bins& cols,
                                                                    const index_t* at, const T* inv_area, index_t kmin, index_t kmax,
                                                                    index_t stride, const Pool2dSizes& s) {
    if (p0 == p1) return;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const index_t last = s.w - L;   // the vector that ends the row
    const index_t ws_plane = s.oh * (kmax - kmin + 1) * stride;   // window sums of one plane
    // bin j of plane p is ws[p % 2 * ws_plane + at[j]], picked once the next plane's sums are
    // stored (long enough after its own stores for their loads not to wait on them)
    auto pick = [&](index_t plane) {
        const T* w = ws + plane % 2 * ws_plane;
        T* __restrict y = out + plane * s.oh * s.ow;
        for (index_t j = 0; j < s.oh * s.ow; ++j) y[j] = w[at[j]] * inv_area[j];
    };
    for (index_t plane = p0; plane < p1; ++plane) {
        const T* xp = x + plane * s.h * s.w;
        for (index_t oh = 0; oh < s.oh; ++oh) {   // column sums
            const T* top = xp + rows.start[oh] * s.w;
            const index_t n_rows = rows.size(oh);
            for (index_t iw = 0;; iw += L) {
                iw = std::min(iw, last);
                V v = load_as<V>(top + iw);
                for (index_t r = 1; r < n_rows; ++r) v += load_as<V>(top + r * s.w + iw);
                store_as(cs + oh * stride + iw, v);
                if (iw == last) break;
            }
        }
        for (index_t oh = 0; oh < s.oh; ++oh) {   // window sums (cs is padded past W: those lanes go unused)
            const T* c = cs + oh * stride;
            T* w = ws + plane % 2 * ws_plane + oh * (kmax - kmin + 1) * stride;
            for (index_t iw = 0;; iw += L) {
                iw = std::min(iw, last);
                V v = load_as<V>(c + iw);
                for (index_t k = 2; k <= kmax; ++k) {
                    if (k > kmin) store_as(w + (k - 1 - kmin) * stride + iw, v);
                    v += load_as<V>(c + iw + k - 1);
                }
                store_as(w + (kmax - kmin) * stride + iw, v);
                if (iw == last) break;
            }
        }
        if (plane > p0) pick(plane - 1);
    }
    pick(p1 - 1);
}

// A vector of T, 16 or 32 bytes (GCC/Clang vector extensions).
template <class T, int Bytes> struct VecOf;
// `lanes`: integers as wide as T, one per lane (shuffle indices and lane masks).
template <> struct VecOf<float, 16> {
    typedef float type __attribute__((vector_size(16)));
    typedef std::int32_t lanes __attribute__((vector_size(16)));
};
template <> struct VecOf<float, 32> {
    typedef float type __attribute__((vector_size(32)));
    typedef std::int32_t lanes __attribute__((vector_size(32)));
};
template <> struct VecOf<double, 16> {
    typedef double type __attribute__((vector_size(16)));
    typedef std::int64_t lanes __attribute__((vector_size(16)));
};
template <> struct VecOf<double, 32> {
    typedef double type __attribute__((vector_size(32)));
    typedef std::int64_t lanes __attribute__((vector_size(32)));
};

// The shuffles of the narrow-plane path: tap t of the bins of one output row, as indices into
// the two column-sum registers (lo: columns 0 .. L-1, hi: the L columns ending at W, indices
// L ..), and whether the tap lies inside its bin (narrower bins keep their sum).
template <class T, int Bytes>
struct NarrowTaps {
    using M = typename VecOf<T, Bytes>::lanes;
    using Int = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;   // one lane of M
    static constexpr index_t L = Bytes / sizeof(T);
    std::vector<Int> lane, inside;   // per tap t < kmax, L lanes (loaded unaligned: load_as)
    std::vector<T> inv_area;         // OH rows of L: 1 / area per output, 0 past OW
    NarrowTaps(const Bins& rows, const Bins& cols, index_t kmax, const Pool2dSizes& s)
        : lane(kmax * L, 0), inside(kmax * L, 0), inv_area(kmax ? s.oh * L : 0, T(0)) {
        if (!kmax) return;   // kmax 0: not used (the planes do not fit)
        for (index_t t = 0; t < kmax; ++t)
            for (index_t ow = 0; ow < s.ow; ++ow) {
                const index_t col = std::min(cols.start[ow] + t, s.w - 1);
                lane[t * L + ow] = Int(col < L ? col : col - (s.w - L) + L);
                inside[t * L + ow] = t < cols.size(ow) ? -1 : 0;
            }
        for (index_t oh = 0; oh < s.oh; ++oh)
            for (index_t ow = 0; ow < s.ow; ++ow) inv_area[oh * L + ow] = T(1.0 / double(rows.size(oh) * cols.size(ow)));
    }
    __attribute__((always_inline)) M lanes_of(index_t t) const { return load_as<M>(lane.data() + t * L); }
    __attribute__((always_inline)) M inside_of(index_t t) const { return load_as<M>(inside.data() + t * L); }
    // the planes fit: L <= W <= 2L and OW <= L
    static bool fits(const Pool2dSizes& s) { return s.w >= L && s.w <= 2 * L && s.ow <= L; }
};

// Every plane in [p0, p1) with W <= 2 vectors and OW <= 1 vector (AlexNet's 13x13 -> 6x6 on
// AVX2): per output row the column sums over its bin rows stay in two registers, and tap t of
// every bin is one two-register shuffle (runtime indices), added while inside the bin. The
// same sums in the same order as adaptive_avg_planes_in_t: the results agree bit for bit.
// An output row is stored as a whole vector (its lanes past OW land in the next rows, written
// later) except where that would pass the end of the thread's planes.
// Uniform: every bin has kmax columns (13 -> 6), so no tap needs the inside test.
template <bool Uniform, class T, int Bytes>
__attribute__((always_inline)) inline void adaptive_avg_planes_narrow(T* out, const T* x, index_t p0, index_t p1,
                                                                      const Bins& rows, const NarrowTaps<T, Bytes>& nt,
                                                                      const Pool2dSizes& s) {
    using V = typename VecOf<T, Bytes>::type;
    constexpr index_t L = NarrowTaps<T, Bytes>::L;
    const index_t kmax = index_t(nt.lane.size()) / L, end = p1 * s.oh * s.ow;
    for (index_t plane = p0; plane < p1; ++plane) {
        const T* xp = x + plane * s.h * s.w;
        for (index_t oh = 0; oh < s.oh; ++oh) {
            const T* top = xp + rows.start[oh] * s.w;
            V lo = load_as<V>(top), hi = load_as<V>(top + s.w - L);
            for (index_t r = 1; r < rows.size(oh); ++r)
                lo += load_as<V>(top + r * s.w), hi += load_as<V>(top + r * s.w + s.w - L);
            V sum = __builtin_shuffle(lo, hi, nt.lanes_of(0));
            for (index_t t = 1; t < kmax; ++t) {
                const V tap = __builtin_shuffle(lo, hi, nt.lanes_of(t));
                sum = Uniform || nt.inside_of(t) ? sum + tap : sum;
            }
            sum *= load_as<V>(nt.inv_area.data() + oh * L);
            const index_t o = (plane * s.oh + oh) * s.ow;
            if (o + L <= end) store_as(out + o, sum);
            else std::memcpy(out + o, &sum, s.ow * sizeof(T));
        }
    }
}

// The row loops above for the planes [p0, p1), on the widest vectors that fit W and the active
// instruction set (AVX2 in a clone of the same code, compiled for it; 16-byte vectors are baseline).
#ifdef CONVKIT_X86_DISPATCH
template <class T>
__attribute__((target("avx2,fma"))) void adaptive_avg_planes_avx2(T* out, const T* x, T* cs, T* ws, index_t p0,
                                                                   index_t p1, const Bins& rows, const Bins& cols,
                                                                   const index_t* at, const T* inv_area, index_t kmin, index_t kmax,
                                                                   index_t stride, const Pool2dSizes& s) {
    adaptive_avg_planes_in_t<typename VecOf<T, 32>::type>(out, x, cs, ws, p0, p1, rows, cols, at, inv_area, kmin, kmax, stride, s);
}
template <class T>
__attribute__((target("avx2,fma"))) void adaptive_avg_planes_narrow_avx2(T* out, const T* x, index_t p0, index_t p1,
                                                                          const Bins& rows, const NarrowTaps<T, 32>& nt,
                                                                          bool uniform, const Pool2dSizes& s) {
    if (uniform) adaptive_avg_planes_narrow<true>(out, x, p0, p1, rows, nt, s);
    else adaptive_avg_planes_narrow<false>(out, x, p0, p1, rows, nt, s);
}
#endif

template <class T>
void adaptive_avg_in_t(T* out, const T* x, const Bins& rows, const Bins& cols, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW): bin sums in T (see kMaxTermsInT), times 1 / area
    index_t kmin = s.w, kmax = 1;   // narrowest and widest bin
    for (index_t ow = 0; ow < s.ow; ++ow) kmin = std::min(kmin, cols.size(ow)), kmax = std::max(kmax, cols.size(ow));
    std::vector<T> inv_area(s.oh * s.ow);
    for (index_t oh = 0; oh < s.oh; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow) inv_area[oh * s.ow + ow] = T(1.0 / double(rows.size(oh) * cols.size(ow)));
    // per thread: cs (OH rows of W + kmax values: the window sums read past W), then ws (two
    // planes of OH x the bin widths rows), every row on cache lines of its own
    const index_t stride = round_up(s.w + kmax, 64 / sizeof(T)), n = s.oh * (2 * (kmax - kmin) + 3) * stride;
    std::vector<index_t> bin_at(s.oh * s.ow);   // where bin (oh, ow) lies in a plane's window sums
    for (index_t oh = 0; oh < s.oh; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow)
            bin_at[oh * s.ow + ow] = (oh * (kmax - kmin + 1) + cols.size(ow) - kmin) * stride + cols.start[ow];
    const int nt = num_threads();
    std::vector<AlignedBuffer<T>> scratch;
    for (int t = 0; t < nt; ++t) scratch.push_back(aligned_buffer<T>(n)), std::fill_n(scratch.back().get(), n, T(0));
    const bool avx2 = active_isa() != Isa::generic && s.w >= index_t(32 / sizeof(T));
    const bool narrow = avx2 && NarrowTaps<T, 32>::fits(s);
    const NarrowTaps<T, 32> narrow_taps(rows, cols, narrow ? kmax : 0, s);
#pragma omp parallel num_threads(nt)
    {
        T* cs = scratch[thread_index()].get();
        T* ws = cs + s.oh * stride;
        const T* inv = inv_area.data();
        const index_t* at = bin_at.data();
#pragma omp for schedule(static)   // equal runs of planes: each thread streams its part of x
        for (index_t part = 0; part < nt; ++part) {
            const index_t p0 = s.planes * part / nt, p1 = s.planes * (part + 1) / nt;
#ifdef CONVKIT_X86_DISPATCH
            if (narrow) {
                adaptive_avg_planes_narrow_avx2(out, x, p0, p1, rows, narrow_taps, kmin == kmax, s);
                continue;
            }
            if (avx2) {
                adaptive_avg_planes_avx2(out, x, cs, ws, p0, p1, rows, cols, at, inv, kmin, kmax, stride, s);
                continue;
            }
#endif
            if (s.w >= index_t(16 / sizeof(T)))
                adaptive_avg_planes_in_t<typename VecOf<T, 16>::type>(out, x, cs, ws, p0, p1, rows, cols, at, inv, kmin, kmax, stride, s);
            else
                adaptive_avg_planes_in_t<T>(out, x, cs, ws, p0, p1, rows, cols, at, inv, kmin, kmax, stride, s);
        }
    }
}

template <class T>
void adaptive_avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW): bin means (float bins of <= kMaxTermsInT and
    // every double bin: adaptive_avg_in_t; wider float bins: sums in double)
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
        const bool avx2 = active_isa() != Isa::generic;
#pragma omp parallel for num_threads(nt) schedule(static)   // equal runs of planes
        for (index_t part = 0; part < nt; ++part) {
            const index_t p0 = s.planes * part / nt, p1 = s.planes * (part + 1) / nt;
#ifdef CONVKIT_X86_DISPATCH
            if (avx2) {
                if constexpr (std::is_same<T, float>::value) global_avg_float_by8_avx2(out, x, p0, p1, n);
                else global_avg_planes_avx2(out, x, p0, p1, n);
                continue;
            }
#endif
            global_avg_planes(out, x, p0, p1, n);
        }
        return;
    }
    const Bins rows(s.h, s.oh), cols(s.w, s.ow);
    index_t max_rows = 0, max_cols = 0;
    for (index_t oh = 0; oh < s.oh; ++oh) max_rows = std::max(max_rows, rows.size(oh));
    for (index_t ow = 0; ow < s.ow; ++ow) max_cols = std::max(max_cols, cols.size(ow));
    if (sizeof(T) == sizeof(double) || max_rows * max_cols <= kMaxTermsInT) return adaptive_avg_in_t(out, x, rows, cols, s);
    // float bins wider than kMaxTermsInT: sums in double
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
    template bool max_pool2d_backward<T>(T*, const T*, const index_t*, const Pool2dSizes&);     \
    template void adaptive_avg_pool2d_forward<T>(T*, const T*, const Pool2dSizes&);             \
    template void adaptive_avg_pool2d_backward<T>(T*, const T*, const Pool2dSizes&);            \
    template void adaptive_max_pool2d_forward<T>(T*, index_t*, const T*, const Pool2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)

}  // namespace convkit
