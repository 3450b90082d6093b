// convkit/gpu/conv2d.cu -- conv2d forward, backward-data, backward-weight on the GPU.
//
// Versions (STYLE.md 6; convkit/gpu/conv.py picks one, bench/bench_gpu_conv.py compares them):
//   v1   one thread per output element, a plain port of the definition (the oracle for v2/v3).
//   v2   implicit GEMM tiled in shared memory (gemm_tile.cuh GemmV2: 64 x 64 block tile,
//        BK = 16, 256 threads x 4 x 4 register micro-tiles), operands gathered on the fly.
//        DEFAULT for float64 and for GEMMs too small to fill the device with v3 tiles.
//   v3   GemmV3: 128 x 128 tile, BK = 8, 256 threads x 8 x 8 (2 x 2 sub-tiles of 4 x 4),
//        double-buffered shared tiles; same operands (conv_gemm_operands.cuh). DEFAULT for
//        float32 GEMMs with >= 128 rows and >= 2 x 132 tiles (conv.py _pick_version).
//   tf32 conv2d_forward_tf32, float only, opt-in (conv.py allow_tf32): v3's tiles and
//        operands, the math as m16n8k8 TF32 mma.sync per warp (mma.cuh).
// Per group g (Cig = C_in/G, Cog = C_out/G, grid z = group), the three v2 GEMMs are
//   forward          out (Cog x N*OH*OW)  = W[g] (Cog x Cig*KH*KW) * im2col(x) (Cig*KH*KW x N*OH*OW)
//   backward-data    dx  (Cig x N*H*W)    = W[g]^T (Cig x Cog*KH*KW) * gather(dy) (Cog*KH*KW x N*H*W)
//                    -- the adjoint as a GATHER: column (n, ih, iw) reads dy at (oh, ow) with
//                    oh*stride_h = ih + pad_h - kh*dil_h (zero where not a multiple / out of range)
//   backward-weight  dW  (Cog x Cig*KH*KW) = dy (Cog x P) * im2col(x)^T (P x Cig*KH*KW), P = N*OH*OW,
//                    P split into `splits` fixed chunks (grid z = group x split): each block
//                    writes its partial tile, conv2d_backward_weight_reduce sums the partials in
//                    split order (a fixed order: no atomics, bit-identical run to run).
// Columns are flattened over the whole batch, so a 1x1 conv on (M, K, 1, 1) is a plain GEMM
// (convkit/gpu/linear.py runs linear on it). Bias is added in the forward epilogue.
// Writes: every output (out, grad_x, grad_w, partials) is OVERWRITTEN, never accumulated into.
// Test: python -m pytest tests/test_conv2d.py tests/test_conv1d.py tests/test_depthwise.py
//       tests/test_conv_transpose.py tests/test_linear.py   (gpu cases: a GPU, or the CUDA emulator)
// Bench: python -m pytest bench/bench_gpu_conv.py --benchmark-only   (needs a GPU)
//
// Roofline (float32; estimates, no GPU measured yet -- issue 7; docs/gpu-kernels.md):
//   global/L2: a BM x BN x BK step loads (BM + BN) * BK values for BM * BN * BK FMAs: 16 FLOP/B
//     (v2), 32 FLOP/B (v3). H100 SXM ridge: 67 TFLOP/s / 3.35 TB/s = 20 FLOP/byte; the operand
//     re-reads mostly hit L2, so DRAM is not the limit on the AlexNet layers.
//   shared memory: v2 issues per k 8 scalar shared loads for 16 FMAs per thread; an SM serves
//     about one shared wavefront per clock against four FFMA warp-instructions, so LDS caps v2
//     at ~50% of the FP32 peak. v3 issues 4 vector (4-word) loads for 64 FMAs: the cap moves
//     past 100%, leaving issue slots, latency (one block = 8 warps per SM) and the gather's
//     index arithmetic as the limits. Less on stride > 1 backward-data (stride_h * stride_w
//     of the gathered dy values are zeros) and on thin layers (conv1: K = 363).
// Resource usage (nvcc 13 --resource-usage via .ci/compile_cuda.py, sm_90, float / double;
// registers, spill stores / loads in bytes, static smem):
//   v2 conv2d_forward                 128 / 128 (__launch_bounds__(256, 2): 2 blocks per SM),
//                                     spills 60/212 / 216/552 B, smem 8256 / 16512 B
//   v2 conv2d_backward_data           128 / 128, spills 68/156 / 168/396 B, smem 8256 / 16512 B
//   v2 conv2d_backward_weight         128 / 128, spills 0/0 / 200/348 B, smem 8256 / 16512 B
//      (uncapped, the three used 152-168 registers: 1 block = 8 warps per SM; a few spilled
//      per-tile indices cost less than half the occupancy -- to be measured, issue 7)
//   v3 conv2d_forward_v3              249 / 255 (__launch_bounds__(256, 1)), spills 0 / 80 B, smem 16640 / 33280 B
//   v3 conv2d_backward_data_v3        214 / 255, spills 0 / 108 B, smem 16640 / 33280 B
//   v3 conv2d_backward_weight_v3      251 / 255, spills 0 / 148 B, smem 16640 / 33280 B
//      (double: 64 accumulators = 128 registers, so v3 spills and is never picked by default)
//   tf32 conv2d_forward_tf32          254 (float only), no spills, smem 17408 B
//   conv2d_backward_weight_reduce     31 / 32 registers
//   v1 forward / backward_data / backward_weight   64 / 60 / 64 registers (float), no smem, no spills
#include "common.cuh"
#include "conv_common.cuh"
#include "gemm_tile.cuh"
#include "conv_gemm_operands.cuh"
#include "mma.cuh"

