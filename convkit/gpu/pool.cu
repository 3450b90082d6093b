// convkit/gpu/pool.cu -- pooling on the GPU: max / avg (windowed), adaptive avg / max, and
// their backward passes. Glue: convkit/gpu/pool.py; CPU twin: src/pool2d*.
//
// Arrays are NCHW, C-contiguous, seen as `planes` = N*C independent (H, W) -> (OH, OW)
// planes (1-D pooling arrives lifted to H = kH = 1). Arguments were validated in Python.
// Organisation (one thread per written element, grid-stride, 64-bit indices):
//   forward   a thread per output element reads its window. Windows overlap and are small,
//             so neighbouring threads share cached input lines; no shared-memory tiling.
//   backward  a GATHER, never a scatter: a thread per input element sums the outputs that
//             read it -- avg: the outputs whose window covers it (ranges from the geometry);
//             max: the outputs whose saved index is this element, searched among the
//             candidates bounded by index_reach (indexing.cuh), as max_pool2d_backward gets no
//             window geometry (it also serves adaptive max pooling and any valid indices).
//             Indices straying across most of a plane go to max_pool2d_backward_planewise,
//             a thread per plane adding the outputs in order.
//   adaptive avg pooling with large bins (global pooling) uses a block per output bin: a
//             fixed strided partial sum per thread, then a shared-memory tree.
// Semantics as the CPU kernels: max pooling takes, over the window in row-major order, an
// element that is greater than the running max or NaN (first max wins ties; NaN propagates,
// the last NaN is reported); padding never wins; a window with no element above -inf reports
// its first tap inside the input. Window sums of avg pooling run in row-major order in T and
// the backward adds the outputs in the CPU's tap order (bit-identical to the CPU kernels);
// adaptive avg pooling sums in double.
// Writes: out, indices and grad_x are fully OVERWRITTEN. Determinism: every written element
// is computed by one thread (or one block) in a fixed order: results are identical run to run.
//
// Resources (nvcc 13 --resource-usage, sm_80, registers float / double; no spills):
//   max_pool2d_forward 40 / 40, max_pool2d_forward_with_indices 38 / 38, max_pool2d_backward 40 / 40,
//   avg_pool2d_forward 48 / 48, avg_pool2d_backward 56 / 72, adaptive_avg_pool2d_forward 32 / 32,
//   adaptive_avg_pool2d_forward_blockwise 44 / 44 + 2 KiB static smem, adaptive_avg_pool2d_backward
//   80 / 80, adaptive_max_pool2d_forward_with_indices 44 / 46, index_reach 52 + 10 KiB static smem.
// Test: python -m pytest tests/test_max_pool.py tests/test_avg_pool.py tests/test_adaptive_pool.py
// Bench: python -m pytest bench/bench_gpu_memory.py (on a GPU machine)
#include "common.cuh"
#include "indexing.cuh"

// -inf, the value of padding (NVRTC has no <limits>; IEEE division, well defined on the GPU)
template <typename T>
__device__ __forceinline__ T minus_infinity() { return T(-1) / T(0); }

// First tap along one axis whose input position start + k*dil is >= 0.
__device__ __forceinline__ index_t first_tap(index_t start, index_t dil) { return start >= 0 ? 0 : ceil_div(-start, dil); }

// The max of one window of plane xp and the flat offset of the element chosen (see the top).
template <typename T>
__device__ __forceinline__ T window_max(const T* __restrict__ xp, index_t h, index_t w, index_t ih0, index_t iw0,
                                        index_t kh, index_t kw, index_t dil_h, index_t dil_w, index_t* where) {
    const index_t fh = first_tap(ih0, dil_h), fw = first_tap(iw0, dil_w);
    T m = minus_infinity<T>();
    index_t best = (ih0 + fh * dil_h) * w + iw0 + fw * dil_w;   // kept when nothing beats -inf
    for (index_t i = fh; i < kh && ih0 + i * dil_h < h; ++i)
        for (index_t j = fw; j < kw && iw0 + j * dil_w < w; ++j) {
            const index_t at = (ih0 + i * dil_h) * w + iw0 + j * dil_w;
            const T v = xp[at];
            if (v > m || v != v) m = v, best = at;
        }
    *where = best;
    return m;
}

