// convkit/src/batch_norm_impl.hpp -- batch normalisation kernels (API in batch_norm.hpp) for one
// instruction set: compiled by norm_<isa>.cpp, chosen at run time by norm_dispatch.cpp.
//
// Writes: y, grad_x, grad_weight, grad_bias are fully OVERWRITTEN; running_mean and
// running_var are updated in place (training forward only).
//
// One task per channel: the channel's sums (one read of its N planes, in double,
// norm_stats.hpp) are followed at once by the pass that writes its output, while the
// planes are still in cache, so x travels from memory about once. The sum order is fixed
// per channel (planes n = 0..N-1, each left to right): results are bit-identical for any
// thread count.
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

namespace convkit {
namespace CONVKIT_ISA {

template <class T>
void batch_norm_forward_train(T* y, T* running_mean, T* running_var, const T* x, const T* weight,
                              const T* bias, const BatchNormSizes& s) {
    // y, x: (N, C, S); weight, bias, running_mean, running_var: (C,) or null
    const index_t plane_stride = s.c * s.s;
    const double count = double(s.n) * double(s.s), m = s.momentum;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const T* xc = x + c * s.s;
        const double shift = xc[0];
        StatSums sums(shift);
        for (index_t n = 0; n < s.n; ++n) sums.add(xc + n * plane_stride, s.s);
        const MeanVar mv(sums.totals(), shift, count);
        const double scale = (weight ? double(weight[c]) : 1.0) / std::sqrt(mv.var + s.eps);
        const double offset = (bias ? double(bias[c]) : 0.0) - mv.mean * scale;
        for (index_t n = 0; n < s.n; ++n)
            scale_shift(y + c * s.s + n * plane_stride, xc + n * plane_stride, s.s, T(scale), T(offset));
        if (running_mean) running_mean[c] = T((1 - m) * double(running_mean[c]) + m * mv.mean);
        if (running_var) running_var[c] = T((1 - m) * double(running_var[c]) + m * mv.var * count / (count - 1));
    }
}

template <class T>
void batch_norm_forward_eval(T* y, const T* x, const T* running_mean, const T* running_var,
                             const T* weight, const T* bias, const BatchNormSizes& s) {
    // y, x: (N, C, S); running_mean, running_var: (C,); weight, bias: (C,) or null
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
    const index_t plane_stride = s.c * s.s;
    const double count = double(s.n) * double(s.s);
    const T* ones = nullptr;   // dy is not weighted in the sums
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const index_t first = c * s.s;
        const double shift = x[first];
        StatSums sums(shift);
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            sums.add(x + p, grad_out + p, ones, s.s);
        }
        const Totals t = sums.totals();
        const MeanVar mv(t, shift, count);
        const double invstd = 1.0 / std::sqrt(mv.var + s.eps);
        const double dy_xmu = t.gd - (mv.mean - shift) * t.g;   // sum(dy * (x - mean))
        const double w = weight ? double(weight[c]) : 1.0;
        grad_bias[c] = T(t.g);
        if (grad_weight) grad_weight[c] = T(dy_xmu * invstd);
        // grad_x = a * (dy - mean_dy) + b * (x - mean)
        const T a = T(w * invstd), mean_dy = T(t.g / count), mean = T(mv.mean);
        const T b = T(-w * invstd * invstd * invstd * dy_xmu / count);
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            T* gx = grad_x + p;
            const T* gy = grad_out + p;
            const T* xp = x + p;
            for (index_t i = 0; i < s.s; ++i) gx[i] = a * (gy[i] - mean_dy) + b * (xp[i] - mean);
        }
    }
}

template <class T>
void batch_norm_backward_eval(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                              const T* running_mean, const T* running_var, const T* weight,
                              const BatchNormSizes& s) {
    // grad_x, grad_out, x: (N, C, S); the rest (C,) (grad_weight, weight may be null)
    const index_t plane_stride = s.c * s.s;
    const T* ones = nullptr;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t c = 0; c < s.c; ++c) {
        const index_t first = c * s.s;
        const double mean = running_mean[c], invstd = 1.0 / std::sqrt(double(running_var[c]) + s.eps);
        const T a = T((weight ? double(weight[c]) : 1.0) * invstd);
        StatSums sums(mean);   // totals().gd = sum(dy * (x - running_mean))
        for (index_t n = 0; n < s.n; ++n) {
            const index_t p = first + n * plane_stride;
            sums.add(x + p, grad_out + p, ones, s.s);
            for (index_t i = 0; i < s.s; ++i) grad_x[p + i] = grad_out[p + i] * a;
        }
        const Totals t = sums.totals();
        grad_bias[c] = T(t.g);
        if (grad_weight) grad_weight[c] = T(t.gd * invstd);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
