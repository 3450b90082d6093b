// convkit/src/conv2d_impl.hpp -- conv2d forward, backward-data, backward-weight as implicit GEMMs.
//
// Per image n and group g (Cig = C_in/G input channels, Cog = C_out/G output channels,
// K = Cig*KH*KW, P = OH*OW):
//   forward          out[n,g]  (Cog x P)  = W[g] (Cog x K)      * col(x[n,g]) (K x P)
//   backward-data    col       (K x P)    = W[g]^T (K x Cog)    * dy[n,g]     (Cog x P), then col2im
//   backward-weight  dW[g]     (Cog x K)  = sum_n dy[n,g] (Cog x P) * col(x[n,g])^T (P x K)
// col(x) is never stored for forward/backward-weight: the B-packing reads it straight
// from x (im2col fused into packing). Backward-data keeps one image's col per thread.
//
// Writes: every output (out, grad_x, grad_w) is fully OVERWRITTEN, never accumulated into.
// Determinism: each output element is produced by exactly one task with a fixed
// summation order, independent of the thread count (no atomics, no split reductions).
#pragma once
#include <vector>
#include "gemm.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Pack rows [k0, k0+kc) x columns [j0, j0+n) of col(x) for one image/group into NR panels.
// Row k = (c, kh, kw), column j = (oh, ow): value x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw].
// Walks each row in runs that stay inside one output row and one panel; a run fully
// inside the image is a plain (for stride 1: contiguous, vectorised) copy.
template <class T>
void pack_im2col(T* __restrict dst, const T* x, const Conv2dSizes& s,
                 index_t k0, index_t kc, index_t j0, index_t n) {
    constexpr index_t NR = Tile<T>::NR;
    const index_t npad = round_up(n, NR), sw = s.stride_w;
    for (index_t kk = 0; kk < kc; ++kk) {
        const index_t k = k0 + kk;
        const index_t c = k / (s.kh * s.kw), r = k % (s.kh * s.kw);
        const index_t dh = (r / s.kw) * s.dil_h - s.pad_h, dw = (r % s.kw) * s.dil_w - s.pad_w;
        const T* plane = x + c * s.h * s.w;
        T* row_dst = dst + kk * NR;
        index_t j = 0, oh = j0 / s.ow, ow = j0 % s.ow;
        while (j < n) {
            // run: columns j .. j+len-1, same output row oh and same panel
            const index_t len = std::min({s.ow - ow, n - j, NR - j % NR});
            T* d = row_dst + (j / NR) * kc * NR + j % NR;
            const index_t ih = oh * s.stride_h + dh;
            const index_t iw0 = ow * sw + dw, iw1 = iw0 + (len - 1) * sw;
            if (ih < 0 || ih >= s.h) {
                std::fill(d, d + len, T(0));
            } else if (iw0 >= 0 && iw1 < s.w) {
                const T* src = plane + ih * s.w + iw0;
                if (sw == 1) std::copy(src, src + len, d);
                else for (index_t t = 0; t < len; ++t) d[t] = src[t * sw];
            } else {
                const T* src = plane + ih * s.w;
                for (index_t t = 0, iw = iw0; t < len; ++t, iw += sw)
                    d[t] = (iw >= 0 && iw < s.w) ? src[iw] : T(0);
            }
            j += len; ow += len;
            if (ow == s.ow) { ow = 0; ++oh; }
        }
        for (; j < npad; ++j) row_dst[(j / NR) * kc * NR + j % NR] = T(0);
    }
}

// Pack rows [p0, p0+kc) x columns [j0, j0+n) of col(x)^T (row p = (oh, ow), column j = (c, kh, kw)).
// off/dh/dw: per-column channel offset and tap displacement, precomputed by the caller.
template <class T>
void pack_im2col_t(T* __restrict dst, const T* x, const Conv2dSizes& s, index_t p0, index_t kc,
                   index_t n, const index_t* off, const index_t* dh, const index_t* dw) {
    constexpr index_t NR = Tile<T>::NR;
    index_t oh = p0 / s.ow, ow = p0 % s.ow;
    for (index_t kk = 0; kk < kc; ++kk) {
        const index_t ihb = oh * s.stride_h, iwb = ow * s.stride_w;
        for (index_t j0 = 0; j0 < n; j0 += NR) {
            T* d = dst + (j0 / NR) * kc * NR + kk * NR;
            const index_t nr = std::min<index_t>(NR, n - j0);
            for (index_t j = 0; j < nr; ++j) {
                const index_t ih = ihb + dh[j0 + j], iw = iwb + dw[j0 + j];
                d[j] = (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) ? x[off[j0 + j] + ih * s.w + iw] : T(0);
            }
            for (index_t j = nr; j < NR; ++j) d[j] = T(0);
        }
        if (++ow == s.ow) { ow = 0; ++oh; }
    }
}