// Max pooling, one thread per output (planes, OH, OW); indices: flat offsets into each H*W plane.
template <typename T, bool WITH_INDICES>
__device__ __forceinline__ void max_pool2d(T* out, index_t* indices, const T* __restrict__ x, index_t planes,
                                           index_t h, index_t w, index_t oh, index_t ow, index_t kh, index_t kw,
                                           index_t stride_h, index_t stride_w, index_t pad_h, index_t pad_w,
                                           index_t dil_h, index_t dil_w) {
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        index_t where;
        out[o] = window_max(x + plane * h * w, h, w, r * stride_h - pad_h, c * stride_w - pad_w, kh, kw,
                            dil_h, dil_w, &where);
        if (WITH_INDICES) indices[o] = where;
    }
}

template <typename T>
__global__ void max_pool2d_forward(T* out, const T* __restrict__ x, index_t planes, index_t h, index_t w,
                                   index_t oh, index_t ow, index_t kh, index_t kw, index_t stride_h,
                                   index_t stride_w, index_t pad_h, index_t pad_w, index_t dil_h, index_t dil_w) {
    // x (planes, H, W) -> out (planes, OH, OW)
    max_pool2d<T, false>(out, nullptr, x, planes, h, w, oh, ow, kh, kw, stride_h, stride_w, pad_h, pad_w,
                         dil_h, dil_w);
}

template <typename T>
__global__ void max_pool2d_forward_with_indices(T* out, index_t* indices, const T* __restrict__ x, index_t planes,
                                                index_t h, index_t w, index_t oh, index_t ow, index_t kh,
                                                index_t kw, index_t stride_h, index_t stride_w, index_t pad_h,
                                                index_t pad_w, index_t dil_h, index_t dil_w) {
    // x (planes, H, W) -> out, indices (planes, OH, OW)
    max_pool2d<T, true>(out, indices, x, planes, h, w, oh, ow, kh, kw, stride_h, stride_w, pad_h, pad_w,
                        dil_h, dil_w);
}

template <typename T>
__global__ void max_pool2d_backward(T* grad_x, const T* __restrict__ grad_out, const index_t* __restrict__ indices,
                                    const index_t* __restrict__ rows, const index_t* __restrict__ cols,
                                    index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    // grad_out, indices (planes, OH, OW) -> grad_x (planes, H, W): the gradients of the outputs
    // whose index is this element, added in output order (as the CPU's scatter adds them).
    // Candidates: output rows rows[ih] .. rows[h + ih] - 1, columns cols[iw] .. cols[w + iw] - 1
    // (from the index reach, see indexing.cuh).
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        const index_t target = ih * w + iw, c0 = cols[iw], c1 = cols[w + iw];
        T acc = T(0);
        for (index_t r = rows[ih]; r < rows[h + ih]; ++r)
            for (index_t c = c0; c < c1; ++c) {
                const index_t j = (plane * oh + r) * ow + c;
                if (indices[j] == target) acc += grad_out[j];
            }
        grad_x[i] = acc;
    }
}

template <typename T>
__global__ void max_pool2d_backward_planewise(T* grad_x, const T* __restrict__ grad_out,
                                              const index_t* __restrict__ indices, index_t planes,
                                              index_t in_plane, index_t out_plane) {
    // the same result for indices straying far (see the top): a thread per plane, in output order
    CK_GRID_STRIDE_LOOP(plane, planes) {
        T* gx = grad_x + plane * in_plane;
        for (index_t i = 0; i < in_plane; ++i) gx[i] = T(0);
        for (index_t j = plane * out_plane; j < (plane + 1) * out_plane; ++j) gx[indices[j]] += grad_out[j];
    }
}

// PyTorch's avg-pool divisor along one axis: the window [start, start + k) clipped to the
// padded input [-pad, n + pad) when padding counts, else to the input [0, n).
__device__ __forceinline__ index_t pool_extent(index_t start, index_t k, index_t n, index_t pad, int count_pad) {
    return count_pad ? min_index(start + k, n + pad) - start : min_index(start + k, n) - max_index(start, 0);
}

