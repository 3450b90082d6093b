// convkit/gpu/norm.cu -- CUDA kernels of the norm family: batch norm (forward train / eval,
// backward), group norm (group / layer / instance norm, forward and backward) and local
// response norm (forward and backward). Glue: convkit/gpu/norm.py. Tests: tests/test_batch_norm.py,
// test_group_norm.py, test_lrn.py (gpu case). Bench: bench/bench_gpu_memory.py -k "batch_norm or lrn".
//
// x is viewed as (N, C, S), S = the product of the spatial sizes. Every output is OVERWRITTEN.
//
// Statistics (moments) are block reductions in double with a fixed order, never atomics:
// each thread sums a fixed strided subset of the values in order, then the block adds the
// per-thread sums in a fixed shared-memory tree. Values are summed shifted by a centre c0
// taken from the data (the channel's / row's first value, or running_mean in eval
// backward): var = (sum d^2 - (sum d)^2 / M) / M with d = x - c0 in double loses at most
// log10(M) of double's 16 digits (a data point lies within sqrt(M var) of the mean), so x is
// read once for its moments. Results depend on the shape only: bit-identical run to run.
//
//   batch norm  (N, C, S), statistics per channel over N*S values:
//     1. batch_norm_moments (S > 1): a C x P grid, block (c, p) sums part p of channel c's
//        N*S values -> partial (C, P, 2) [P chosen by the glue so that ~1024 blocks run];
//        batch_norm_column_moments (S == 1, (N, C) input): one thread per channel walks its
//        column (adjacent threads read adjacent channels: coalesced) -> partial (C, 1, 2).
//        The *_grad_moments twins add sum dy and sum dy*(x - c0) for the backward pass.
//     2. one thread per channel adds the P partials in order and writes per-channel
//        coefficients (batch_norm_{train,eval}_coefficients, *_grad_coefficients).
//     3. an elementwise grid-stride pass: y = (x - centre) * scale + shift
//        (batch_norm_apply; eval backward reuses it), or the train backward's
//        grad_x = a (dy - mean dy) + b (x - mean) (batch_norm_backward_apply).
//   group norm  N*G rows of M = C/G*S contiguous values (layer norm: G = 1, S = 1;
//     instance norm: G = C): one block per row sums the row, then writes it (fused; the row
//     is still in L1/L2). Backward: one block per row writes grad_x and the row statistics;
//     the weight gradients sum per channel over N in a second kernel (block per channel, or
//     thread per channel when S == 1).
//   local response norm: one thread per element gathers the squares of its channel window
//     (forward); backward writes t = dy x q / scale per element, then gathers t over the
//     channels whose window holds the element.
//
// Elementwise kernels find (n, c, s) of a flat index with additions only (Walk3 below): a
// 64-bit division per element would cost more than the memory traffic.
//
// nvcc --resource-usage, sm_90, CUDA 13.0 (registers float / double; static shared memory):
//   batch_norm_moments<256>        32 / 31 regs, 4 KiB    batch_norm_apply              40 / 40 regs
//   batch_norm_grad_moments<256>   40 / 40 regs, 8 KiB    batch_norm_backward_apply     32 / 40 regs
//   batch_norm_column_moments      32 / 32 regs           batch_norm_train_coefficients 40 / 52 regs
//   group_norm_forward<256>        44 / 42 regs, 4 KiB    local_response_norm_forward   48 / 48 regs
//   group_norm_backward<256>       48 / 46 regs, 8 KiB    local_response_norm_backward  40 / 48 regs
//   group_norm_weight_grads<256>   47 / 46 regs, 4 KiB    (no kernel spills)
#include "common.cuh"

// ------------------------------------------------------------------ helpers

__device__ __forceinline__ float ck_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double ck_sqrt(double v) { return sqrt(v); }
__device__ __forceinline__ float ck_rsqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double ck_rsqrt(double v) { return rsqrt(v); }
__device__ __forceinline__ float ck_pow(float v, float e) { return powf(v, e); }
__device__ __forceinline__ double ck_pow(double v, double e) { return pow(v, e); }

