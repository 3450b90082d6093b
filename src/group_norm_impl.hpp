// convkit/src/group_norm_impl.hpp -- group normalisation kernels (API in group_norm.hpp) for one
// instruction set: compiled by norm_isa.cpp (once per CONVKIT_ISA), chosen at run time by norm_dispatch.cpp.
//
// Writes: y, grad_x, grad_weight, grad_bias are fully OVERWRITTEN, never accumulated into.
//
// One task per row (sample, group): the row's sums (in double, norm_stats.hpp) and then
// its output, while the row is still in cache. Per-channel gradients sum over the samples
// in a second, channel-parallel pass. Every sum has a fixed order (rows left to right,
// samples 0..N-1), so results are bit-identical for any thread count.
//
// Backward of one row, xhat = (x - mean) * rstd, rstd = 1/sqrt(var + eps), M elements:
//   grad_x = rstd * (w dy - sum(w dy)/M - xhat * sum(w dy xhat)/M)
//          = rstd w dy + b (x - mean) + c,  b = -rstd^3 sum(w dy (x - mean))/M,  c = -rstd sum(w dy)/M
//   grad_weight[c] = sum over (n, s) of dy * xhat,  grad_bias[c] = sum of dy
// Two layouts of the same arithmetic: S > 1 (group, instance norm) has one weight per
// plane of S elements and keeps per-plane sums for the weight gradients; S == 1 (layer
// norm) has one weight per element, and grad_x is written by the column-parallel pass
// that also sums the weight gradients (the rows are too long to stay in cache).
#pragma once
#include <vector>
#include "group_norm.hpp"
#include "norm_stats.hpp"