__device__ __forceinline__ index_t avg_divisor(index_t ih0, index_t iw0, index_t h, index_t w, index_t kh,
                                               index_t kw, index_t pad_h, index_t pad_w, int count_pad,
                                               index_t divisor_override) {
    return divisor_override ? divisor_override
                            : pool_extent(ih0, kh, h, pad_h, count_pad) * pool_extent(iw0, kw, w, pad_w, count_pad);
}

template <typename T>
__global__ void avg_pool2d_forward(T* out, const T* __restrict__ x, index_t planes, index_t h, index_t w,
                                   index_t oh, index_t ow, index_t kh, index_t kw, index_t stride_h,
                                   index_t stride_w, index_t pad_h, index_t pad_w, int count_include_pad,
                                   index_t divisor_override) {
    // x (planes, H, W) -> out (planes, OH, OW): the window's sum (row-major, in T) / divisor
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        const index_t ih0 = r * stride_h - pad_h, iw0 = c * stride_w - pad_w;
        const T* xp = x + plane * h * w;
        T acc = T(0);
        for (index_t ih = max_index(ih0, 0); ih < min_index(ih0 + kh, h); ++ih)
            for (index_t iw = max_index(iw0, 0); iw < min_index(iw0 + kw, w); ++iw) acc += xp[ih * w + iw];
        out[o] = acc / T(avg_divisor(ih0, iw0, h, w, kh, kw, pad_h, pad_w, count_include_pad, divisor_override));
    }
}

template <typename T>
__global__ void avg_pool2d_backward(T* grad_x, const T* __restrict__ grad_out, index_t planes, index_t h,
                                    index_t w, index_t oh, index_t ow, index_t kh, index_t kw, index_t stride_h,
                                    index_t stride_w, index_t pad_h, index_t pad_w, int count_include_pad,
                                    index_t divisor_override) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): the sum of grad / divisor over the
    // outputs whose window covers this element, in the CPU's order (window taps row-major,
    // i.e. output rows and columns descending)
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        const index_t ph = ih + pad_h, pw = iw + pad_w;   // padded position: output r covers it
        const index_t r0 = ph < kh ? 0 : ceil_div(ph - kh + 1, stride_h), r1 = min_index(ph / stride_h, oh - 1);
        const index_t c0 = pw < kw ? 0 : ceil_div(pw - kw + 1, stride_w), c1 = min_index(pw / stride_w, ow - 1);
        const T* gy = grad_out + plane * oh * ow;
        T acc = T(0);
        for (index_t r = r1; r >= r0; --r)
            for (index_t c = c1; c >= c0; --c)
                acc += gy[r * ow + c] / T(avg_divisor(r * stride_h - pad_h, c * stride_w - pad_w, h, w, kh, kw,
                                                      pad_h, pad_w, count_include_pad, divisor_override));
        grad_x[i] = acc;
    }
}

// Adaptive bins along one axis: output i covers [floor(i*n/out), ceil((i+1)*n/out)).
__device__ __forceinline__ index_t bin_start(index_t i, index_t n, index_t out) { return i * n / out; }
__device__ __forceinline__ index_t bin_end(index_t i, index_t n, index_t out) { return ceil_div((i + 1) * n, out); }

// The bin of output element o of a (planes, OH, OW) adaptive pooling: input rows [ih0, ih1),
// columns [iw0, iw1) of plane `plane` (never empty).
struct AdaptiveBin {
    index_t plane, ih0, ih1, iw0, iw1;

    __device__ AdaptiveBin(index_t o, index_t h, index_t w, index_t oh, index_t ow) {
        index_t r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        ih0 = bin_start(r, h, oh), ih1 = bin_end(r, h, oh);
        iw0 = bin_start(c, w, ow), iw1 = bin_end(c, w, ow);
    }
};

template <typename T>
__global__ void adaptive_avg_pool2d_forward(T* out, const T* __restrict__ x, index_t planes, index_t h, index_t w,
                                            index_t oh, index_t ow) {
    // x (planes, H, W) -> out (planes, OH, OW): bin means, summed row-major in double
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        const AdaptiveBin bin(o, h, w, oh, ow);
        const T* xp = x + bin.plane * h * w;
        double acc = 0;
        for (index_t ih = bin.ih0; ih < bin.ih1; ++ih)
            for (index_t iw = bin.iw0; iw < bin.iw1; ++iw) acc += double(xp[ih * w + iw]);
        out[o] = T(acc / double((bin.ih1 - bin.ih0) * (bin.iw1 - bin.iw0)));
    }
}