// ------------------------------------------------------------------ v2 / v3 / tf32 kernels
// Each pass is one __device__ body templated on the tile geometry and the math (gemm_tile.cuh),
// instantiated by thin __global__ kernels that own the __shared__ tiles and the launch bounds.
// Launch: block GEMM_THREADS; grid (column tiles, row tiles, groups [x splits]) of the tile's
// BM x BN; any grid smaller than that is covered by the grid-stride tile loops.

// Epilogue of the forward and backward-data tiles, whose GEMM rows are the channels of group g
// and whose columns are (image, pixel) of an NCHW result dst (`channels` channels, planes of
// `plane` pixels, cols = N * plane columns): the thread writes acc[i][j] to tile row
// Math::row(i) (channel g * rows + row0 + row) and column col0 + Math::col(j), plus
// bias[channel] when bias is not null; rows >= `rows` (the group's channel count) and
// columns >= cols are skipped.
template <typename Math, typename T, int TM>
__device__ __forceinline__ void store_nchw_tile(T* dst, const T (&acc)[TM][TM], const T* bias, index_t g, index_t rows,
                                                index_t channels, index_t plane, index_t cols, index_t row0,
                                                index_t col0) {
#pragma unroll
    for (int j = 0; j < TM; ++j) {
        const index_t col = col0 + Math::col(j);
        if (col >= cols) continue;
        const index_t img = col / plane, pix = col % plane;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const index_t row = row0 + Math::row(i);
            if (row >= rows) continue;
            const index_t c = g * rows + row;
            dst[(img * channels + c) * plane + pix] = acc[i][j] + (bias ? bias[c] : T(0));
        }
    }
}

// out (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, Cig, KH, KW)) [+ bias (C_out,)]
template <typename Tile, typename Math, typename T>
__device__ void conv2d_forward_tiles(GemmSmem<Tile, T>& smem, T* out, const T* x, const T* weight, const T* bias,
                                     const ConvSizes& s) {
    const index_t cols = s.n * s.ohw, steps = ceil_div(s.cig * s.khw, Tile::BK);
    CK_TILE_LOOP(g, s.groups, z) CK_TILE_LOOP(rt, ceil_div(s.cog, Tile::BM), y) CK_TILE_LOOP(ct, ceil_div(cols, Tile::BN), x) {
        ForwardOperands<Tile, T> operands(s, x, weight, g, rt * Tile::BM, ct * Tile::BN);
        T acc[Tile::TM][Tile::TM];
        zero_tile(acc);
        gemm_tile_accumulate<Tile, Math>(operands, steps, smem, acc);
        store_nchw_tile<Math>(out, acc, bias, g, s.cog, s.c_out, s.ohw, cols, rt * Tile::BM, ct * Tile::BN);
    }
}