// Coordinates (a, b, s) of the flat index i = (a * B + b) * S + s of an (A, B, S) array.
struct Coord3 {
    index_t a, b, s;
};

// Walks flat indices first, first + step, ... of an (A, B, S) array keeping their
// coordinates with additions only: step = (sa * B + sb) * S + ss with sb < B, ss < S, so
// each carry needs one compare.
struct Walk3 {
    index_t B, S;
    Coord3 step;
    __device__ Walk3(index_t b, index_t s, index_t stride) : B(b), S(s), step(at(stride)) {}
    __device__ Coord3 at(index_t i) const {
        const index_t plane = i / S, a = plane / B;
        return {a, plane - a * B, i - plane * S};
    }
    __device__ void advance(Coord3& c) const {
        c.s += step.s;
        if (c.s >= S) c.s -= S, ++c.b;
        c.b += step.b;
        if (c.b >= B) c.b -= B, ++c.a;
        c.a += step.a;
    }
};

__device__ __forceinline__ index_t grid_threads() { return (index_t)blockDim.x * gridDim.x; }
__device__ __forceinline__ index_t global_thread() { return (index_t)blockIdx.x * blockDim.x + threadIdx.x; }

// Adds v[0..K) of every thread of the block (blockDim.x: a power of two <= kThreads) in a
// fixed tree; every thread gets the totals. tree: K * kThreads doubles of shared memory.
template <int kThreads, int K>
__device__ void block_sum(double (&v)[K], double* tree) {
    for (int k = 0; k < K; ++k) tree[k * kThreads + threadIdx.x] = v[k];
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half)
            for (int k = 0; k < K; ++k) tree[k * kThreads + threadIdx.x] += tree[k * kThreads + threadIdx.x + half];
        __syncthreads();
    }
    for (int k = 0; k < K; ++k) v[k] = tree[k * kThreads];
    __syncthreads();   // the tree is free again for the next call
}

// Mean and biased variance of `count` values from their sums d, dd shifted by centre.
struct MeanVar {
    double mean, var;
    __device__ MeanVar(double d, double dd, double centre, double count)
        : mean(centre + d / count), var(fmax(0.0, (dd - d * d / count) / count)) {}
};

// The values of one channel c of (N, C, S) in part `part` of `parts` (of its N*S values):
// calls fn(offset of the value, its sample) for this thread's share, in a fixed order.
template <class Fn>
__device__ void for_channel_part(index_t c, index_t part, index_t parts, index_t n, index_t channels, index_t s,
                                 Fn fn) {
    const index_t count = n * s, begin = count * part / parts, end = count * (part + 1) / parts;
    const Walk3 walk(1, s, blockDim.x);   // (sample, 0, position)
    Coord3 at = walk.at(begin + threadIdx.x);
    for (index_t k = begin + threadIdx.x; k < end; k += blockDim.x, walk.advance(at))
        fn((at.a * channels + c) * s + at.s, at.a);
}

// ------------------------------------------------------------------ batch norm: moments

// partial (C, P, 2): sum d, sum d^2 (d = x - centre[c]) of part p of channel c; grid (C, P),
// blockDim.x a power of two <= kThreads (as for every block reduction below).
template <typename T, int kThreads>
__global__ void batch_norm_moments(double* partial, const T* x, const T* centre, index_t n, index_t c, index_t s) {
    // x: (N, C, S); centre: (C,)
    __shared__ double tree[2 * kThreads];
    const index_t ch = blockIdx.x, part = blockIdx.y, parts = gridDim.y;
    const double c0 = centre[ch];
    double sums[2] = {0.0, 0.0};
    for_channel_part(ch, part, parts, n, c, s, [&](index_t i, index_t) {
        const double d = (double)x[i] - c0;
        sums[0] += d;
        sums[1] += d * d;
    });
    block_sum<kThreads>(sums, tree);
    if (threadIdx.x == 0) {
        partial[(ch * parts + part) * 2] = sums[0];
        partial[(ch * parts + part) * 2 + 1] = sums[1];
    }
}

