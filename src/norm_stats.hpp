// convkit/src/norm_stats.hpp -- the moment sums batch / group / layer / instance norm are built on.
//
// Means and variances are accumulated in double over d = x - shift, where shift is one
// value of the data (its first element). var = (sum d^2 - (sum d)^2 / n) / n then stays
// accurate: a data point lies within sqrt(n * var) of the mean, so the cancellation costs
// at most log10(n) of double's 16 digits (in practice none), while x is read only once.
//
// The sums run in 2 or 4 accumulators of one SIMD register of doubles each (GCC/Clang vector
// extensions, the register width of the instruction set being compiled), whose lanes are
// combined in a fixed order: a result depends only on the data, the segment order and the
// instruction set, never on the thread count. The backward passes' float32 sums (x, x^2, dy,
// dy x) first gather runs of at most 8 values per lane in float registers, then add each
// run into those accumulators: a conversion per value made those sums the backward's
// bottleneck (batch-norm backward on 16x256x14x14: 10% less time, on 16x64x56x56: 29% less;
// the results moved by about 1e-7 relative, the accuracy of PyTorch's float reductions).
//
// Compiled once per instruction set (included by the *_impl.hpp kernels, inside
// namespace convkit::CONVKIT_ISA), so the variants never collide.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include "common.hpp"
#if defined(__AVX__)
#include <immintrin.h>
#endif

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including norm_stats.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace norm {   // helpers of the norm kernels (batch_norm_impl.hpp, group_norm_impl.hpp)

#if defined(__AVX512F__)
constexpr int kStatBytes = 64;
#elif defined(__AVX__)
constexpr int kStatBytes = 32;
#else
constexpr int kStatBytes = 16;
#endif
constexpr int kStatLanes = kStatBytes / sizeof(double);   // doubles per register
// Accumulators per sum: 4 when only x is summed (one add per accumulator per iteration
// would otherwise wait on the add latency), 2 with gradients (4 sums: 8 registers).
constexpr int kMomentAccumulators = 4, kGradAccumulators = 2;

typedef double StatVec __attribute__((vector_size(kStatBytes)));
typedef float StatHalf __attribute__((vector_size(kStatBytes / 2)));

// x[0:kStatLanes] as doubles (unaligned load; one widening convert where the ISA has it,
// which GCC does not always pick for __builtin_convertvector).
template <class T> inline StatVec load_stat(const T* x) {
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
        return (StatVec)_mm512_cvtps_pd(_mm256_loadu_ps(x));
#elif defined(__AVX__)
        return (StatVec)_mm256_cvtps_pd(_mm_loadu_ps(x));
#else
        StatHalf v;
        std::memcpy(&v, x, sizeof v);
        return __builtin_convertvector(v, StatVec);
#endif
    } else {
        StatVec v;
        std::memcpy(&v, x, sizeof v);
        return v;
    }
}

// The lanes of the accumulators, summed in a fixed order.
inline double lane_total(const StatVec* acc) {
    const StatVec v = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    double total = 0;
    for (int l = 0; l < kStatLanes; ++l) total += v[l];
    return total;
}

// Sums over one group of values (any number of segments) of d = x - shift and d^2 and,
// for a backward pass, of g = dy * w (w null = ones) and g * d.
struct Totals {
    double d = 0, dd = 0, g = 0, gd = 0;
};

class StatSums {
  public:
    explicit StatSums(double shift) : shift_(shift) {}

    template <class T> void add(const T* x, index_t len) {
        constexpr int step = kMomentAccumulators * kStatLanes;
        index_t i = 0;
        for (; i + step <= len; i += step)
            for (int u = 0; u < kMomentAccumulators; ++u) {
                const StatVec d = load_stat(x + i + u * kStatLanes) - shift_;
                d_[u] += d;
                dd_[u] += d * d;
            }
        for (; i < len; ++i) {
            const double d = double(x[i]) - shift_;
            tail_.d += d;
            tail_.dd += d * d;
        }
    }

    template <class T> void add(const T* x, const T* dy, const T* w, index_t len) {
        constexpr int step = kGradAccumulators * kStatLanes;
        index_t i = 0;
        if constexpr (std::is_same_v<T, float>) i = add_float_runs(x, dy, w, len);
        for (; i + step <= len; i += step)
            for (int u = 0; u < kGradAccumulators; ++u) {
                const index_t o = i + u * kStatLanes;
                const StatVec d = load_stat(x + o) - shift_;
                const StatVec g = w ? load_stat(dy + o) * load_stat(w + o) : load_stat(dy + o);
                d_[u] += d;
                dd_[u] += d * d;
                g_[u] += g;
                gd_[u] += g * d;
            }
        for (; i < len; ++i) {
            const double d = double(x[i]) - shift_;
            const double g = w ? double(dy[i]) * double(w[i]) : double(dy[i]);
            tail_.d += d;
            tail_.dd += d * d;
            tail_.g += g;
            tail_.gd += g * d;
        }
    }

