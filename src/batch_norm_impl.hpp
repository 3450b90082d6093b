// convkit/src/batch_norm_impl.hpp -- batch normalisation kernels (API in batch_norm.hpp) for one
// instruction set: compiled by norm_isa.cpp (once per CONVKIT_ISA), chosen at run time by norm_dispatch.cpp.
//
// Writes: y, grad_x, grad_weight, grad_bias are fully OVERWRITTEN; running_mean and
// running_var are updated in place (training forward only).
//
// One task per channel: the channel's sums (one read of its N planes, in double,
// norm_stats.hpp) are followed at once by the pass that writes its output, while the
// planes are still in cache, so x travels from memory about once. (N, C) input (S == 1)
// runs one task per block of kChannelBlock channels instead, summing whole rows at a time
// (a channel alone would be a strided gather). The sum order is fixed per channel (planes
// n = 0..N-1, each left to right): results are bit-identical for any thread count.
//
// Forward, with scale = weight / sqrt(var + eps) and offset = bias - mean * scale (as
// PyTorch's CPU kernel folds them): y = x * scale + offset.
// Training backward, per channel, xmu = x - mean, M = N*S:
//   grad_bias = sum(dy), grad_weight = sum(dy * xmu) / sqrt(var + eps)
//   grad_x = weight / sqrt(var + eps) * (dy - sum(dy)/M - xmu * sum(dy * xmu) / (M (var + eps)))
// Eval backward: grad_x = dy * weight / sqrt(running_var + eps).
#pragma once
#include <vector>
#include "batch_norm.hpp"
#include "norm_stats.hpp"
#include "streaming.hpp"

namespace convkit {
namespace CONVKIT_ISA {

namespace norm {

constexpr index_t kChannelBlock = 256;   // (N, C) input: channels per task
constexpr index_t kStreamChunk = 1024;   // values of grad_x computed in L1 before they are streamed

// (N, C) input: calls block(c0, len) for each block of channels, in parallel.
template <class Block> void for_each_channel_block(index_t channels, Block&& block) {
    const index_t blocks = ceil_div(channels, kChannelBlock);
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t b = 0; b < blocks; ++b)
        block(b * kChannelBlock, std::min(kChannelBlock, channels - b * kChannelBlock));
}

// Training backward of one channel from its sums: writes grad_bias, grad_weight, and the
// coefficients of grad_x = a * (dy - mean_dy) + b * (x - mean).
struct TrainGrad {
    double a, mean_dy, b, mean;
};
template <class T>
TrainGrad train_grad(index_t c, const Totals& t, double shift, double count, const T* weight, T* grad_weight,
                     T* grad_bias, double eps) {
    const MeanVar mv(t, shift, count);
    const double invstd = 1.0 / std::sqrt(mv.var + eps);
    const double dy_xmu = t.gd - (mv.mean - shift) * t.g;   // sum(dy * (x - mean))
    const double w = weight ? double(weight[c]) : 1.0;
    grad_bias[c] = T(t.g);
    if (grad_weight) grad_weight[c] = T(dy_xmu * invstd);
    return {w * invstd, t.g / count, -w * invstd * invstd * invstd * dy_xmu / count, mv.mean};
}

}  // namespace norm

template <class T>
void batch_norm_forward_train(T* y, T* running_mean, T* running_var, const T* x, const T* weight,
                              const T* bias, const BatchNormSizes& s) {
    // y, x: (N, C, S); weight, bias, running_mean, running_var: (C,) or null
    using namespace norm;
    const index_t plane_stride = s.c * s.s;
    const double count = double(s.n) * double(s.s), m = s.momentum;
    const auto finish_channel = [&](index_t c, const MeanVar& mv, double& scale, double& offset) {
        scale = (weight ? double(weight[c]) : 1.0) / std::sqrt(mv.var + s.eps);
        offset = (bias ? double(bias[c]) : 0.0) - mv.mean * scale;
        if (running_mean) running_mean[c] = T((1 - m) * double(running_mean[c]) + m * mv.mean);
        if (running_var) running_var[c] = T((1 - m) * double(running_var[c]) + m * mv.var * count / (count - 1));
    };
    if (s.s == 1) {
        for_each_channel_block(s.c, [&](index_t c0, index_t len) {
            double shift[kChannelBlock], d[kChannelBlock] = {}, dd[kChannelBlock] = {};
            for (index_t j = 0; j < len; ++j) shift[j] = x[c0 + j];
            for (index_t n = 0; n < s.n; ++n) {
                const T* row = x + n * s.c + c0;
                for (index_t j = 0; j < len; ++j) {
                    const double v = double(row[j]) - shift[j];
                    d[j] += v;
                    dd[j] += v * v;
                }
            }
            T scale[kChannelBlock], offset[kChannelBlock];
            for (index_t j = 0; j < len; ++j) {
                double sc, off;
                finish_channel(c0 + j, MeanVar({d[j], dd[j]}, shift[j], count), sc, off);
                scale[j] = T(sc);
                offset[j] = T(off);
            }
            for (index_t n = 0; n < s.n; ++n)
                for (index_t j = 0; j < len; ++j) y[n * s.c + c0 + j] = x[n * s.c + c0 + j] * scale[j] + offset[j];
        });
        return;
    }
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const T* xc = x + c * s.s;
        const double shift = xc[0];
        StatSums sums(shift);
        for (index_t n = 0; n < s.n; ++n) sums.add(xc + n * plane_stride, s.s);
        double scale, offset;
        finish_channel(c, MeanVar(sums.totals(), shift, count), scale, offset);
        for (index_t n = 0; n < s.n; ++n)
            scale_shift(y + c * s.s + n * plane_stride, xc + n * plane_stride, s.s, T(scale), T(offset));
    }
}

