// convkit/src/softmax_impl.hpp -- log-softmax and cross-entropy (see softmax.hpp), for one
// instruction set (softmax_isa.cpp, built once per CONVKIT_ISA; softmax_dispatch.cpp picks one).
//
// Every row is handled by one thread as a contiguous run of dim values: rows of an
// inner == 1 array are used in place; rows at stride inner are first gathered, a strip of
// up to kStripRows neighbours at a time, into per-thread scratch (outputs scattered back).
// The row kernels run on the instruction set's vectors (gemm.hpp's Vec<T>) with their own
// vectorised exp (range reduction to |r| <= ln2/2 + Taylor polynomial, ~1 ulp): exp is
// what a row costs, so this is a compute-bound kernel and gets the AVX2/AVX-512 builds.
//
// Writes: every output is OVERWRITTEN. Determinism: rows are independent and each row's
// sums run in a fixed order (vector lanes, then lanes in order), whatever the thread count.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include "gemm.hpp"
#include "softmax.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace {   // helpers local to this instruction set's translation unit (generic names)

template <class T> struct Simd;
template <> struct Simd<float> {
    typedef Vec<float>::type V;
    typedef std::int32_t I __attribute__((vector_size(kVecBytes)));
    static constexpr int kMantissaBits = 23, kExponentBias = 127;
    static constexpr float kLo = -87.0f, kHi = 88.0f;      // exp(x) = 0 below, inf above
    static constexpr float kMagic = 12582912.0f;           // 1.5 * 2^23: adding it rounds to an integer
    static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
    static constexpr int kDegree = 6;                      // Taylor terms: r^7/7! < 1.3e-7 (~1 ulp)
};
template <> struct Simd<double> {
    typedef Vec<double>::type V;
    typedef std::int64_t I __attribute__((vector_size(kVecBytes)));
    static constexpr int kMantissaBits = 52, kExponentBias = 1023;
    static constexpr double kLo = -708.0, kHi = 709.0;
    static constexpr double kMagic = 6755399441055744.0;   // 1.5 * 2^52
    static constexpr double kLn2Hi = 6.93145751953125e-1, kLn2Lo = 1.42860682030941723212e-6;
    static constexpr int kDegree = 13;                     // r^14/14! < 5e-18
};
template <class T> using V = typename Simd<T>::V;
template <class T> constexpr int kLanes = kVecBytes / sizeof(T);

