// convkit/gpu/conv2d.cu -- conv2d forward, backward-data, backward-weight on the GPU.
//
// Versions (STYLE.md 6; convkit/gpu/conv.py picks one, bench/bench_gpu_conv.py compares them):
//   v1  one thread per output element, a plain port of the definition (the oracle for v2).
//   v2  implicit GEMM tiled in shared memory (gemm_tile.cuh: 64 x 64 block tile, BK = 16,
//       256 threads x 4 x 4 register micro-tiles), operands gathered on the fly. DEFAULT.
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
// Roofline (v2, float32; estimates, no GPU measured yet -- issue 7):
//   global/L2: a 64 x 64 x 16 step loads 2 * 64 * 16 values (8 KiB) for 64 * 64 * 16 FMAs
//     (131 kFLOP): 16 FLOP/byte. H100 SXM: 67 TFLOP/s / 3.35 TB/s = 20 FLOP/byte ridge, and
//     the operand re-reads mostly hit L2, so DRAM is not the limit on the AlexNet layers.
//   shared memory: per k a thread issues 8 scalar shared loads for 16 FMAs; an SM issues one
//     shared wavefront per clock against four FFMA warp-instructions, so LDS throughput caps
//     this tile scheme at ~50% of the FP32 peak: expect 20-30 TFLOP/s (30-45%) on the big
//     AlexNet layers, less on stride > 1 backward-data (stride_h * stride_w of the gathered
//     dy values are zeros) and on thin layers (conv1: K = 363). The next step (issue 7):
//     128 x 128 tiles with 8 x 8 micro-tiles and float4 shared loads (4 FMAs per load).
// Resource usage (nvcc 13 --resource-usage, sm_90, float / double):
//   v2 conv2d_forward                 128 / 128 registers (__launch_bounds__(256, 2): 2 blocks per SM),
//                                     spills 8 / 184 B, static smem 8256 / 16512 B
//   v2 conv2d_backward_data           128 / 128 registers, spills 92 / 200 B, smem 8256 / 16512 B
//   v2 conv2d_backward_weight         128 / 128 registers, spills 56 / 228 B, smem 8256 / 16512 B
//      (uncapped, the three used 152-168 registers: 1 block = 8 warps per SM; a few spilled
//      per-tile indices cost less than half the occupancy -- to be measured, issue 7)
//   conv2d_backward_weight_reduce     31 / 32 registers
//   v1 forward / backward_data / backward_weight   64 / 60 / 64 registers (float), no smem, no spills
#include "common.cuh"
#include "conv_common.cuh"
#include "gemm_tile.cuh"

// ------------------------------------------------------------------ v2: implicit-GEMM operands

// Forward, one block tile: A = weight rows of group g, B = im2col(x) columns (n, oh, ow).
template <typename T>
struct ForwardOperands {
    const ConvSizes& s;
    const T* x;
    const T* w_group;      // weight[g*Cog], rows of K = Cig*KH*KW
    index_t k_total, row0;
    index_t ka;            // A cursor: this thread's k (t % 16, + BK per step)
    Digits3 kb, kb_step;   // B cursor: this thread's k = (channel, kh, kw) (t / 16, + BK per step)
    index_t x_off[4], ih0[4], iw0[4];   // B columns t % 16 + 16j: image/group offset (-1: none), window origin

