// convkit/gpu/resample.cu -- max-unpooling and 2-D upsampling (nearest, bed of nails,
// bilinear) on the GPU, forward and backward. Glue: convkit/gpu/resample.py; CPU twin:
// src/unpool2d.cpp, src/upsample2d*.cpp.
//
// Arrays are NCHW, C-contiguous, seen as `planes` = N*C independent (H, W) -> (OH, OW)
// planes (1-D unpooling runs with H = OH = 1). The per-axis coordinate tables of the
// upsampling modes come from convkit/_shapes.py (PyTorch's formulas, computed once on the
// host and cached on the device by the glue), so no rounding rule is restated here.
// Organisation: one thread per WRITTEN element, grid-stride, 64-bit indices; reads of
// neighbouring threads overlap in cache, no shared-memory tiling (memory-bound kernels).
//   unpool forward   a gather: output element o takes x at the LAST input (row-major) whose
//                    index is o, else 0 -- the CPU's duplicate rule -- scanning the candidates
//                    bounded by index_reach (indexing.cuh) backwards; indices straying across a
//                    plane go to max_unpool2d_forward_planewise (a thread per plane, in order).
//   unpool backward  grad_x[i] = grad_out[indices[i]] (a plain gather).
//   nearest / bed of nails   forward copies; backward sums the block of outputs that copied
//                    each input (the integer preimage ranges first_h/first_w) / reads one.
//   bilinear         forward blends four inputs (PyTorch's taps and weights); backward: each
//                    input gathers the output rows that read it through either tap (ranges
//                    first_h (2, H+1)) times the output columns likewise, in double.
// Writes: out and grad_x are fully OVERWRITTEN. Determinism: every written element is computed
// by one thread in a fixed order (no atomics): identical results run to run.
// Index errors: max_unpool2d_backward replaces an index outside [0, OH*OW) by 0 and sets
// *bad = 1 (every such thread stores the same value), so the glue can refuse the result; the
// forward's indices are checked by index_reach before it runs.
//
// Resources (nvcc 13 --resource-usage, sm_80, registers float / double; no spills):
//   max_unpool2d_forward 40 / 40, max_unpool2d_backward 34 / 34, upsample_nearest2d_forward 40 / 40,
//   upsample_nearest2d_backward 32 / 32, upsample_bed_of_nails2d_forward 42 / 42,
//   upsample_bilinear2d_forward 38 / 32, upsample_bilinear2d_backward 56 / 56,
//   index_reach 52 + 10 KiB static smem.
// Test: python -m pytest tests/test_max_unpool.py tests/test_upsample.py
// Bench: python -m pytest bench/bench_gpu_memory.py (on a GPU machine)
#include "common.cuh"
#include "indexing.cuh"

template <typename T>
__global__ void max_unpool2d_forward(T* out, const T* __restrict__ x, const index_t* __restrict__ indices,
                                     const index_t* __restrict__ rows, const index_t* __restrict__ cols,
                                     index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    // x, indices (planes, H, W) -> out (planes, OH, OW); indices in range (index_reach said so).
    // Candidates: input rows rows[r] .. rows[oh + r] - 1, columns cols[c] .. cols[ow + c] - 1.
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        const index_t target = r * ow + c, c0 = cols[c], c1 = cols[ow + c];
        index_t found = -1;   // scanned backwards: the first match is the last in row-major order
        for (index_t ih = rows[oh + r] - 1; ih >= rows[r] && found < 0; --ih)
            for (index_t iw = c1 - 1; iw >= c0 && found < 0; --iw) {
                const index_t i = (plane * h + ih) * w + iw;
                if (indices[i] == target) found = i;
            }
        out[o] = found >= 0 ? x[found] : T(0);
    }
}

template <typename T>
__global__ void max_unpool2d_forward_planewise(T* out, const T* __restrict__ x, const index_t* __restrict__ indices,
                                               index_t planes, index_t in_plane, index_t out_plane) {
    // the same for indices straying far (see the top): a thread per plane, zeros then x in order
    CK_GRID_STRIDE_LOOP(plane, planes) {
        T* op = out + plane * out_plane;
        for (index_t o = 0; o < out_plane; ++o) op[o] = T(0);
        for (index_t i = plane * in_plane; i < (plane + 1) * in_plane; ++i) op[indices[i]] = x[i];
    }
}

template <typename T>
__global__ void max_unpool2d_backward(T* grad_x, int* bad, const T* __restrict__ grad_out,
                                      const index_t* __restrict__ indices, index_t planes, index_t in_plane,
                                      index_t out_plane) {
    // grad_out (planes, OH*OW), indices (planes, H*W) -> grad_x (planes, H*W) = grad_out at indices
    CK_GRID_STRIDE_LOOP(i, planes * in_plane) {
        const index_t v = indices[i];
        const bool ok = v >= 0 && v < out_plane;
        if (!ok) *bad = 1;
        grad_x[i] = grad_out[i / in_plane * out_plane + (ok ? v : 0)];
    }
}

