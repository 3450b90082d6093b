// convkit/src/simd_first.hpp -- the first n lanes of a vector from / to memory, never touching
// memory past them: the last, partial vector of a row (masked loads and stores where the
// instruction set has them; a copy through a small buffer otherwise). Vec<T> is the
// instruction set's vector (gemm.hpp). Compiled once per instruction set, like gemm.hpp.
#pragma once
#include "gemm.hpp"   // Vec<T>, kVecBytes
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including simd_first.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {

// The first n <= lanes values of p, the other lanes 0 / stored: lanes 0 .. n-1 of v.
template <class T> inline typename Vec<T>::type load_first(const T* p, index_t n);
template <class T> inline void store_first(T* p, const typename Vec<T>::type& v, index_t n);
#if defined(__AVX512F__)
template <> inline Vec<float>::type load_first(const float* p, index_t n) {
    return (Vec<float>::type)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
}
template <> inline Vec<double>::type load_first(const double* p, index_t n) {
    return (Vec<double>::type)_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p);
}
template <> inline void store_first(float* p, const Vec<float>::type& v, index_t n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), (__m512)v);
}
template <> inline void store_first(double* p, const Vec<double>::type& v, index_t n) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), (__m512d)v);
}
#elif defined(__AVX2__)
inline __m256i first_lanes32(index_t n) {   // lanes 0..n-1 of 8 int32 set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i first_lanes64(index_t n) {   // lanes 0..n-1 of 4 int64 set
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
template <> inline Vec<float>::type load_first(const float* p, index_t n) {
    return (Vec<float>::type)_mm256_maskload_ps(p, first_lanes32(n));
}
template <> inline Vec<double>::type load_first(const double* p, index_t n) {
    return (Vec<double>::type)_mm256_maskload_pd(p, first_lanes64(n));
}
template <> inline void store_first(float* p, const Vec<float>::type& v, index_t n) {
    _mm256_maskstore_ps(p, first_lanes32(n), (__m256)v);
}
template <> inline void store_first(double* p, const Vec<double>::type& v, index_t n) {
    _mm256_maskstore_pd(p, first_lanes64(n), (__m256d)v);
}
#else
template <class T> inline typename Vec<T>::type load_first(const T* p, index_t n) {
    alignas(64) T t[kVecBytes / sizeof(T)] = {};
    for (index_t i = 0; i < n; ++i) t[i] = p[i];
    typename Vec<T>::type v;
    std::memcpy(&v, t, sizeof v);
    return v;
}
template <class T> inline void store_first(T* p, const typename Vec<T>::type& v, index_t n) {
    alignas(64) T t[kVecBytes / sizeof(T)];
    std::memcpy(t, &v, sizeof v);
    for (index_t i = 0; i < n; ++i) p[i] = t[i];
}
#endif

}  // namespace CONVKIT_ISA
}  // namespace convkit