template <class T>
void batch_norm_forward_eval(T* y, const T* x, const T* running_mean, const T* running_var,
                             const T* weight, const T* bias, const BatchNormSizes& s) {
    // y, x: (N, C, S); running_mean, running_var: (C,); weight, bias: (C,) or null
    using namespace norm;
    std::vector<T> scale(s.c), offset(s.c);
    for (index_t c = 0; c < s.c; ++c) {
        const double sc = (weight ? double(weight[c]) : 1.0) / std::sqrt(double(running_var[c]) + s.eps);
        scale[c] = T(sc);
        offset[c] = T((bias ? double(bias[c]) : 0.0) - double(running_mean[c]) * sc);
    }
    const T* sc = scale.data();
    const T* off = offset.data();
    if (s.s == 1) {   // (N, C): rows of C channels
#pragma omp parallel for schedule(static) num_threads(num_threads())
        for (index_t n = 0; n < s.n; ++n)
            for (index_t c = 0; c < s.c; ++c) y[n * s.c + c] = x[n * s.c + c] * sc[c] + off[c];
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
    for (index_t n = 0; n < s.n; ++n)
        for (index_t c = 0; c < s.c; ++c) {
            const index_t p = (n * s.c + c) * s.s;
            scale_shift(y + p, x + p, s.s, sc[c], off[c]);
        }
}

template <class T>
void batch_norm_backward_train(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                               const T* weight, const BatchNormSizes& s) {
    // grad_x, grad_out, x: (N, C, S); grad_weight, grad_bias, weight: (C,) (grad_weight, weight may be null)
    using namespace norm;
    const index_t plane_stride = s.c * s.s;
    const double count = double(s.n) * double(s.s);
    const T* ones = nullptr;   // dy is not weighted in the sums
    if (s.s == 1) {
        for_each_channel_block(s.c, [&](index_t c0, index_t len) {
            double shift[kChannelBlock], d[kChannelBlock] = {}, dd[kChannelBlock] = {}, g[kChannelBlock] = {},
                gd[kChannelBlock] = {};
            for (index_t j = 0; j < len; ++j) shift[j] = x[c0 + j];
            for (index_t n = 0; n < s.n; ++n) {
                const T* xr = x + n * s.c + c0;
                const T* gr = grad_out + n * s.c + c0;
                for (index_t j = 0; j < len; ++j) {
                    const double v = double(xr[j]) - shift[j], gy = gr[j];
                    d[j] += v;
                    dd[j] += v * v;
                    g[j] += gy;
                    gd[j] += gy * v;
                }
            }
            T a[kChannelBlock], mean_dy[kChannelBlock], b[kChannelBlock], mean[kChannelBlock];
            for (index_t j = 0; j < len; ++j) {
                const TrainGrad tg = train_grad(c0 + j, Totals{d[j], dd[j], g[j], gd[j]}, shift[j], count, weight,
                                                grad_weight, grad_bias, s.eps);
                a[j] = T(tg.a), mean_dy[j] = T(tg.mean_dy), b[j] = T(tg.b), mean[j] = T(tg.mean);
            }
            for (index_t n = 0; n < s.n; ++n) {
                const index_t r = n * s.c + c0;
                for (index_t j = 0; j < len; ++j)
                    grad_x[r + j] = a[j] * (grad_out[r + j] - mean_dy[j]) + b[j] * (x[r + j] - mean[j]);
            }
        });
        return;
    }
    // grad_x past the caches when it cannot stay there: x and dy are read twice (sums, then
    // grad_x) and grad_x written once, so a read for ownership of grad_x is a sixth of the traffic
    const bool stream = s.n * plane_stride * index_t(sizeof(T)) >= kStreamBytes;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const index_t first = c * s.s;
        const double shift = x[first];
        StatSums sums(shift);
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            sums.add(x + p, grad_out + p, ones, s.s);
        }
        const TrainGrad tg = train_grad(c, sums.totals(), shift, count, weight, grad_weight, grad_bias, s.eps);
        const T a = T(tg.a), mean_dy = T(tg.mean_dy), b = T(tg.b), mean = T(tg.mean);
        const auto apply = [&](T* __restrict gx, const T* __restrict gy, const T* __restrict xp, index_t len) {
            for (index_t i = 0; i < len; ++i) gx[i] = a * (gy[i] - mean_dy) + b * (xp[i] - mean);
        };
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            if (!stream) {
                apply(grad_x + p, grad_out + p, x + p, s.s);
                continue;
            }
            alignas(64) T chunk[kStreamChunk];   // computed in L1, then streamed out
            for (index_t i = 0; i < s.s; i += kStreamChunk) {
                const index_t len = std::min(kStreamChunk, s.s - i);
                apply(chunk, grad_out + p + i, x + p + i, len);
                copy_streaming(grad_x + p + i, chunk, len);
            }
        }
        if (stream) stream_fence();
    }
}