    Totals totals() const {
        return {lane_total(d_) + tail_.d, lane_total(dd_) + tail_.dd, lane_total(g_) + tail_.g,
                lane_total(gd_) + tail_.gd};
    }

  private:
    // float: the four sums over runs of kFloatRun vectors in float registers (twice the lanes
    // of the double ones, no conversion per value), two sets of them for twice the chains in
    // flight, so at most kFloatRun / 2 values per lane; each run then added into the double
    // accumulators. The means and variances are still formed in double. Returns the values
    // consumed (whole vectors).
    static constexpr int kFloatRun = 16;
    typedef float FloatVec __attribute__((vector_size(kStatBytes)));
    static constexpr int kFloatLanes = kStatBytes / sizeof(float);
    // acc[0] += v's low half, acc[1] += its high half, as doubles.
    static void add_halves(StatVec* acc, FloatVec v) {
#if defined(__AVX512F__)
        const __m512 f = (__m512)v;
        acc[0] += (StatVec)_mm512_cvtps_pd(_mm512_castps512_ps256(f));
        acc[1] += (StatVec)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
#elif defined(__AVX__)
        const __m256 f = (__m256)v;
        acc[0] += (StatVec)_mm256_cvtps_pd(_mm256_castps256_ps128(f));
        acc[1] += (StatVec)_mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
#else
        StatHalf lo, hi;
        for (int l = 0; l < kStatLanes; ++l) lo[l] = v[l], hi[l] = v[kStatLanes + l];
        acc[0] += __builtin_convertvector(lo, StatVec);
        acc[1] += __builtin_convertvector(hi, StatVec);
#endif
    }
    index_t add_float_runs(const float* x, const float* dy, const float* w, index_t len) {
        return w ? add_float_runs_as<true>(x, dy, w, len) : add_float_runs_as<false>(x, dy, w, len);
    }
    template <bool Weighted>
    index_t add_float_runs_as(const float* x, const float* dy, const float* w, index_t len) {
        const float shift = float(shift_);   // shift is one of the float values: exact
        struct Sums { FloatVec d, dd, g, gd; };
        const auto add = [&](Sums& a, index_t i) {
            FloatVec xv, gv;
            std::memcpy(&xv, x + i, sizeof xv);
            std::memcpy(&gv, dy + i, sizeof gv);
            if constexpr (Weighted) {
                FloatVec wv;
                std::memcpy(&wv, w + i, sizeof wv);
                gv *= wv;
            }
            const FloatVec dv = xv - shift;
            a.d += dv;
            a.dd += dv * dv;
            a.g += gv;
            a.gd += gv * dv;
        };
        index_t i = 0;
        while (i + kFloatLanes <= len) {   // a run
            Sums a{}, b{};
            int r = 0;
            for (; r < kFloatRun && i + 2 * kFloatLanes <= len; r += 2, i += 2 * kFloatLanes) {
                add(a, i);
                add(b, i + kFloatLanes);
            }
            if (r < kFloatRun && i + kFloatLanes <= len) {
                add(a, i);
                i += kFloatLanes;
            }
            add_halves(d_, a.d + b.d);
            add_halves(dd_, a.dd + b.dd);
            add_halves(g_, a.g + b.g);
            add_halves(gd_, a.gd + b.gd);
        }
        return i;
    }

    double shift_;
    StatVec d_[4] = {}, dd_[4] = {}, g_[4] = {}, gd_[4] = {};
    Totals tail_;
};

// Mean and biased variance of `count` values from their shifted sums.
struct MeanVar {
    double mean, var;
    MeanVar(const Totals& t, double shift, double count)
        : mean(shift + t.d / count), var(std::max(0.0, (t.dd - t.d * t.d / count) / count)) {}
};

// y[i] = x[i] * scale + offset over one contiguous segment (the affine step of every norm).
template <class T> inline void scale_shift(T* y, const T* x, index_t len, T scale, T offset) {
    for (index_t i = 0; i < len; ++i) y[i] = x[i] * scale + offset;
}

}  // namespace norm
}  // namespace CONVKIT_ISA
}  // namespace convkit