// partial (C, P, 4): sum d, sum d^2, sum dy, sum dy * d; grid (C, P).
template <typename T, int kThreads>
__global__ void batch_norm_grad_moments(double* partial, const T* grad_out, const T* x, const T* centre, index_t n,
                                        index_t c, index_t s) {
    // grad_out, x: (N, C, S); centre: (C,)
    __shared__ double tree[4 * kThreads];
    const index_t ch = blockIdx.x, part = blockIdx.y, parts = gridDim.y;
    const double c0 = centre[ch];
    double sums[4] = {0.0, 0.0, 0.0, 0.0};
    for_channel_part(ch, part, parts, n, c, s, [&](index_t i, index_t) {
        const double d = (double)x[i] - c0, g = grad_out[i];
        sums[0] += d;
        sums[1] += d * d;
        sums[2] += g;
        sums[3] += g * d;
    });
    block_sum<kThreads>(sums, tree);
    if (threadIdx.x < 4) partial[(ch * parts + part) * 4 + threadIdx.x] = sums[threadIdx.x];
}

// (N, C) input: partial (C, 1, 2) with one thread per channel summing its column in order.
template <typename T>
__global__ void batch_norm_column_moments(double* partial, const T* x, const T* centre, index_t n, index_t c) {
    // x: (N, C); centre: (C,)
    CK_GRID_STRIDE_LOOP(ch, c) {
        const double c0 = centre[ch];
        double d_sum = 0.0, dd_sum = 0.0;
        for (index_t row = 0; row < n; ++row) {
            const double d = (double)x[row * c + ch] - c0;
            d_sum += d;
            dd_sum += d * d;
        }
        partial[ch * 2] = d_sum;
        partial[ch * 2 + 1] = dd_sum;
    }
}

// (N, C) input: partial (C, 1, 4), as batch_norm_grad_moments.
template <typename T>
__global__ void batch_norm_column_grad_moments(double* partial, const T* grad_out, const T* x, const T* centre,
                                               index_t n, index_t c) {
    // grad_out, x: (N, C); centre: (C,)
    CK_GRID_STRIDE_LOOP(ch, c) {
        const double c0 = centre[ch];
        double sums[4] = {0.0, 0.0, 0.0, 0.0};
        for (index_t row = 0; row < n; ++row) {
            const double d = (double)x[row * c + ch] - c0, g = grad_out[row * c + ch];
            sums[0] += d;
            sums[1] += d * d;
            sums[2] += g;
            sums[3] += g * d;
        }
        for (int k = 0; k < 4; ++k) partial[ch * 4 + k] = sums[k];
    }
}

// Channel ch's K sums: its P partials added in order.
template <int K>
__device__ void channel_totals(double (&t)[K], const double* partial, index_t ch, index_t parts) {
    for (int k = 0; k < K; ++k) t[k] = 0.0;
    for (index_t p = 0; p < parts; ++p)
        for (int k = 0; k < K; ++k) t[k] += partial[(ch * parts + p) * K + k];
}

// ------------------------------------------------------------------ batch norm: coefficients (one thread per channel)

// Training forward: coef (C, 3) = [mean, weight * rstd, bias] for batch_norm_apply, and the
// batch mean and biased variance (C,) (double) for the running statistics.
template <typename T>
__global__ void batch_norm_train_coefficients(T* coef, double* batch_mean, double* batch_var, const double* partial,
                                              const T* centre, const T* weight, const T* bias, index_t c,
                                              index_t parts, index_t count, T eps) {
    // partial: (C, parts, 2); centre, weight, bias: (C,)
    CK_GRID_STRIDE_LOOP(ch, c) {
        double t[2];
        channel_totals(t, partial, ch, parts);
        const MeanVar mv(t[0], t[1], centre[ch], (double)count);
        coef[ch * 3] = (T)mv.mean;
        coef[ch * 3 + 1] = (T)((double)weight[ch] / sqrt(mv.var + (double)eps));
        coef[ch * 3 + 2] = bias[ch];
        batch_mean[ch] = mv.mean;
        batch_var[ch] = mv.var;
    }
}