// grad_x (N, C_in, H, W) from grad_out (N, C_out, OH, OW) and weight (C_out, Cig, KH, KW).
template <typename Tile, typename Math, typename T>
__device__ void conv2d_backward_data_tiles(GemmSmem<Tile, T>& smem, T* grad_x, const T* grad_out, const T* weight,
                                           const ConvSizes& s) {
    const index_t cols = s.n * s.hw, steps = ceil_div(s.cog * s.khw, Tile::BK);
    CK_TILE_LOOP(g, s.groups, z) CK_TILE_LOOP(rt, ceil_div(s.cig, Tile::BM), y) CK_TILE_LOOP(ct, ceil_div(cols, Tile::BN), x) {
        BackwardDataOperands<Tile, T> operands(s, grad_out, weight, g, rt * Tile::BM, ct * Tile::BN);
        T acc[Tile::TM][Tile::TM];
        zero_tile(acc);
        gemm_tile_accumulate<Tile, Math>(operands, steps, smem, acc);
        store_nchw_tile<Math>(grad_x, acc, (const T*)nullptr, g, s.cig, s.c_in, s.hw, cols, rt * Tile::BM, ct * Tile::BN);
    }
}

// partial (splits, C_out, Cig*KH*KW): split sp sums positions [sp*chunk, min(P, (sp+1)*chunk))
// of grad_out (N, C_out, OH, OW) x im2col(x). With splits == 1, partial is grad_w itself.
template <typename Tile, typename Math, typename T>
__device__ void conv2d_backward_weight_tiles(GemmSmem<Tile, T>& smem, T* partial, const T* grad_out, const T* x,
                                             index_t chunk, index_t splits, const ConvSizes& s) {
    const index_t cols = s.cig * s.khw, positions = s.n * s.ohw;
    CK_TILE_LOOP(gz, s.groups * splits, z) CK_TILE_LOOP(rt, ceil_div(s.cog, Tile::BM), y) CK_TILE_LOOP(ct, ceil_div(cols, Tile::BN), x) {
        const index_t g = gz / splits, split = gz % splits;
        const index_t p0 = split * chunk, p1 = p0 + chunk < positions ? p0 + chunk : positions;
        BackwardWeightOperands<Tile, T> operands(s, grad_out, x, g, rt * Tile::BM, ct * Tile::BN, p0, p1);
        T acc[Tile::TM][Tile::TM];
        zero_tile(acc);
        gemm_tile_accumulate<Tile, Math>(operands, ceil_div(p1 - p0, Tile::BK), smem, acc);
#pragma unroll
        for (int i = 0; i < Tile::TM; ++i) {
            const index_t m = rt * Tile::BM + Math::row(i);
            if (m >= s.cog) continue;
            T* row = partial + (split * s.c_out + g * s.cog + m) * cols;
#pragma unroll
            for (int j = 0; j < Tile::TM; ++j) {
                const index_t col = ct * Tile::BN + Math::col(j);
                if (col < cols) row[col] = acc[i][j];
            }
        }
    }
}

// v2: 64 x 64 tiles, 2 blocks per SM (the 128-register cap; see the resource table above).
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_forward(T* out, const T* x, const T* weight, const T* bias,
                                                                  int has_bias, CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV2, T> smem;
    conv2d_forward_tiles<GemmV2, FmaMath<GemmV2>>(smem, out, x, weight, has_bias ? bias : nullptr, CK_CONV_SIZES);
}

template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_backward_data(T* grad_x, const T* grad_out, const T* weight,
                                                                        CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV2, T> smem;
    conv2d_backward_data_tiles<GemmV2, FmaMath<GemmV2>>(smem, grad_x, grad_out, weight, CK_CONV_SIZES);
}

template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_backward_weight(T* partial, const T* grad_out, const T* x,
                                                                          long long chunk, long long splits,
                                                                          CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV2, T> smem;
    conv2d_backward_weight_tiles<GemmV2, FmaMath<GemmV2>>(smem, partial, grad_out, x, chunk, splits, CK_CONV_SIZES);
}

// v3: 128 x 128 tiles, 8 x 8 per thread, double-buffered; one block per SM (up to 255 registers).
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 1) conv2d_forward_v3(T* out, const T* x, const T* weight, const T* bias,
                                                                     int has_bias, CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV3, T> smem;
    conv2d_forward_tiles<GemmV3, FmaMath<GemmV3>>(smem, out, x, weight, has_bias ? bias : nullptr, CK_CONV_SIZES);
}

template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 1) conv2d_backward_data_v3(T* grad_x, const T* grad_out, const T* weight,
                                                                           CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV3, T> smem;
    conv2d_backward_data_tiles<GemmV3, FmaMath<GemmV3>>(smem, grad_x, grad_out, weight, CK_CONV_SIZES);
}