template <class T>
void batch_norm_backward_eval(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                              const T* running_mean, const T* running_var, const T* weight,
                              const BatchNormSizes& s) {
    // grad_x, grad_out, x: (N, C, S); the rest (C,) (grad_weight, weight may be null)
    using namespace norm;
    const index_t plane_stride = s.c * s.s;
    const T* ones = nullptr;
    const auto invstd = [&](index_t c) { return 1.0 / std::sqrt(double(running_var[c]) + s.eps); };
    const auto scale = [&](index_t c) { return T((weight ? double(weight[c]) : 1.0) * invstd(c)); };
    if (s.s == 1) {
        for_each_channel_block(s.c, [&](index_t c0, index_t len) {
            double g[kChannelBlock] = {}, gd[kChannelBlock] = {};   // sum(dy), sum(dy * (x - running_mean))
            T a[kChannelBlock], mean[kChannelBlock];
            for (index_t j = 0; j < len; ++j) a[j] = scale(c0 + j), mean[j] = running_mean[c0 + j];
            for (index_t n = 0; n < s.n; ++n) {
                const index_t r = n * s.c + c0;
                for (index_t j = 0; j < len; ++j) {
                    const double gy = grad_out[r + j];
                    g[j] += gy;
                    gd[j] += gy * (double(x[r + j]) - double(mean[j]));
                    grad_x[r + j] = grad_out[r + j] * a[j];
                }
            }
            for (index_t j = 0; j < len; ++j) {
                grad_bias[c0 + j] = T(g[j]);
                if (grad_weight) grad_weight[c0 + j] = T(gd[j] * invstd(c0 + j));
            }
        });
        return;
    }
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const index_t first = c * s.s;
        const T a = scale(c);
        StatSums sums(double(running_mean[c]));   // totals().gd = sum(dy * (x - running_mean))
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            sums.add(x + p, grad_out + p, ones, s.s);
            for (index_t i = 0; i < s.s; ++i) grad_x[p + i] = grad_out[p + i] * a;
        }
        const Totals t = sums.totals();
        grad_bias[c] = T(t.g);
        if (grad_weight) grad_weight[c] = T(t.gd * invstd(c));
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