// Eval forward: coef (C, 3) = [running_mean, weight / sqrt(running_var + eps), bias].
template <typename T>
__global__ void batch_norm_eval_coefficients(T* coef, const T* running_mean, const T* running_var, const T* weight,
                                             const T* bias, index_t c, T eps) {
    // all (C,)
    CK_GRID_STRIDE_LOOP(ch, c) {
        coef[ch * 3] = running_mean[ch];
        coef[ch * 3 + 1] = (T)((double)weight[ch] / sqrt((double)running_var[ch] + (double)eps));
        coef[ch * 3 + 2] = bias[ch];
    }
}

// Training backward, xmu = x - mean, M = N*S, rstd = 1/sqrt(var + eps):
//   grad_bias = sum dy, grad_weight = sum(dy xmu) rstd,
//   grad_x = a (dy - sum dy / M) + b xmu, a = weight rstd, b = -weight rstd^3 sum(dy xmu) / M
// coef (C, 4) = [a, sum dy / M, b, mean] for batch_norm_backward_apply.
template <typename T>
__global__ void batch_norm_train_grad_coefficients(T* grad_weight, T* grad_bias, T* coef, const double* partial,
                                                   const T* centre, const T* weight, index_t c, index_t parts,
                                                   index_t count, T eps) {
    // partial: (C, parts, 4); the rest (C,) or (C, 4)
    CK_GRID_STRIDE_LOOP(ch, c) {
        double t[4];
        channel_totals(t, partial, ch, parts);
        const double m = (double)count, c0 = centre[ch];
        const MeanVar mv(t[0], t[1], c0, m);
        const double rstd = 1.0 / sqrt(mv.var + (double)eps), w = weight[ch];
        const double dy_xmu = t[3] - (mv.mean - c0) * t[2];   // sum dy (x - mean)
        grad_bias[ch] = (T)t[2];
        grad_weight[ch] = (T)(dy_xmu * rstd);
        coef[ch * 4] = (T)(w * rstd);
        coef[ch * 4 + 1] = (T)(t[2] / m);
        coef[ch * 4 + 2] = (T)(-w * rstd * rstd * rstd * dy_xmu / m);
        coef[ch * 4 + 3] = (T)mv.mean;
    }
}

// Eval backward (running statistics are constants; the moments were centred on running_mean):
// grad_bias = sum dy, grad_weight = sum(dy (x - running_mean)) rstd, and coef (C, 3) =
// [0, weight rstd, 0] so that batch_norm_apply(dy) gives grad_x = dy * weight * rstd.
template <typename T>
__global__ void batch_norm_eval_grad_coefficients(T* grad_weight, T* grad_bias, T* coef, const double* partial,
                                                  const T* running_var, const T* weight, index_t c, index_t parts,
                                                  T eps) {
    // partial: (C, parts, 4); the rest (C,) or (C, 3)
    CK_GRID_STRIDE_LOOP(ch, c) {
        double t[4];
        channel_totals(t, partial, ch, parts);
        const double rstd = 1.0 / sqrt((double)running_var[ch] + (double)eps);
        grad_bias[ch] = (T)t[2];
        grad_weight[ch] = (T)(t[3] * rstd);
        coef[ch * 3] = (T)0;
        coef[ch * 3 + 1] = (T)((double)weight[ch] * rstd);
        coef[ch * 3 + 2] = (T)0;
    }
}

// ------------------------------------------------------------------ batch norm: elementwise