// grad_x plane of channel c (H x W) = sum over taps of the matching col rows (a gather per channel).
template <class T>
void col2im_channel(T* __restrict gx, const T* col, const Conv2dSizes& s, index_t c) {
    const index_t P = s.oh * s.ow;
    std::fill(gx, gx + s.h * s.w, T(0));
    for (index_t kh = 0; kh < s.kh; ++kh)
        for (index_t kw = 0; kw < s.kw; ++kw) {
            const T* crow = col + ((c * s.kh + kh) * s.kw + kw) * P;
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const index_t ih = oh * s.stride_h + kh * s.dil_h - s.pad_h;
                if (ih < 0 || ih >= s.h) continue;
                T* grow = gx + ih * s.w;
                index_t iw = kw * s.dil_w - s.pad_w;
                for (index_t ow = 0; ow < s.ow; ++ow, iw += s.stride_w)
                    if (iw >= 0 && iw < s.w) grow[iw] += crow[oh * s.ow + ow];
            }
        }
}

// out (N, C_out, OH, OW) = conv2d(x (N, C_in, H, W), w (C_out, C_in/G, KH, KW)) + bias (C_out or null)
template <class T>
void conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    const int nt = num_threads();
    const index_t G = s.groups, Cig = s.c_in / G, Cog = s.c_out / G;
    const index_t K = Cig * s.kh * s.kw, P = s.oh * s.ow, mpad = round_up(Cog, Tile<T>::MR);
    const index_t nc = column_block<T>(P, s.n * G, nt), nblocks = ceil_div(P, nc);

    // Weights are packed once per call (they are the A operand of every task).
    AlignedBuffer<T> wpack = aligned_buffer<T>(G * packed_a_size<T>(Cog, K));
    std::vector<AlignedBuffer<T>> bbufs;
    for (int t = 0; t < nt; ++t) bbufs.push_back(aligned_buffer<T>(Tile<T>::KC * round_up(nc, Tile<T>::NR)));

#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (index_t g = 0; g < G; ++g)
            pack_a_full(wpack.get() + g * mpad * K, w + g * Cog * K, K, 1, Cog, K);

        T* bbuf = bbufs[thread_index()].get();
#pragma omp for schedule(dynamic)
        for (index_t task = 0; task < s.n * G * nblocks; ++task) {
            const index_t ng = task / nblocks, j0 = (task % nblocks) * nc, g = ng % G;
            const index_t n = std::min(nc, P - j0);
            const T* xg = x + ng * Cig * s.h * s.w;       // x[n, g*Cig]
            T* c = out + ng * Cog * P + j0;               // out[n, g*Cog, j0]
            const T* wg = wpack.get() + g * mpad * K;
            gemm_block<T>(Cog, n, K,
                [&](T*, index_t pc, index_t) { return wg + pc * mpad; },
                [&](T* dst, index_t pc, index_t kc) { pack_im2col(dst, xg, s, pc, kc, j0, n); },
                c, P, false, nullptr, bbuf);
            if (bias)
                for (index_t co = 0; co < Cog; ++co) {
                    const T b = bias[g * Cog + co];
                    for (index_t j = 0; j < n; ++j) c[co * P + j] += b;
                }
        }
    }
}