constexpr int kBinThreads = 256;   // blockDim.x of adaptive_avg_pool2d_forward_blockwise

template <typename T>
__global__ void adaptive_avg_pool2d_forward_blockwise(T* out, const T* __restrict__ x, index_t planes, index_t h,
                                                      index_t w, index_t oh, index_t ow) {
    // the same for large bins (global pooling): a block per output bin; thread t sums the bin's
    // elements t, t + 256, ... (row-major) in double, then a shared-memory tree adds the 256 sums
    __shared__ double partial[kBinThreads];
    for (index_t o = blockIdx.x; o < planes * oh * ow; o += gridDim.x) {   // uniform: every thread loops alike
        const AdaptiveBin bin(o, h, w, oh, ow);
        const index_t bw = bin.iw1 - bin.iw0, n = (bin.ih1 - bin.ih0) * bw;
        const T* xp = x + bin.plane * h * w + bin.ih0 * w + bin.iw0;
        double acc = 0;
        for (index_t e = threadIdx.x; e < n; e += kBinThreads) acc += double(xp[e / bw * w + e % bw]);
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (int half = kBinThreads / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) out[o] = T(partial[0] / double(n));
        __syncthreads();   // partial[0] is read before the next bin overwrites it
    }
}

template <typename T>
__global__ void adaptive_avg_pool2d_backward(T* grad_x, const T* __restrict__ grad_out, index_t planes, index_t h,
                                             index_t w, index_t oh, index_t ow) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): sum of grad / bin size over the bins
    // holding this element (rows [floor(ih*OH/H), floor(((ih+1)*OH-1)/H)], columns alike), in double
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        const T* gy = grad_out + plane * oh * ow;
        double acc = 0;
        for (index_t r = ih * oh / h; r <= ((ih + 1) * oh - 1) / h; ++r) {
            const index_t rows = bin_end(r, h, oh) - bin_start(r, h, oh);
            for (index_t c = iw * ow / w; c <= ((iw + 1) * ow - 1) / w; ++c)
                acc += double(gy[r * ow + c]) / double(rows * (bin_end(c, w, ow) - bin_start(c, w, ow)));
        }
        grad_x[i] = T(acc);
    }
}

// Adaptive max pooling, one thread per output; max / NaN / index rules of window_max (a bin
// is never empty, so its first element is the start value).
template <typename T, bool WITH_INDICES>
__device__ __forceinline__ void adaptive_max_pool2d(T* out, index_t* indices, const T* __restrict__ x,
                                                    index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        const AdaptiveBin bin(o, h, w, oh, ow);
        const T* xp = x + bin.plane * h * w;
        index_t best = bin.ih0 * w + bin.iw0;
        T m = xp[best];
        for (index_t ih = bin.ih0; ih < bin.ih1; ++ih)
            for (index_t iw = bin.iw0; iw < bin.iw1; ++iw) {
                const T v = xp[ih * w + iw];
                if (v > m || v != v) m = v, best = ih * w + iw;
            }
        out[o] = m;
        if (WITH_INDICES) indices[o] = best;
    }
}

template <typename T>
__global__ void adaptive_max_pool2d_forward(T* out, const T* __restrict__ x, index_t planes, index_t h, index_t w,
                                            index_t oh, index_t ow) {
    // x (planes, H, W) -> out (planes, OH, OW)
    adaptive_max_pool2d<T, false>(out, nullptr, x, planes, h, w, oh, ow);
}

template <typename T>
__global__ void adaptive_max_pool2d_forward_with_indices(T* out, index_t* indices, const T* __restrict__ x,
                                                         index_t planes, index_t h, index_t w, index_t oh,
                                                         index_t ow) {
    // x (planes, H, W) -> out, indices (planes, OH, OW)
    adaptive_max_pool2d<T, true>(out, indices, x, planes, h, w, oh, ow);
}