// y = (x - coef[c, 0]) * coef[c, 1] + coef[c, 2] over (N, C, S) (x - mean first: no
// cancellation for data far from zero).
template <typename T>
__global__ void batch_norm_apply(T* y, const T* x, const T* coef, index_t total, index_t c, index_t s) {
    // y, x: (N, C, S) with total = N*C*S elements; coef: (C, 3)
    const Walk3 walk(c, s, grid_threads());
    Coord3 at = walk.at(global_thread());
    for (index_t i = global_thread(); i < total; i += grid_threads(), walk.advance(at)) {
        const T* k = coef + at.b * 3;
        y[i] = (x[i] - k[0]) * k[1] + k[2];
    }
}

// grad_x = a (dy - mean_dy) + b (x - mean), coef (C, 4) = [a, mean_dy, b, mean].
template <typename T>
__global__ void batch_norm_backward_apply(T* grad_x, const T* grad_out, const T* x, const T* coef, index_t total,
                                          index_t c, index_t s) {
    // grad_x, grad_out, x: (N, C, S); coef: (C, 4)
    const Walk3 walk(c, s, grid_threads());
    Coord3 at = walk.at(global_thread());
    for (index_t i = global_thread(); i < total; i += grid_threads(), walk.advance(at)) {
        const T* k = coef + at.b * 4;
        grad_x[i] = k[0] * (grad_out[i] - k[1]) + k[2] * (x[i] - k[3]);
    }
}

// ------------------------------------------------------------------ group norm

// One block per row r = (sample, group) of M = cg * s contiguous values (cg channels of s):
// y = (x - mean) * (rstd * weight[ch]) + bias[ch]; row_stats (rows, 2) = [mean, biased var].
template <typename T, int kThreads>
__global__ void group_norm_forward(T* y, double* row_stats, const T* x, const T* weight, const T* bias, index_t rows,
                                   index_t groups, index_t cg, index_t s, T eps) {
    // y, x: (N*G rows, M); weight, bias: (C,) = (G * cg,)
    __shared__ double tree[2 * kThreads];
    const index_t m = cg * s;
    const Walk3 walk(1, s, blockDim.x);   // (channel in group, 0, position)
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {   // uniform per block
        const T* xr = x + r * m;
        const double c0 = xr[0];
        double sums[2] = {0.0, 0.0};
        for (index_t i = threadIdx.x; i < m; i += blockDim.x) {
            const double d = (double)xr[i] - c0;
            sums[0] += d;
            sums[1] += d * d;
        }
        block_sum<kThreads>(sums, tree);
        const MeanVar mv(sums[0], sums[1], c0, (double)m);
        if (threadIdx.x == 0) row_stats[r * 2] = mv.mean, row_stats[r * 2 + 1] = mv.var;
        const T mean = (T)mv.mean, rstd = (T)(1.0 / sqrt(mv.var + (double)eps));
        const index_t ch0 = (r % groups) * cg;
        Coord3 at = walk.at(threadIdx.x);
        for (index_t i = threadIdx.x; i < m; i += blockDim.x, walk.advance(at))
            y[r * m + i] = (xr[i] - mean) * (rstd * weight[ch0 + at.a]) + bias[ch0 + at.a];
    }
}