    __device__ ForwardOperands(const ConvSizes& s_, const T* x_, const T* weight, index_t g, index_t row0_, index_t col0)
        : s(s_), x(x_), w_group(weight + g * s_.cog * s_.cig * s_.khw), k_total(s_.cig * s_.khw), row0(row0_) {
        const int t = threadIdx.x;
        ka = t % GEMM_BK;
        kb = Digits3::of(t / 16, s.kh, s.kw);
        kb_step = Digits3::of(GEMM_BK, s.kh, s.kw);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % 16 + 16 * j, img = col / s.ohw, pix = col % s.ohw;
            x_off[j] = img < s.n ? (img * s.c_in + g * s.cig) * s.hw : -1;
            ih0[j] = (pix / s.ow) * s.stride_h - s.pad_h;
            iw0[j] = (pix % s.ow) * s.stride_w - s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        for (int i = 0; i < 4; ++i) {
            const index_t row = row0 + t / GEMM_BK + 16 * i;
            a[i] = (row < s.cog && ka < k_total) ? __ldg(&w_group[row * k_total + ka]) : T(0);
        }
        ka += GEMM_BK;
        const bool k_ok = kb.hi < s.cig;
        const index_t dh = kb.mid * s.dil_h, dw = kb.lo * s.dil_w, plane = kb.hi * s.hw;
        for (int j = 0; j < 4; ++j) {
            const index_t ih = ih0[j] + dh, iw = iw0[j] + dw;
            const bool ok = k_ok && x_off[j] >= 0 && inside(ih, s.h) && inside(iw, s.w);
            b[j] = ok ? __ldg(&x[x_off[j] + plane + ih * s.w + iw]) : T(0);
        }
        kb.advance(kb_step, s.kh, s.kw);
    }
};

// Backward-data, one block tile: A = W[g]^T (row c, column k = (m, kh, kw)), B = dy gathered
// for the dx columns (n, ih, iw).
template <typename T>
struct BackwardDataOperands {
    const ConvSizes& s;
    const T* dy;
    const T* w_group;      // weight[g*Cog]
    index_t row0;
    Digits3 ka, kb, k_step;              // A and B cursors, k = (m, kh, kw)
    index_t dy_off[4], ihp[4], iwp[4];   // B columns: dy image/group offset (-1: none), ih + pad_h, iw + pad_w

    __device__ BackwardDataOperands(const ConvSizes& s_, const T* dy_, const T* weight, index_t g, index_t row0_, index_t col0)
        : s(s_), dy(dy_), w_group(weight + g * s_.cog * s_.cig * s_.khw), row0(row0_) {
        const int t = threadIdx.x;
        ka = Digits3::of(t % GEMM_BK, s.kh, s.kw);
        kb = Digits3::of(t / 16, s.kh, s.kw);
        k_step = Digits3::of(GEMM_BK, s.kh, s.kw);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % 16 + 16 * j, img = col / s.hw, pix = col % s.hw;
            dy_off[j] = img < s.n ? (img * s.c_out + g * s.cog) * s.ohw : -1;
            ihp[j] = pix / s.w + s.pad_h;
            iwp[j] = pix % s.w + s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        const index_t a_col = (ka.hi * s.cig) * s.khw + ka.mid * s.kw + ka.lo;   // (m, c = 0, kh, kw)
        for (int i = 0; i < 4; ++i) {
            const index_t c = row0 + t / GEMM_BK + 16 * i;
            a[i] = (c < s.cig && ka.hi < s.cog) ? __ldg(&w_group[a_col + c * s.khw]) : T(0);
        }
        ka.advance(k_step, s.kh, s.kw);
        const bool k_ok = kb.hi < s.cog;
        const index_t dh = kb.mid * s.dil_h, dw = kb.lo * s.dil_w, plane = kb.hi * s.ohw;
        for (int j = 0; j < 4; ++j) {
            index_t oh, ow;
            const bool ok = k_ok && dy_off[j] >= 0 && stride_multiple(ihp[j] - dh, s.stride_h, oh) &&
                            stride_multiple(iwp[j] - dw, s.stride_w, ow) && oh < s.oh && ow < s.ow;
            b[j] = ok ? __ldg(&dy[dy_off[j] + plane + oh * s.ow + ow]) : T(0);
        }
        kb.advance(k_step, s.kh, s.kw);
    }
};