// grad_x (N, C_in, H, W) from grad_out (N, C_out, OH, OW) and w (C_out, C_in/G, KH, KW).
template <class T>
void conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) {
    const int nt = num_threads();
    const index_t G = s.groups, Cig = s.c_in / G, Cog = s.c_out / G;
    const index_t K = Cig * s.kh * s.kw, P = s.oh * s.ow, kpad = round_up(K, Tile<T>::MR);
    const index_t images = s.n * G;
    const bool per_image = images >= nt;   // else: split each image's GEMM and col2im over threads
    const index_t nc = per_image ? std::min<index_t>(Tile<T>::NC, round_up(P, Tile<T>::NR))
                                 : column_block<T>(P, 1, nt);
    const index_t nblocks = ceil_div(P, nc);

    AlignedBuffer<T> wpack = aligned_buffer<T>(G * packed_a_size<T>(K, Cog));   // W^T per group
    std::vector<AlignedBuffer<T>> bbufs, cols;
    for (int t = 0; t < nt; ++t) {
        bbufs.push_back(aligned_buffer<T>(Tile<T>::KC * round_up(nc, Tile<T>::NR)));
        if (per_image || t == 0) cols.push_back(aligned_buffer<T>(K * P));
    }

    // One column block of col = W[g]^T * dy[n,g].
    auto gemm_columns = [&](T* col, T* bbuf, index_t ng, index_t j0) {
        const index_t n = std::min(nc, P - j0);
        const T* wg = wpack.get() + (ng % G) * kpad * Cog;
        const T* dy = grad_out + ng * Cog * P + j0;
        gemm_block<T>(K, n, Cog,
            [&](T*, index_t pc, index_t) { return wg + pc * kpad; },
            [&](T* dst, index_t pc, index_t kc) { pack_b(dst, dy + pc * P, P, 1, kc, n); },
            col + j0, P, false, nullptr, bbuf);
    };

#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (index_t g = 0; g < G; ++g)   // A = W[g]^T: element (k, co) at w[g*Cog*K + co*K + k]
            pack_a_full(wpack.get() + g * kpad * Cog, w + g * Cog * K, 1, K, K, Cog);

        T* bbuf = bbufs[thread_index()].get();
        if (per_image) {
            T* col = cols[thread_index()].get();
#pragma omp for schedule(dynamic)
            for (index_t ng = 0; ng < images; ++ng) {
                for (index_t b = 0; b < nblocks; ++b) gemm_columns(col, bbuf, ng, b * nc);
                for (index_t c = 0; c < Cig; ++c)
                    col2im_channel(grad_x + (ng * Cig + c) * s.h * s.w, col, s, c);
            }
        } else {
            T* col = cols[0].get();
            for (index_t ng = 0; ng < images; ++ng) {
#pragma omp for schedule(dynamic)
                for (index_t b = 0; b < nblocks; ++b) gemm_columns(col, bbuf, ng, b * nc);
#pragma omp for schedule(static)
                for (index_t c = 0; c < Cig; ++c)
                    col2im_channel(grad_x + (ng * Cig + c) * s.h * s.w, col, s, c);
            }
        }
    }
}

// grad_w (C_out, C_in/G, KH, KW) from grad_out (N, C_out, OH, OW) and x (N, C_in, H, W).
template <class T>
void conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) {
    const int nt = num_threads();
    const index_t G = s.groups, Cig = s.c_in / G, Cog = s.c_out / G;
    const index_t K = Cig * s.kh * s.kw, P = s.oh * s.ow;
    const index_t nc = column_block<T>(K, G, nt), nblocks = ceil_div(K, nc);

    // Per column j = (c, kh, kw) of dW: channel offset and tap displacement, for the B packing.
    std::vector<index_t> off(K), dh(K), dw(K);
    for (index_t j = 0; j < K; ++j) {
        const index_t c = j / (s.kh * s.kw), r = j % (s.kh * s.kw);
        off[j] = c * s.h * s.w;
        dh[j] = (r / s.kw) * s.dil_h - s.pad_h;
        dw[j] = (r % s.kw) * s.dil_w - s.pad_w;
    }
    std::vector<AlignedBuffer<T>> abufs, bbufs;
    for (int t = 0; t < nt; ++t) {
        abufs.push_back(aligned_buffer<T>(round_up(Cog, Tile<T>::MR) * Tile<T>::KC));
        bbufs.push_back(aligned_buffer<T>(Tile<T>::KC * round_up(nc, Tile<T>::NR)));
    }

#pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (index_t task = 0; task < G * nblocks; ++task) {
        const index_t g = task / nblocks, j0 = (task % nblocks) * nc, n = std::min(nc, K - j0);
        T* abuf = abufs[thread_index()].get();
        T* bbuf = bbufs[thread_index()].get();
        for (index_t img = 0; img < s.n; ++img) {   // images summed in order: deterministic
            const T* dy = grad_out + (img * G + g) * Cog * P;
            const T* xg = x + (img * G + g) * Cig * s.h * s.w;
            gemm_block<T>(Cog, n, P,
                [&](T* dst, index_t pc, index_t kc) { pack_a(dst, dy + pc, P, 1, Cog, kc); return (const T*)dst; },
                [&](T* dst, index_t pc, index_t kc) {
                    pack_im2col_t(dst, xg, s, pc, kc, n, &off[j0], &dh[j0], &dw[j0]); },
                grad_w + g * Cog * K + j0, K, img > 0, abuf, bbuf);
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
