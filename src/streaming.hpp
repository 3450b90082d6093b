// convkit/src/streaming.hpp -- stores that bypass the caches, for outputs too large to stay in
// them (compiled once per instruction set, inside namespace convkit::CONVKIT_ISA). A plain
// store first reads its line from memory (read for ownership): for a kernel that reads two
// arrays and writes a third, that is a quarter of the traffic. Streamed lines must be whole
// and 64-byte aligned; results from 16 MiB on are 2 MiB aligned (result_cache.hpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include "common.hpp"
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Outputs of at least this many bytes are streamed.
constexpr index_t kStreamBytes = index_t(16) << 20;

inline bool line_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// dst[0, 64 bytes) = src[0, 64 bytes) past the caches (dst line_aligned).
inline void stream_line(void* dst, const void* src) {
#if defined(__AVX512F__)
    _mm512_stream_si512(static_cast<__m512i*>(dst), _mm512_loadu_si512(src));
#elif defined(__AVX__)
    for (int k = 0; k < 2; ++k)
        _mm256_stream_si256(static_cast<__m256i*>(dst) + k, _mm256_loadu_si256(static_cast<const __m256i*>(src) + k));
#elif defined(__SSE2__)
    for (int k = 0; k < 4; ++k)
        _mm_stream_si128(static_cast<__m128i*>(dst) + k, _mm_loadu_si128(static_cast<const __m128i*>(src) + k));
#else
    std::memcpy(dst, src, 64);
#endif
}

// dst[0, n) = src[0, n): dst's whole lines streamed, its partial first and last lines stored.
template <class T>
void copy_streaming(T* dst, const T* src, index_t n) {
    constexpr index_t per_line = 64 / sizeof(T);
    const index_t head = std::min<index_t>(n, (64 - reinterpret_cast<std::uintptr_t>(dst) % 64) % 64 / sizeof(T));
    std::memcpy(dst, src, head * sizeof(T));
    index_t i = head;
    for (; i + per_line <= n; i += per_line) stream_line(dst + i, src + i);
    std::memcpy(dst + i, src + i, (n - i) * sizeof(T));
}

// Orders the streamed stores before the stores that follow (they are weakly ordered).
inline void stream_fence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