template <typename T>
__global__ void upsample_nearest2d_forward(T* out, const T* __restrict__ x, const index_t* __restrict__ src_h,
                                           const index_t* __restrict__ src_w, index_t planes, index_t h, index_t w,
                                           index_t oh, index_t ow) {
    // x (planes, H, W) -> out (planes, OH, OW) = x[src_h[r], src_w[c]]
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        out[o] = x[(plane * h + src_h[r]) * w + src_w[c]];
    }
}

template <typename T>
__global__ void upsample_nearest2d_backward(T* grad_x, const T* __restrict__ grad_out,
                                            const index_t* __restrict__ first_h, const index_t* __restrict__ first_w,
                                            index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): the sum (in double) of the output rows
    // first_h[ih] .. first_h[ih+1]-1 and columns first_w[iw] .. first_w[iw+1]-1
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        const T* gy = grad_out + plane * oh * ow;
        double acc = 0;
        for (index_t r = first_h[ih]; r < first_h[ih + 1]; ++r)
            for (index_t c = first_w[iw]; c < first_w[iw + 1]; ++c) acc += double(gy[r * ow + c]);
        grad_x[i] = T(acc);
    }
}

template <typename T>
__global__ void upsample_bed_of_nails2d_forward(T* out, const T* __restrict__ x, index_t planes, index_t h,
                                                index_t w, index_t oh, index_t ow) {
    // x (planes, H, W) -> out (planes, OH, OW): x[r / fh, c / fw] where fh | r and fw | c, else 0
    const index_t fh = oh / h, fw = ow / w;
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        out[o] = r % fh == 0 && c % fw == 0 ? x[(plane * h + r / fh) * w + c / fw] : T(0);
    }
}

template <typename T>
__global__ void upsample_bed_of_nails2d_backward(T* grad_x, const T* __restrict__ grad_out, index_t planes,
                                                 index_t h, index_t w, index_t oh, index_t ow) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W) = grad_out[ih * fh, iw * fw]
    const index_t fh = oh / h, fw = ow / w;
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        grad_x[i] = grad_out[(plane * oh + ih * fh) * ow + iw * fw];
    }
}

template <typename T>
__global__ void upsample_bilinear2d_forward(T* out, const T* __restrict__ x, const index_t* __restrict__ taps_h,
                                            const T* __restrict__ weights_h, const index_t* __restrict__ taps_w,
                                            const T* __restrict__ weights_w, index_t planes, index_t h, index_t w,
                                            index_t oh, index_t ow) {
    // x (planes, H, W) -> out (planes, OH, OW); taps/weights (2, OH) and (2, OW): output (r, c) =
    // sum over a, b of weights_h[a, r] * weights_w[b, c] * x[taps_h[a, r], taps_w[b, c]],
    // interpolated along W first, as the CPU kernel
    CK_GRID_STRIDE_LOOP(o, planes * oh * ow) {
        index_t plane, r, c;
        unflatten(o, oh, ow, &plane, &r, &c);
        const T* row0 = x + (plane * h + taps_h[r]) * w;
        const T* row1 = x + (plane * h + taps_h[oh + r]) * w;
        const index_t c0 = taps_w[c], c1 = taps_w[ow + c];
        const T a0 = weights_w[c], a1 = weights_w[ow + c];
        out[o] = weights_h[r] * (a0 * row0[c0] + a1 * row0[c1]) + weights_h[oh + r] * (a0 * row1[c0] + a1 * row1[c1]);
    }
}

template <typename T>
__global__ void upsample_bilinear2d_backward(T* grad_x, const T* __restrict__ grad_out,
                                             const index_t* __restrict__ first_h, const T* __restrict__ weights_h,
                                             const index_t* __restrict__ first_w, const T* __restrict__ weights_w,
                                             index_t planes, index_t h, index_t w, index_t oh, index_t ow) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W). first_h (2, H+1): output rows
    // first_h[a, ih] .. first_h[a, ih+1]-1 read input row ih through tap a (weight weights_h[a, r]);
    // columns alike. grad_x = sum over both taps' rows and columns of weight * weight * grad_out, in double.
    CK_GRID_STRIDE_LOOP(i, planes * h * w) {
        index_t plane, ih, iw;
        unflatten(i, h, w, &plane, &ih, &iw);
        const T* gy = grad_out + plane * oh * ow;
        double acc = 0;
        for (int a = 0; a < 2; ++a)
            for (index_t r = first_h[a * (h + 1) + ih]; r < first_h[a * (h + 1) + ih + 1]; ++r) {
                double row = 0;
                for (int b = 0; b < 2; ++b)
                    for (index_t c = first_w[b * (w + 1) + iw]; c < first_w[b * (w + 1) + iw + 1]; ++c)
                        row += double(weights_w[b * ow + c]) * double(gy[r * ow + c]);
                acc += double(weights_h[a * oh + r]) * row;
            }
        grad_x[i] = T(acc);
    }
}