// Backward of one row (w = weight of the value's channel, M values):
//   grad_x = rstd w dy + b (x - mean) + c,  b = -rstd^3 sum(w dy (x - mean)) / M,  c = -rstd sum(w dy) / M
// One block per row; row_stats (rows, 2) = [mean, rstd] for group_norm_weight_grads.
template <typename T, int kThreads>
__global__ void group_norm_backward(T* grad_x, double* row_stats, const T* grad_out, const T* x, const T* weight,
                                    index_t rows, index_t groups, index_t cg, index_t s, T eps) {
    // grad_x, grad_out, x: (N*G rows, M); weight: (C,)
    __shared__ double tree[4 * kThreads];
    const index_t m = cg * s;
    const Walk3 walk(1, s, blockDim.x);
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * m;
        const T* gr = grad_out + r * m;
        const T* w = weight + (r % groups) * cg;
        const double c0 = xr[0];
        double sums[4] = {0.0, 0.0, 0.0, 0.0};   // d, d^2, w dy, w dy d
        Coord3 at = walk.at(threadIdx.x);
        for (index_t i = threadIdx.x; i < m; i += blockDim.x, walk.advance(at)) {
            const double d = (double)xr[i] - c0, g = (double)gr[i] * (double)w[at.a];
            sums[0] += d;
            sums[1] += d * d;
            sums[2] += g;
            sums[3] += g * d;
        }
        block_sum<kThreads>(sums, tree);
        const MeanVar mv(sums[0], sums[1], c0, (double)m);
        const double rstd = 1.0 / sqrt(mv.var + (double)eps);
        const double w_dy_xmu = sums[3] - (mv.mean - c0) * sums[2];
        if (threadIdx.x == 0) row_stats[r * 2] = mv.mean, row_stats[r * 2 + 1] = rstd;
        const T mean = (T)mv.mean, rs = (T)rstd, b = (T)(-rstd * rstd * rstd * w_dy_xmu / (double)m),
                cc = (T)(-rstd * sums[2] / (double)m);
        at = walk.at(threadIdx.x);
        for (index_t i = threadIdx.x; i < m; i += blockDim.x, walk.advance(at))
            grad_x[r * m + i] = rs * w[at.a] * gr[i] + b * (xr[i] - mean) + cc;
    }
}

// grad_bias[c] = sum dy, grad_weight[c] = sum dy (x - mean_row) rstd_row over the N planes of
// channel c: one block per channel (S > 1).
template <typename T, int kThreads>
__global__ void group_norm_weight_grads(T* grad_weight, T* grad_bias, const double* row_stats, const T* grad_out,
                                        const T* x, index_t n, index_t c, index_t groups, index_t s) {
    // grad_out, x: (N, C, S); row_stats: (N*G, 2); grad_weight, grad_bias: (C,)
    __shared__ double tree[2 * kThreads];
    const index_t cg = c / groups;
    for (index_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double sums[2] = {0.0, 0.0};   // dy, dy xhat
        for_channel_part(ch, 0, 1, n, c, s, [&](index_t i, index_t sample) {
            const double* st = row_stats + (sample * groups + ch / cg) * 2;
            const double g = grad_out[i];
            sums[0] += g;
            sums[1] += g * ((double)x[i] - st[0]) * st[1];
        });
        block_sum<kThreads>(sums, tree);
        if (threadIdx.x == 0) grad_bias[ch] = (T)sums[0], grad_weight[ch] = (T)sums[1];
    }
}

// S == 1 (layer norm, (N, C) group norm): one thread per channel sums its column in order.
template <typename T>
__global__ void group_norm_column_weight_grads(T* grad_weight, T* grad_bias, const double* row_stats,
                                               const T* grad_out, const T* x, index_t n, index_t c, index_t groups) {
    // grad_out, x: (N, C); row_stats: (N*G, 2); grad_weight, grad_bias: (C,)
    const index_t cg = c / groups;
    CK_GRID_STRIDE_LOOP(ch, c) {
        double db = 0.0, dw = 0.0;
        for (index_t row = 0; row < n; ++row) {
            const double* st = row_stats + (row * groups + ch / cg) * 2;
            const double g = grad_out[row * c + ch];
            db += g;
            dw += g * ((double)x[row * c + ch] - st[0]) * st[1];
        }
        grad_bias[ch] = (T)db;
        grad_weight[ch] = (T)dw;
    }
}

// ------------------------------------------------------------------ local response norm
// scale[c] = k + alpha/size * sum of x[c']^2 over c' in [c - size/2, c + (size-1)/2] ∩ [0, C);
// y = x * scale^-beta.