template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 1) conv2d_backward_weight_v3(T* partial, const T* grad_out, const T* x,
                                                                             long long chunk, long long splits,
                                                                             CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmV3, T> smem;
    conv2d_backward_weight_tiles<GemmV3, FmaMath<GemmV3>>(smem, partial, grad_out, x, chunk, splits, CK_CONV_SIZES);
}

// tf32 (float only, opt-in: convkit.gpu.conv.allow_tf32): v3's tiles and operands, the math on
// the tensor cores (mma.cuh). One block per SM like v3.
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 1) conv2d_forward_tf32(T* out, const T* x, const T* weight, const T* bias,
                                                                       int has_bias, CK_CONV_SIZE_PARAMS) {
    __shared__ GemmSmem<GemmTf32, T> smem;
    conv2d_forward_tiles<GemmTf32, MmaTf32Math>(smem, out, x, weight, has_bias ? bias : nullptr, CK_CONV_SIZES);
}

// grad_w[i] = sum over split = 0 .. splits-1 of partial[split][i], in that order (in double).
template <typename T>
__global__ void conv2d_backward_weight_reduce(T* grad_w, const T* partial, long long count, long long splits) {
    CK_GRID_STRIDE_LOOP(i, count) {
        double sum = 0.0;
        for (index_t split = 0; split < splits; ++split) sum += (double)partial[split * count + i];
        grad_w[i] = (T)sum;
    }
}

// ------------------------------------------------------------------ v1: one thread per output element

template <typename T>
__global__ void conv2d_forward_v1(T* out, const T* x, const T* weight, const T* bias, int has_bias,
                                  CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    CK_GRID_STRIDE_LOOP(i, s.n * s.c_out * s.ohw) {
        const index_t pix = i % s.ohw, co = (i / s.ohw) % s.c_out, img = i / (s.ohw * s.c_out);
        const index_t oh = pix / s.ow, ow = pix % s.ow, g = co / s.cog;
        T acc = T(0);
        for (index_t c = 0; c < s.cig; ++c) {
            const T* plane = x + (img * s.c_in + g * s.cig + c) * s.hw;
            const T* taps = weight + (co * s.cig + c) * s.khw;
            for (index_t r = 0; r < s.kh; ++r) {
                const index_t ih = oh * s.stride_h - s.pad_h + r * s.dil_h;
                if (!inside(ih, s.h)) continue;
                for (index_t q = 0; q < s.kw; ++q) {
                    const index_t iw = ow * s.stride_w - s.pad_w + q * s.dil_w;
                    if (inside(iw, s.w)) acc += plane[ih * s.w + iw] * taps[r * s.kw + q];
                }
            }
        }
        out[i] = acc + (has_bias ? bias[co] : T(0));
    }
}

template <typename T>
__global__ void conv2d_backward_data_v1(T* grad_x, const T* grad_out, const T* weight, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    CK_GRID_STRIDE_LOOP(i, s.n * s.c_in * s.hw) {
        const index_t pix = i % s.hw, ci = (i / s.hw) % s.c_in, img = i / (s.hw * s.c_in);
        grad_x[i] = gather_grad_x(grad_out, weight, s, img, ci / s.cig, ci % s.cig, pix / s.w, pix % s.w);
    }
}

template <typename T>
__global__ void conv2d_backward_weight_v1(T* grad_w, const T* grad_out, const T* x, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    CK_GRID_STRIDE_LOOP(i, s.c_out * s.cig * s.khw) {
        const index_t tap = i % s.khw, c = (i / s.khw) % s.cig, co = i / (s.khw * s.cig);
        const index_t dh = (tap / s.kw) * s.dil_h - s.pad_h, dw = (tap % s.kw) * s.dil_w - s.pad_w;
        const index_t g = co / s.cog;
        double acc = 0.0;      // long reduction (N*OH*OW terms): accumulate in double
        for (index_t img = 0; img < s.n; ++img) {
            const T* plane = x + (img * s.c_in + g * s.cig + c) * s.hw;
            const T* dy = grad_out + (img * s.c_out + co) * s.ohw;
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const index_t ih = oh * s.stride_h + dh;
                if (!inside(ih, s.h)) continue;
                for (index_t ow = 0; ow < s.ow; ++ow) {
                    const index_t iw = ow * s.stride_w + dw;
                    if (inside(iw, s.w)) acc += (double)(plane[ih * s.w + iw] * dy[oh * s.ow + ow]);
                }
            }
        }
        grad_w[i] = (T)acc;
    }
}