template <class T> inline V<T> splat(T v) { return V<T>{} + v; }
template <class T> inline V<T> load(const T* p) { V<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <class T> inline void store(T* p, V<T> v) { std::memcpy(p, &v, sizeof v); }
template <class T> inline V<T> load_partial(const T* p, index_t n, T fill) {   // n < kLanes values, rest fill
    V<T> v = splat(fill);
    for (index_t l = 0; l < n; ++l) v[l] = p[l];
    return v;
}

constexpr double inverse_factorial(int k) { return k == 0 ? 1.0 : inverse_factorial(k - 1) / k; }

// exp of every lane: 0 below kLo, inf above kHi. NaN needs no case of its own: it passes
// the clamps (comparisons are false), makes p NaN, and NaN times any scale is NaN.
template <class T>
[[gnu::always_inline]] inline V<T> vexp(V<T> x) {
    using S = Simd<T>;
    using I = typename S::I;
    const V<T> lo = splat<T>(S::kLo), hi = splat<T>(S::kHi), magic = splat<T>(S::kMagic);
    V<T> xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    const V<T> shifted = xc * T(1.4426950408889634) + magic;   // x / ln2 rounded, in the low bits
    const V<T> n = shifted - magic;
    const V<T> r = (xc - n * S::kLn2Hi) - n * S::kLn2Lo;       // x - n ln2, |r| <= ln2/2
    V<T> p = splat<T>(T(inverse_factorial(S::kDegree)));
#pragma GCC unroll 16
    for (int k = S::kDegree - 1; k >= 0; --k) p = p * r + T(inverse_factorial(k));
    // vector casts reinterpret the bits: 2^n is built from n's exponent field
    const I exponent = ((I)shifted - (I)magic + S::kExponentBias) << S::kMantissaBits;
    V<T> e = p * (V<T>)exponent;                      // e^r * 2^n
    e = x < lo ? V<T>{} : e;
    return x > hi ? splat(std::numeric_limits<T>::infinity()) : e;
}

template <class T> inline T lanes_max(V<T> v) {
    T m = v[0];
    for (int l = 1; l < kLanes<T>; ++l) m = v[l] > m ? v[l] : m;
    return m;
}

// The lanes of v added in double, in lane order.
template <class T> inline double lanes_sum(V<T> v) {
    double s = 0.0;
    for (int l = 0; l < kLanes<T>; ++l) s += v[l];
    return s;
}

// Sums are vector partial sums in T over blocks of kSumBlock vectors (a few dozen terms per
// lane: float rounding stays ~1e-6), each block's lanes then added in double.
constexpr index_t kSumBlock = 32;

// sum over c of f(vector of x from c) for a lane function f, the tail padded with `fill`.
template <class T, class F>
inline double row_sum_of(const T* x, index_t n, T fill, F&& f) {
    constexpr index_t L = kLanes<T>;
    double total = 0.0;
    index_t c = 0;
    while (c + L <= n) {
        V<T> acc{};
        for (index_t end = std::min(n - n % L, c + kSumBlock * L); c < end; c += L) acc += f(load(x + c));
        total += lanes_sum<T>(acc);
    }
    if (c < n) total += lanes_sum<T>(f(load_partial(x + c, n - c, fill)));
    return total;
}

// Largest of x[0..n) ignoring NaN (a NaN row still ends NaN: exp(NaN - m) poisons the sum).
template <class T>
inline T row_max(const T* x, index_t n) {
    constexpr index_t L = kLanes<T>;
    const T ninf = -std::numeric_limits<T>::infinity();
    V<T> m = splat(ninf);
    index_t c = 0;
    for (; c + L <= n; c += L) {
        const V<T> v = load(x + c);
        m = v > m ? v : m;
    }
    if (c < n) {
        const V<T> v = load_partial(x + c, n - c, ninf);
        m = v > m ? v : m;
    }
    return lanes_max<T>(m);
}

// sum over c of exp(x[c] - shift), in double (the tail padding -inf contributes exp(-inf) = 0).
template <class T>
inline double row_sum_exp(const T* x, index_t n, T shift) {
    return row_sum_of(x, n, -std::numeric_limits<T>::infinity(), [&](V<T> v) { return vexp<T>(v - shift); });
}

// sum over c of x[c], in double.
template <class T>
inline double row_sum(const T* x, index_t n) {
    return row_sum_of(x, n, T(0), [](V<T> v) { return v; });
}

// log(sum exp(x)) of a row, stable: max + log(sum exp(x - max)).
template <class T>
inline double row_logsumexp(const T* x, index_t n) {
    const T m = row_max(x, n);
    return m + std::log(row_sum_exp(x, n, m));
}

// out[c] = f(x[c]) for a lane function f applied to whole vectors, then to the tail.
template <class T, class F>
inline void row_map(T* out, const T* x, index_t n, F&& f) {
    constexpr index_t L = kLanes<T>;
    index_t c = 0;
    for (; c + L <= n; c += L) store(out + c, f(load(x + c), c));
    if (c < n) {
        const V<T> v = f(load_partial(x + c, n - c, T(0)), c);
        for (index_t l = 0; l < n - c; ++l) out[c + l] = v[l];
    }
}

constexpr index_t kParallelMin = 1 << 14;   // elements below which one thread does everything
constexpr index_t kStripRows = 16;          // strided rows gathered per work item
constexpr index_t kScratchRow = 1 << 16;    // bound on strip * dim (elements per scratch array)

// fn(r, out_row, in_rows) for every row r = o*inner + q: dim contiguous values per array.
// out may be null (cross_entropy_forward writes one value per row itself).
template <class T, std::size_t NIn, class Fn>
void for_each_row(T* out, std::array<const T*, NIn> in, const SoftmaxSizes& s, Fn&& fn) {
    const index_t rows = s.outer * s.inner, dim = s.dim;
    const int nt = rows * dim >= kParallelMin ? num_threads() : 1;
    if (s.inner == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (index_t r = 0; r < rows; ++r) {
            std::array<const T*, NIn> row;
            for (std::size_t k = 0; k < NIn; ++k) row[k] = in[k] + r * dim;
            fn(r, out ? out + r * dim : nullptr, row);
        }
        return;
    }
    const index_t strip = std::clamp<index_t>(kScratchRow / dim, 1, kStripRows);
    const index_t strips = ceil_div(s.inner, strip), per_array = strip * dim;
    AlignedBuffer<T> scratch = aligned_buffer<T>(nt * (NIn + 1) * per_array);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t task = 0; task < s.outer * strips; ++task) {
        const index_t o = task / strips, q0 = (task % strips) * strip, w = std::min(strip, s.inner - q0);
        const index_t base = o * dim * s.inner + q0;   // element (o, 0, q0)
        T* buf = scratch.get() + thread_index() * (NIn + 1) * per_array;
        T* obuf = buf + NIn * per_array;
        for (std::size_t k = 0; k < NIn; ++k)          // gather: buffer k holds w rows of dim
            for (index_t c = 0; c < dim; ++c)
                for (index_t q = 0; q < w; ++q) buf[k * per_array + q * dim + c] = in[k][base + c * s.inner + q];
        for (index_t q = 0; q < w; ++q) {
            std::array<const T*, NIn> row;
            for (std::size_t k = 0; k < NIn; ++k) row[k] = buf + k * per_array + q * dim;
            fn(o * s.inner + q0 + q, out ? obuf + q * dim : nullptr, row);
        }
        if (out)                                        // scatter the output rows back
            for (index_t c = 0; c < dim; ++c)
                for (index_t q = 0; q < w; ++q) out[base + c * s.inner + q] = obuf[q * dim + c];
    }
}

}  // namespace

