// convkit/gpu/depthwise.cu -- depthwise conv2d (groups == C_in, C_out = multiplier * C_in):
// direct kernels, no GEMM (one input channel per group leaves nothing for a tile to reuse).
//
//   forward          one thread per output element (n, co, oh, ow), grid-stride: sums its
//                    KH*KW window of input channel ci = co / multiplier; weights through __ldg
//                    (the C_out*KH*KW weights are tiny and shared by a whole plane: cache hits).
//   backward-data    one thread per grad_x element (n, ci, ih, iw): GATHERS, for each of the
//                    channel's multiplier outputs and each tap, the one grad_out element that
//                    read it (oh*stride = ih + pad - kh*dil), so nothing is scattered.
//   backward-weight  one block per weight tap (co, kh, kw): each of its DW_THREADS threads
//                    sums a fixed strided subset of the N*OH*OW products in double, then a
//                    shared-memory tree in fixed order (deterministic, no atomics).
// Consecutive threads take consecutive ow, so loads and stores coalesce along rows.
// Writes: every output is OVERWRITTEN, never accumulated into.
// Test: python -m pytest tests/test_conv2d.py tests/test_conv1d.py tests/test_depthwise.py
//       tests/test_conv_transpose.py tests/test_linear.py   (gpu cases: a GPU, or the CUDA emulator)
// Bench: python -m pytest bench/bench_gpu_conv.py --benchmark-only   (needs a GPU)
// Memory-bound: 2 FLOP per tap; each input is read from DRAM about once (the overlapping
// windows of neighbouring threads hit L1/L2) and each output written once, so the target is
// bandwidth: bytes(x) + bytes(y) per call at >= 70% of device copy speed (issue 7).
// Resource usage (nvcc 13 --resource-usage, sm_90, float / double):
//   depthwise_conv2d_forward          56 / 64 registers, no smem, no spills
//   depthwise_conv2d_backward_data    60 / 62 registers, no smem, no spills
//   depthwise_conv2d_backward_weight  48 / 48 registers, 2048 B static smem (double partials)
#include "common.cuh"
#include "conv_common.cuh"

enum : int { DW_THREADS = 256 };   // block size of depthwise_conv2d_backward_weight (a power of 2)

// out (N, C_out, OH, OW) from x (N, C_in, H, W), weight (C_out, 1, KH, KW) [+ bias (C_out,)].
template <typename T>
__global__ void depthwise_conv2d_forward(T* out, const T* x, const T* weight, const T* bias, int has_bias,
                                         CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    CK_GRID_STRIDE_LOOP(i, s.n * s.c_out * s.ohw) {
        const index_t ow = i % s.ow, oh = (i / s.ow) % s.oh, nco = i / s.ohw;   // nco = n*C_out + co
        const index_t co = nco % s.c_out, img = nco / s.c_out;
        const T* plane = x + (img * s.c_in + co / s.cog) * s.hw;
        const T* taps = weight + co * s.khw;
        T acc = T(0);
        for (index_t r = 0; r < s.kh; ++r) {
            const index_t ih = oh * s.stride_h - s.pad_h + r * s.dil_h;
            if (!inside(ih, s.h)) continue;
            for (index_t q = 0; q < s.kw; ++q) {
                const index_t iw = ow * s.stride_w - s.pad_w + q * s.dil_w;
                if (inside(iw, s.w)) acc += __ldg(&plane[ih * s.w + iw]) * __ldg(&taps[r * s.kw + q]);
            }
        }
        out[i] = acc + (has_bias ? __ldg(&bias[co]) : T(0));
    }
}

// grad_x (N, C_in, H, W) from grad_out (N, C_out, OH, OW) and weight (C_out, 1, KH, KW).
template <typename T>
__global__ void depthwise_conv2d_backward_data(T* grad_x, const T* grad_out, const T* weight, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    CK_GRID_STRIDE_LOOP(i, s.n * s.c_in * s.hw) {
        const index_t iw = i % s.w, ih = (i / s.w) % s.h, nci = i / s.hw;   // nci = n*C_in + ci
        grad_x[i] = gather_grad_x(grad_out, weight, s, nci / s.c_in, nci % s.c_in, 0, ih, iw);   // group = ci
    }
}

// grad_w (C_out, 1, KH, KW): block b (grid-stride) computes tap b = (co, kh, kw) as
// sum over n, oh, ow of grad_out[n, co, oh, ow] * x[n, co / multiplier, ih, iw]. Block DW_THREADS.
template <typename T>
__global__ void depthwise_conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    __shared__ double partial[DW_THREADS];
    const int t = threadIdx.x;
    for (index_t tap_index = blockIdx.x; tap_index < s.c_out * s.khw; tap_index += gridDim.x) {
        const index_t co = tap_index / s.khw, tap = tap_index % s.khw;
        const index_t dh = (tap / s.kw) * s.dil_h - s.pad_h, dw = (tap % s.kw) * s.dil_w - s.pad_w;
        double sum = 0.0;                                  // this thread: positions t, t + DW_THREADS, ...
        for (index_t img = 0; img < s.n; ++img) {
            const T* dy = grad_out + (img * s.c_out + co) * s.ohw;
            const T* plane = x + (img * s.c_in + co / s.cog) * s.hw;
            for (index_t pix = t; pix < s.ohw; pix += DW_THREADS) {
                const index_t ih = (pix / s.ow) * s.stride_h + dh, iw = (pix % s.ow) * s.stride_w + dw;
                if (inside(ih, s.h) && inside(iw, s.w))
                    sum += (double)__ldg(&dy[pix]) * (double)__ldg(&plane[ih * s.w + iw]);
            }
        }
        partial[t] = sum;
        __syncthreads();
        for (int half = DW_THREADS / 2; half > 0; half /= 2) {   // fixed pairing: deterministic
            if (t < half) partial[t] += partial[t + half];
            __syncthreads();
        }
        if (t == 0) grad_w[tap_index] = (T)partial[0];
        __syncthreads();                                   // partial[0] read before the next tap reuses it
    }
}