// Backward-weight, one block tile of one split: A = dy rows m, B = im2col(x)^T, K = positions
// p = (n, oh, ow) in [p0, p1).
template <typename T>
struct BackwardWeightOperands {
    const ConvSizes& s;
    const T* dy;
    const T* x;
    index_t g, row0, p1;
    index_t pa, pb;                      // this thread's positions for A (t % 16) and B (t / 16)
    Digits3 pa_d, pa_step, pb_d, pb_step;   // pa as (n, 0, oh*OW + ow), pb as (n, oh, ow)
    index_t x_off[4], dh[4], dw[4];      // B columns k = (c, kh, kw): channel plane offset (-1: none), tap offset

    __device__ BackwardWeightOperands(const ConvSizes& s_, const T* dy_, const T* x_, index_t g_, index_t row0_,
                                      index_t col0, index_t p0, index_t p1_)
        : s(s_), dy(dy_), x(x_), g(g_), row0(row0_), p1(p1_) {
        const int t = threadIdx.x;
        pa = p0 + t % GEMM_BK;
        pb = p0 + t / 16;
        pa_d = Digits3::of(pa, 1, s.ohw);
        pa_step = Digits3::of(GEMM_BK, 1, s.ohw);
        pb_d = Digits3::of(pb, s.oh, s.ow);
        pb_step = Digits3::of(GEMM_BK, s.oh, s.ow);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % 16 + 16 * j, c = col / s.khw, tap = col % s.khw;
            x_off[j] = c < s.cig ? (g * s.cig + c) * s.hw : -1;
            dh[j] = (tap / s.kw) * s.dil_h - s.pad_h;
            dw[j] = (tap % s.kw) * s.dil_w - s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        const index_t a_base = (pa_d.hi * s.c_out + g * s.cog) * s.ohw + pa_d.lo;
        for (int i = 0; i < 4; ++i) {
            const index_t m = row0 + t / GEMM_BK + 16 * i;
            a[i] = (m < s.cog && pa < p1) ? __ldg(&dy[a_base + m * s.ohw]) : T(0);
        }
        pa += GEMM_BK;
        pa_d.advance(pa_step, 1, s.ohw);
        const index_t ih_base = pb_d.mid * s.stride_h, iw_base = pb_d.lo * s.stride_w;
        const index_t img = pb_d.hi * s.c_in * s.hw;
        for (int j = 0; j < 4; ++j) {
            const index_t ih = ih_base + dh[j], iw = iw_base + dw[j];
            const bool ok = pb < p1 && x_off[j] >= 0 && inside(ih, s.h) && inside(iw, s.w);
            b[j] = ok ? __ldg(&x[img + x_off[j] + ih * s.w + iw]) : T(0);
        }
        pb += GEMM_BK;
        pb_d.advance(pb_step, s.oh, s.ow);
    }
};

// ------------------------------------------------------------------ v2 kernels
// Launch: block GEMM_THREADS; grid (column tiles, row tiles, groups [x splits]); any grid
// smaller than that is covered by the grid-stride tile loops.

// Epilogue of the forward and backward-data tiles, whose GEMM rows are the channels of group g
// and whose columns are (image, pixel) of an NCHW result dst (`channels` channels, planes of
// `plane` pixels, cols = N * plane columns): thread (tx, ty) writes its 4 x 4 micro-tile, rows
// row0 + ty + 16i (channel g * rows + row), columns col0 + tx + 16j, plus bias[channel] when
// bias is not null; rows >= `rows` (the group's channel count) and columns >= cols are skipped.
template <typename T>
__device__ __forceinline__ void store_nchw_tile(T* dst, const T (&acc)[4][4], const T* bias, index_t g, index_t rows,
                                                index_t channels, index_t plane, index_t cols, index_t row0,
                                                index_t col0) {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int j = 0; j < 4; ++j) {
        const index_t col = col0 + tx + 16 * j;
        if (col >= cols) continue;
        const index_t img = col / plane, pix = col % plane;
        for (int i = 0; i < 4; ++i) {
            const index_t c = g * rows + row0 + ty + 16 * i;
            if (c >= (g + 1) * rows) continue;
            dst[(img * channels + c) * plane + pix] = acc[i][j] + (bias ? bias[c] : T(0));
        }
    }
}