namespace convkit {
namespace CONVKIT_ISA {

namespace norm {

constexpr index_t kColumnBlock = 512;   // S == 1 backward: columns per task

// Per-row constants of the backward: grad_x = rstd * w * dy + b * (x - mean) + c.
struct RowGrad {
    double mean, rstd, b, c;
};

}  // namespace norm

template <class T>
void group_norm_forward(T* y, double* mean, double* var, const T* x, const T* weight, const T* bias,
                        const GroupNormSizes& s) {
    // y, x: (N, C, S) = N*G rows of M = C/G*S; weight, bias: (C,) or null; mean, var: (N*G,) or null
    using namespace norm;
    const index_t cg = s.c / s.groups, m = cg * s.s, rows = s.n * s.groups;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t r = 0; r < rows; ++r) {
        const T* xr = x + r * m;
        T* yr = y + r * m;
        const double shift = xr[0];
        StatSums sums(shift);
        sums.add(xr, m);
        const MeanVar mv(sums.totals(), shift, double(m));
        const double rstd = 1.0 / std::sqrt(mv.var + s.eps);
        if (mean) mean[r] = mv.mean;
        if (var) var[r] = mv.var;
        const index_t c0 = (r % s.groups) * cg;
        if (s.s == 1) {   // one weight per element: y = (x - mean) * rstd * w + b
            const T mu = T(mv.mean), rs = T(rstd);
            const T* w = weight ? weight + c0 : nullptr;
            const T* b = bias ? bias + c0 : nullptr;
            for (index_t j = 0; j < m; ++j) {
                T v = (xr[j] - mu) * rs;
                if (w) v *= w[j];
                if (b) v += b[j];
                yr[j] = v;
            }
            continue;
        }
        for (index_t j = 0; j < cg; ++j) {
            const double scale = (weight ? double(weight[c0 + j]) : 1.0) * rstd;
            const double offset = (bias ? double(bias[c0 + j]) : 0.0) - mv.mean * scale;
            scale_shift(yr + j * s.s, xr + j * s.s, s.s, T(scale), T(offset));
        }
    }
}

template <class T>
void group_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                         const T* weight, const GroupNormSizes& s) {
    // grad_x, grad_out, x: (N, C, S) = N*G rows of M = C/G*S; weight, grad_weight, grad_bias: (C,)
    using namespace norm;
    const index_t cg = s.c / s.groups, m = cg * s.s, rows = s.n * s.groups;
    const bool per_plane = s.s > 1;
    const T* ones = nullptr;
    std::vector<RowGrad> row(rows);
    // S > 1: per (n, c) plane sum(dy) and sum(dy * (x - mean_row)) for the weight gradients
    std::vector<double> plane_dy(per_plane ? s.n * s.c : 0), plane_dy_xmu(per_plane ? s.n * s.c : 0);
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t r = 0; r < rows; ++r) {
        const index_t c0 = (r % s.groups) * cg, first = r * m;
        const T* xr = x + first;
        const T* gr = grad_out + first;
        const double shift = xr[0];
        Totals t;   // over the row, dy weighted: t.g = sum(w dy), t.gd = sum(w dy (x - shift))
        if (per_plane) {
            for (index_t j = 0; j < cg; ++j) {
                StatSums plane(shift);
                plane.add(xr + j * s.s, gr + j * s.s, ones, s.s);
                const Totals pt = plane.totals();
                const double w = weight ? double(weight[c0 + j]) : 1.0;
                t.d += pt.d;
                t.dd += pt.dd;
                t.g += w * pt.g;
                t.gd += w * pt.gd;
                plane_dy[first / s.s + j] = pt.g;
                plane_dy_xmu[first / s.s + j] = pt.gd;   // shifted; recentred below
            }
        } else {
            StatSums sums(shift);
            sums.add(xr, gr, weight ? weight + c0 : nullptr, m);
            t = sums.totals();
        }
        const MeanVar mv(t, shift, double(m));
        const double rstd = 1.0 / std::sqrt(mv.var + s.eps);
        const double w_dy_xmu = t.gd - (mv.mean - shift) * t.g;   // sum(w dy (x - mean))
        row[r] = {mv.mean, rstd, -rstd * rstd * rstd * w_dy_xmu / double(m), -rstd * t.g / double(m)};
        if (!per_plane) continue;   // S == 1: grad_x comes with the column sums below
        const T b = T(row[r].b), c = T(row[r].c), mu = T(mv.mean);
        T* gx = grad_x + first;
        for (index_t j = 0; j < cg; ++j) {
            plane_dy_xmu[first / s.s + j] -= (mv.mean - shift) * plane_dy[first / s.s + j];
            const T a = T((weight ? double(weight[c0 + j]) : 1.0) * rstd);
            for (index_t i = j * s.s; i < (j + 1) * s.s; ++i) gx[i] = a * gr[i] + b * (xr[i] - mu) + c;
        }
    }

    if (per_plane) {   // weight gradients from the plane sums, samples in order
#pragma omp parallel for schedule(static) num_threads(num_threads())
        for (index_t c = 0; c < s.c; ++c) {
            double db = 0, dw = 0;
            for (index_t n = 0; n < s.n; ++n) {
                db += plane_dy[n * s.c + c];
                dw += plane_dy_xmu[n * s.c + c] * row[n * s.groups + c / cg].rstd;
            }
            grad_bias[c] = T(db);
            if (grad_weight) grad_weight[c] = T(dw);
        }
        return;
    }
    // S == 1: one block of columns per task: grad_x, and the column sums over the N samples
    const index_t blocks = ceil_div(s.c, kColumnBlock);
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (index_t blk = 0; blk < blocks; ++blk) {
        const index_t c0 = blk * kColumnBlock, len = std::min(kColumnBlock, s.c - c0);
        double db[kColumnBlock] = {}, dw[kColumnBlock] = {};
        for (index_t n = 0; n < s.n; ++n) {
            const T* g = grad_out + n * s.c + c0;
            const T* xn = x + n * s.c + c0;
            T* gx = grad_x + n * s.c + c0;
            for (index_t j = 0; j < len;) {   // one run of columns per group
                const index_t r = n * s.groups + (c0 + j) / cg, end = std::min(len, (r % s.groups + 1) * cg - c0);
                const RowGrad& rg = row[r];
                const T mu = T(rg.mean), rs = T(rg.rstd), b = T(rg.b), c = T(rg.c);
                const T* w = weight ? weight + c0 : nullptr;
                for (index_t i = j; i < end; ++i) {
                    const T xmu = xn[i] - mu;
                    gx[i] = (w ? rs * w[i] : rs) * g[i] + b * xmu + c;
                    db[i] += double(g[i]);
                    dw[i] += double(g[i]) * double(xmu * rs);
                }
                j = end;
            }
        }
        for (index_t j = 0; j < len; ++j) {
            grad_bias[c0 + j] = T(db[j]);
            if (grad_weight) grad_weight[c0 + j] = T(dw[j]);
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