template <typename T>
__device__ T lrn_scale(const T* x, const Coord3& at, index_t c, index_t s, index_t size, T alpha, T k) {
    const index_t lo = at.b - size / 2 < 0 ? 0 : at.b - size / 2;
    const index_t hi = at.b + (size - 1) / 2 >= c ? c - 1 : at.b + (size - 1) / 2;
    const T* plane = x + at.a * c * s + at.s;
    T squares = 0;
    for (index_t j = lo; j <= hi; ++j) squares += plane[j * s] * plane[j * s];
    return k + (T)((double)alpha / (double)size) * squares;
}

// scale^-beta; square roots for AlexNet's beta = 0.75 (s^-1/2 * s^-1/4: nothing overflows,
// scale = inf gives 0) and for 0.5, a division for 1.
template <typename T>
__device__ T lrn_inverse_power(T scale, T beta) {
    if (beta == (T)0.75) {
        const T r = ck_rsqrt(scale);
        return r * ck_sqrt(r);
    }
    if (beta == (T)0.5) return ck_rsqrt(scale);
    if (beta == (T)1) return (T)1 / scale;
    return ck_pow(scale, -beta);
}

// One thread per element (grid-stride).
template <typename T>
__global__ void local_response_norm_forward(T* y, const T* x, index_t total, index_t c, index_t s, index_t size,
                                            T alpha, T beta, T k) {
    // y, x: (N, C, S), total = N*C*S
    const Walk3 walk(c, s, grid_threads());
    Coord3 at = walk.at(global_thread());
    for (index_t i = global_thread(); i < total; i += grid_threads(), walk.advance(at))
        y[i] = x[i] * lrn_inverse_power(lrn_scale(x, at, c, s, size, alpha, k), beta);
}

// Backward step 1: t = dy x scale^-beta / scale per element.
template <typename T>
__global__ void local_response_norm_backward_terms(T* t, const T* grad_out, const T* x, index_t total, index_t c,
                                                   index_t s, index_t size, T alpha, T beta, T k) {
    // t, grad_out, x: (N, C, S)
    const Walk3 walk(c, s, grid_threads());
    Coord3 at = walk.at(global_thread());
    for (index_t i = global_thread(); i < total; i += grid_threads(), walk.advance(at)) {
        const T scale = lrn_scale(x, at, c, s, size, alpha, k);
        t[i] = grad_out[i] * x[i] * lrn_inverse_power(scale, beta) / scale;
    }
}

// Backward step 2: grad_x[c] = dy[c] scale[c]^-beta - 2 alpha beta / size * x[c] * sum of t[c']
// over the channels c' whose window holds c: c' in [c - (size-1)/2, c + size/2] ∩ [0, C).
template <typename T>
__global__ void local_response_norm_backward(T* grad_x, const T* grad_out, const T* x, const T* t, index_t total,
                                             index_t c, index_t s, index_t size, T alpha, T beta, T k) {
    // grad_x, grad_out, x, t: (N, C, S)
    const T coef = (T)(2.0 * (double)alpha * (double)beta / (double)size);
    const Walk3 walk(c, s, grid_threads());
    Coord3 at = walk.at(global_thread());
    for (index_t i = global_thread(); i < total; i += grid_threads(), walk.advance(at)) {
        const index_t lo = at.b - (size - 1) / 2 < 0 ? 0 : at.b - (size - 1) / 2;
        const index_t hi = at.b + size / 2 >= c ? c - 1 : at.b + size / 2;
        const T* plane = t + at.a * c * s + at.s;
        T t_sum = 0;
        for (index_t j = lo; j <= hi; ++j) t_sum += plane[j * s];
        const T q = lrn_inverse_power(lrn_scale(x, at, c, s, size, alpha, k), beta);
        grad_x[i] = grad_out[i] * q - coef * x[i] * t_sum;
    }
}
