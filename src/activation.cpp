// convkit/src/activation.cpp -- relu and dropout scaling (see activation.hpp).
//
// Memory-bound: each kernel reads its inputs once and writes its output once, on 16-byte
// vectors of the baseline instruction set (enough to saturate memory). Outputs larger
// than kStreamBytes are written with non-temporal stores: such an output would evict the
// whole cache anyway, and streaming skips reading each output line before writing it
// (a third of the traffic). Smaller outputs use plain stores and stay in cache for the
// next layer.
//
// Writes: every output is OVERWRITTEN. Each element is independent, so the work is split
// into fixed chunks over the threads (results cannot depend on the thread count); small
// arrays stay on the calling thread, where starting a parallel region costs more than the work.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include "activation.hpp"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace convkit {

namespace {

constexpr index_t kChunk = 1 << 15;                  // elements per parallel work item
constexpr index_t kParallelMin = 1 << 16;            // below this many elements: one thread
constexpr index_t kStreamBytes = index_t(8) << 20;   // outputs from 8 MiB on: non-temporal stores

template <class T> struct Lanes {
    static constexpr int L = 16 / sizeof(T);
    typedef T V __attribute__((vector_size(16)));
    typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> I;
    typedef I Mask __attribute__((vector_size(16)));   // a lane mask as comparisons produce it
};
template <class T> using V = typename Lanes<T>::V;

template <class T> inline V<T> load(const T* p) { V<T> v; std::memcpy(&v, p, sizeof v); return v; }

// The keep bytes of L lanes as a lane mask (all ones where keep != 0).
template <class T> inline typename Lanes<T>::Mask keep_mask(const std::uint8_t* keep) {
    typename Lanes<T>::Mask m;
    for (int l = 0; l < Lanes<T>::L; ++l) m[l] = keep[l];
    return m != 0;
}

// Store v at the 16-byte-aligned p, bypassing the cache when `stream`.
template <class T> inline void store_aligned(T* p, V<T> v, bool stream) {
#if defined(__SSE2__)
    if (stream) {
        if constexpr (sizeof(T) == 4) _mm_stream_ps(reinterpret_cast<float*>(p), reinterpret_cast<__m128&>(v));
        else _mm_stream_pd(reinterpret_cast<double*>(p), reinterpret_cast<__m128d&>(v));
        return;
    }
#endif
    (void)stream;
    *reinterpret_cast<V<T>*>(p) = v;
}

// y[i] = scalar(i) for i in [0, count): vector(i) computes lanes i..i+L-1. Parallel over
// fixed chunks; in each chunk a scalar head reaches 16-byte alignment of y, then vectors.
template <class T, class VectorFn, class ScalarFn>
void map_elements(T* y, index_t count, VectorFn&& vector, ScalarFn&& scalar) {
    constexpr index_t L = Lanes<T>::L;
    const index_t chunks = ceil_div(count, kChunk);
    const bool stream = count * index_t(sizeof(T)) >= kStreamBytes;
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (count >= kParallelMin)
    for (index_t c = 0; c < chunks; ++c) {
        const index_t end = std::min(count, (c + 1) * kChunk);
        index_t i = c * kChunk;
        for (; i < end && reinterpret_cast<std::uintptr_t>(y + i) % 16 != 0; ++i) y[i] = scalar(i);
        for (; i + L <= end; i += L) store_aligned(y + i, vector(i), stream);
        for (; i < end; ++i) y[i] = scalar(i);
#if defined(__SSE2__)
        if (stream) _mm_sfence();   // this thread's streamed stores complete before the region ends
#endif
    }
}

}  // namespace

template <class T>
void relu_forward(T* y, const T* x, const ElementwiseSizes& s) {
    // y (count) = relu(x (count)): x < 0 ? 0 : x (false for NaN and -0, which pass through)
    map_elements(y, s.count,
        [&](index_t i) { const V<T> v = load(x + i); return v < T(0) ? V<T>{} : v; },
        [&](index_t i) { return x[i] < T(0) ? T(0) : x[i]; });
}

template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* x, const ElementwiseSizes& s) {
    // grad_x (count) = 0 where x (count) <= 0, else grad_y (count)
    map_elements(grad_x, s.count,
        [&](index_t i) { return load(x + i) <= T(0) ? V<T>{} : load(grad_y + i); },
        [&](index_t i) { const T g = grad_y[i]; return x[i] <= T(0) ? T(0) : g; });
}

template <class T>
void dropout_forward(T* y, const T* x, const std::uint8_t* keep, const ElementwiseSizes& s) {
    // y (count) = x (count) * (keep (count) ? scale : 0)
    const T scale = static_cast<T>(s.scale);
    map_elements(y, s.count,
        [&](index_t i) { return load(x + i) * (keep_mask<T>(keep + i) ? V<T>{} + scale : V<T>{}); },
        [&](index_t i) { return x[i] * (keep[i] ? scale : T(0)); });
}

template <class T>
void dropout_backward(T* grad_x, const T* grad_y, const std::uint8_t* keep, const ElementwiseSizes& s) {
    // grad_x (count) = grad_y (count) * (keep (count) ? scale : 0): the forward map is linear
    dropout_forward(grad_x, grad_y, keep, s);
}

#define CONVKIT_INSTANTIATE(T)                                                                     \
    template void relu_forward<T>(T*, const T*, const ElementwiseSizes&);                        \
    template void relu_backward<T>(T*, const T*, const T*, const ElementwiseSizes&);             \
    template void dropout_forward<T>(T*, const T*, const std::uint8_t*, const ElementwiseSizes&); \
    template void dropout_backward<T>(T*, const T*, const std::uint8_t*, const ElementwiseSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)

}  // namespace convkit