// out (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, Cig, KH, KW)) [+ bias (C_out,)]
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_forward(T* out, const T* x, const T* weight, const T* bias, int has_bias,
                               CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    __shared__ GemmSmem<T> smem;
    const index_t cols = s.n * s.ohw, steps = ceil_div(s.cig * s.khw, GEMM_BK);
    CK_TILE_LOOP(g, s.groups, z) CK_TILE_LOOP(rt, ceil_div(s.cog, GEMM_BM), y) CK_TILE_LOOP(ct, ceil_div(cols, GEMM_BN), x) {
        ForwardOperands<T> operands(s, x, weight, g, rt * GEMM_BM, ct * GEMM_BN);
        T acc[4][4];
        zero_tile(acc);
        gemm_tile_accumulate(operands, steps, smem, acc);
        store_nchw_tile(out, acc, has_bias ? bias : nullptr, g, s.cog, s.c_out, s.ohw, cols, rt * GEMM_BM, ct * GEMM_BN);
    }
}

// grad_x (N, C_in, H, W) from grad_out (N, C_out, OH, OW) and weight (C_out, Cig, KH, KW).
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_backward_data(T* grad_x, const T* grad_out, const T* weight, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    __shared__ GemmSmem<T> smem;
    const index_t cols = s.n * s.hw, steps = ceil_div(s.cog * s.khw, GEMM_BK);
    CK_TILE_LOOP(g, s.groups, z) CK_TILE_LOOP(rt, ceil_div(s.cig, GEMM_BM), y) CK_TILE_LOOP(ct, ceil_div(cols, GEMM_BN), x) {
        BackwardDataOperands<T> operands(s, grad_out, weight, g, rt * GEMM_BM, ct * GEMM_BN);
        T acc[4][4];
        zero_tile(acc);
        gemm_tile_accumulate(operands, steps, smem, acc);
        store_nchw_tile(grad_x, acc, (const T*)nullptr, g, s.cig, s.c_in, s.hw, cols, rt * GEMM_BM, ct * GEMM_BN);
    }
}

// partial (splits, C_out, Cig*KH*KW): split sp sums positions [sp*chunk, min(P, (sp+1)*chunk))
// of grad_out (N, C_out, OH, OW) x im2col(x). With splits == 1, partial is grad_w itself.
template <typename T>
__global__ void __launch_bounds__(GEMM_THREADS, 2) conv2d_backward_weight(T* partial, const T* grad_out, const T* x, long long chunk,
                                       long long splits, CK_CONV_SIZE_PARAMS) {
    const ConvSizes s = CK_CONV_SIZES;
    __shared__ GemmSmem<T> smem;
    const index_t cols = s.cig * s.khw, positions = s.n * s.ohw;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    CK_TILE_LOOP(gz, s.groups * splits, z) CK_TILE_LOOP(rt, ceil_div(s.cog, GEMM_BM), y) CK_TILE_LOOP(ct, ceil_div(cols, GEMM_BN), x) {
        const index_t g = gz / splits, split = gz % splits;
        const index_t p0 = split * chunk, p1 = p0 + chunk < positions ? p0 + chunk : positions;
        BackwardWeightOperands<T> operands(s, grad_out, x, g, rt * GEMM_BM, ct * GEMM_BN, p0, p1);
        T acc[4][4];
        zero_tile(acc);
        gemm_tile_accumulate(operands, ceil_div(p1 - p0, GEMM_BK), smem, acc);
        for (int i = 0; i < 4; ++i) {
            const index_t m = rt * GEMM_BM + ty + 16 * i;
            if (m >= s.cog) continue;
            T* row = partial + (split * s.c_out + g * s.cog + m) * cols;
            for (int j = 0; j < 4; ++j) {
                const index_t col = ct * GEMM_BN + tx + 16 * j;
                if (col < cols) row[col] = acc[i][j];
            }
        }
    }
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