template <class T>
void log_softmax_forward(T* y, const T* x, const SoftmaxSizes& s) {
    // y (outer, dim, inner) = log_softmax(x (outer, dim, inner)) along dim
    for_each_row<T, 1>(y, {x}, s, [&](index_t, T* yr, std::array<const T*, 1> in) {
        const T lse = static_cast<T>(row_logsumexp(in[0], s.dim));
        row_map(yr, in[0], s.dim, [&](V<T> v, index_t) { return v - lse; });
    });
}

template <class T>
void log_softmax_backward(T* grad_x, const T* grad_y, const T* y, const SoftmaxSizes& s) {
    // grad_x (outer, dim, inner) = grad_y - exp(y) * sum_dim(grad_y)
    for_each_row<T, 2>(grad_x, {grad_y, y}, s, [&](index_t, T* gx, std::array<const T*, 2> in) {
        const T total = static_cast<T>(row_sum(in[0], s.dim));
        const T* yr = in[1];
        row_map(gx, in[0], s.dim, [&](V<T> g, index_t c) {
            return g - vexp<T>(c + kLanes<T> <= s.dim ? load(yr + c) : load_partial(yr + c, s.dim - c, T(0))) * total;
        });
    });
}

template <class T>
void cross_entropy_forward(T* loss, const T* logits, const std::int64_t* target, const SoftmaxSizes& s) {
    // loss (outer, inner) from logits (outer, C = dim, inner) and target (outer, inner)
    const double eps = s.label_smoothing;
    for_each_row<T, 1>(static_cast<T*>(nullptr), {logits}, s, [&](index_t r, T*, std::array<const T*, 1> in) {
        const std::int64_t t = target[r];
        if (t == s.ignore_index) { loss[r] = T(0); return; }
        const double lse = row_logsumexp(in[0], s.dim);
        double l = lse - in[0][t];
        if (eps > 0.0) l = (1.0 - eps) * l + eps * (lse - row_sum(in[0], s.dim) / s.dim);
        loss[r] = static_cast<T>(l);
    });
}

template <class T>
void cross_entropy_backward(T* grad_logits, const T* logits, const std::int64_t* target,
                            const T* row_scale, const SoftmaxSizes& s) {
    // grad_logits (outer, C = dim, inner) = row_scale (outer, inner) * (softmax - smoothed one-hot)
    const double eps = s.label_smoothing;
    for_each_row<T, 1>(grad_logits, {logits}, s, [&](index_t r, T* g, std::array<const T*, 1> in) {
        const std::int64_t t = target[r];
        if (t == s.ignore_index) { std::fill(g, g + s.dim, T(0)); return; }
        const T scale = row_scale[r];
        const T lse = static_cast<T>(row_logsumexp(in[0], s.dim));
        const T uniform = static_cast<T>(scale * eps / s.dim);   // the smoothing's share per class
        row_map(g, in[0], s.dim, [&](V<T> v, index_t) { return vexp<T>(v - lse) * scale - uniform; });
        g[t] -= static_cast<T>(scale * (1.0 - eps));
    });
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
