// convkit/src/common.hpp -- types and helpers shared by every CPU kernel.
//
// Contract for all kernels in src/: arguments were validated in Python
// (convkit/_shapes.py); pointers are to C-contiguous arrays; every index is
// 64-bit so tensors over 2**31 elements do not wrap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace convkit {

using index_t = std::int64_t;

// Sizes of one 2-D convolution (conv1d runs as conv2d with H = KH = 1).
struct Conv2dSizes {
    index_t n, c_in, h, w;            // input  (N, C_in, H, W)
    index_t c_out, kh, kw;            // weight (C_out, C_in/groups, KH, KW)
    index_t oh, ow;                   // output (N, C_out, OH, OW)
    index_t stride_h, stride_w;
    index_t pad_h, pad_w;             // padding before (top, left); after is implied by OH/OW
    index_t dil_h, dil_w;
    index_t groups;
};

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }
// Input positions (along one axis, from the first window's start) that `out` windows of
// `k` taps read at this stride and dilation: conv, depthwise and pooling buffers alike.
inline index_t windows_span(index_t out, index_t stride, index_t k, index_t dil) { return (out - 1) * stride + (k - 1) * dil + 1; }

// 64-byte aligned scratch memory (packing buffers); throws std::bad_alloc.
struct AlignedFree { void operator()(void* p) const { std::free(p); } };
template <class T> using AlignedBuffer = std::unique_ptr<T[], AlignedFree>;

template <class T> AlignedBuffer<T> aligned_buffer(index_t count) {
    std::size_t bytes = static_cast<std::size_t>(round_up(count > 0 ? count : 1, 64 / sizeof(T))) * sizeof(T);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return AlignedBuffer<T>(static_cast<T*>(p));
}

// Ask for `count` values from p to be brought into the cache: data a loop reads next but
// that hardware prefetchers cannot guess (a channel's images C planes apart, the next plane
// of a pooling task while this one computes).
template <class T> inline void prefetch(const T* p, index_t count) {
    const char* b = reinterpret_cast<const char*>(p);
    for (index_t i = 0; i < count * static_cast<index_t>(sizeof(T)); i += 64) __builtin_prefetch(b + i);
}

// Thread count used by every parallel region (convkit.set_num_threads).
int num_threads();
void set_num_threads(int n);
bool openmp_enabled();
int thread_index();   // omp_get_thread_num() inside a parallel region, 0 without OpenMP

}  // namespace convkit
