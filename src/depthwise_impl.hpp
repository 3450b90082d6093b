// convkit/src/depthwise_impl.hpp -- direct depthwise convolution (groups == C_in), no im2col.
//
// Sizes (Conv2dSizes, groups == c_in): x (N, C, H, W); w (C*M, 1, KH, KW) with channel
// multiplier M = C_out / C; out (N, C*M, OH, OW). Output channel c*M + m reads only input
// channel c. Any stride, padding and dilation.
//
// Every kernel first copies the plane it reads into a per-thread, zero-padded buffer laid
// out so that each kernel tap is a contiguous, in-bounds run of memory. Then one output
// row (forward, backward-data) or one tap's dot product (backward-weight) is a plain vector
// loop over output columns with no bounds checks at all. For column stride sw > 1 each
// buffer row is split into sw "phases" (columns p, p+sw, p+2sw, ...), so strided taps are
// contiguous too.
//
//   forward          task = plane (n, c): buffer of x[n,c]; for each m, every output row:
//                    out[oh, :] = bias + sum over taps of w[tap] * (the tap's buffer run)
//   backward-data    task = plane (n, c): for each m, buffer of gy[n, c*M+m]. The grad_x rows
//                    of one row phase rh = (ih + ph) mod sh and the columns of one column phase
//                    rho = (iw + pw) mod sw form a stride-1 correlation over the taps that reach
//                    them ((kh*dh) mod sh = rh, (kw*dw) mod sw = rho); for sw > 1 the column
//                    phases go to scratch rows first and are then interleaved into grad_x
//                    (a vectorised zip for sw = 2). m > 0 adds to grad_x.
//   backward-weight  task = channel c: for n in order, buffer of x[n,c]; for each m and tap:
//                    dot(gy[n, c*M+m], the tap's buffer runs) in vector lanes of T, flushed to
//                    double lanes every ~32 terms per lane (float sums stay short), lanes summed
//                    in order at the end.
//   backward         (conv2d_backward) backward-weight's tasks, each plane's backward-data done
//                    just before its dots: grad_out is read from memory once for both (output
//                    planes of 2048 values and more; smaller ones take the two passes).
// Each thread walks its tasks' planes with two buffers, copying the next plane before working
// on the current one (depthwise_buffers.hpp, pipelined). Tap loops are unrolled at compile
// time for the common counts (3x3: 9; the stride-2 phases of backward-data: 4, 2, 1).
//
// Writes: out, grad_x and grad_w are fully OVERWRITTEN, never accumulated into.
// Determinism: each output element is produced by one task with a fixed summation order,
// independent of the thread count (no atomics, no split reductions).
//
// These row kernels serve fewer than two vectors of channels, or planes too large for a lane
// plane of 1 MiB (224x224); the rest goes to depthwise_lanes.hpp, channels across the lanes.
//
// Files: depthwise_rows.hpp (inner loops), depthwise_buffers.hpp (padded buffers, layouts),
// depthwise_lanes.hpp (channels across lanes), this file (the three kernels);
// depthwise_isa.cpp compiles them per instruction set and depthwise_dispatch.cpp picks one at
// run time (depthwise.hpp).
// Test: python -m pytest tests/test_depthwise.py    Bench: python -m pytest bench/bench_depthwise.py
#pragma once
#include <vector>
#include "depthwise_lanes.hpp"

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including depthwise_impl.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {

// ------------------------------------------------------------------ kernels
// out (N, C*M, OH, OW) = depthwise conv of x (N, C, H, W) with w (C*M, 1, KH, KW) + bias (C*M or null)
template <class T>
void depthwise_conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    using namespace depthwise;
    if (lanes_across_channels<T>(s)) return depthwise_conv2d_forward_lanes(out, x, w, bias, s);
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow;
    const InputLayout L = InputLayout::of<T>(s);
    std::vector<AlignedBuffer<T>> bufs;   // two per thread (pipelined)
    for (int t = 0; t < 2 * nt; ++t) bufs.push_back(aligned_buffer<T>(L.copy.size()));

#pragma omp parallel num_threads(nt)
    {
        T* buf0 = bufs[2 * worker()].get();
        T* buf1 = bufs[2 * worker() + 1].get();
        L.copy.clear(buf0);
        L.copy.clear(buf1);
        index_t begin, end;
        my_share(s.n * C, begin, end);   // planes n*C + c
        pipelined(buf0, buf1, begin, end,
            [&](T* buf, index_t plane) { L.copy(buf, x + plane * s.h * s.w); },
            [&](const T* buf, index_t plane) {
                for (index_t m = 0; m < M; ++m) {
                    const index_t co = (plane % C) * M + m;
                    taps_block_any(out + (plane * M + m) * P, s.ow, s.oh, s.ow, buf, L.pitch,
                                   L.tap_offset.data(), w + co * taps, static_cast<int>(taps),
                                   bias ? bias[co] : T(0), false, false);
                }
            });
    }
}

namespace depthwise {

// Per-thread scratch of backward-data: for sw > 1 every (row phase, column phase) block of a
// plane, (rh, rho, r, t) at ((rh*sw + rho)*rows_max + r)*count_max + t, before the blocks are
// interleaved into grad_x; and one phase's tap weights.
template <class T> struct DataScratch {
    AlignedBuffer<T> phase_rows;
    std::vector<T> weights;
    DataScratch(const Conv2dSizes& s, const GradLayout& G)
        : phase_rows(aligned_buffer<T>(s.stride_w > 1 ? s.stride_h * s.stride_w * G.rows_max * G.count_max : 1)),
          weights(static_cast<std::size_t>(s.kh * s.kw)) {}
};

// grad_x of item plane*M + m (plane n*C + c) from its grad_out plane, copied into buf by
// G.copy; m > 0 adds to what m - 1 wrote.
template <class T>
void backward_data_item(T* grad_x, const T* buf, index_t item, const T* w, const Conv2dSizes& s,
                        const GradLayout& G, DataScratch<T>& d) {
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, sh = s.stride_h, sw = s.stride_w;
    const index_t phase_block = G.rows_max * G.count_max;
    const index_t plane = item / M, m = item % M;
    const T* wk = w + ((plane % C) * M + m) * taps;
    T* gx = grad_x + plane * s.h * s.w;
    T* tmp = d.phase_rows.get();
    T* wt = d.weights.data();
    for (index_t rh = 0; rh < sh; ++rh) {
        const index_t rows = G.nrows[rh];
        if (rows == 0) continue;
        for (index_t rho = 0; rho < sw; ++rho) {
            if (G.count[rho] == 0) continue;
            const index_t b = G.first[rh * sw + rho], e = G.first[rh * sw + rho + 1];
            for (index_t j = b; j < e; ++j) wt[j - b] = wk[G.tap[j]];
            const T* in = buf + G.start(rh, rho, s);
            if (sw == 1)   // the one column phase is the whole row (t0 = pw: iw = t - pw)
                taps_block_any(gx + G.ih0[rh] * s.w, sh * s.w, rows, G.count[0], in, G.copy.run, &G.offset[b], wt,
                               static_cast<int>(e - b), T(0), m > 0, false);
            else
                taps_block_any(tmp + (rh * sw + rho) * phase_block, G.count_max, rows, G.count[rho], in, G.copy.run,
                               &G.offset[b], wt, static_cast<int>(e - b), T(0), false, true);
        }
    }
    if (sw > 1) interleave(gx, s, G, tmp, phase_block, m > 0);
}

}  // namespace depthwise

// grad_x (N, C, H, W) from grad_out (N, C*M, OH, OW) and w (C*M, 1, KH, KW).
template <class T>
void depthwise_conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) {
    using namespace depthwise;
    if (lanes_across_channels<T>(s)) return depthwise_conv2d_backward_lanes<T>(grad_x, nullptr, grad_out, nullptr, w, s);
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, P = s.oh * s.ow;
    const GradLayout G = GradLayout::of<T>(s);
    std::vector<AlignedBuffer<T>> bufs;   // two grad_out buffers per thread (pipelined)
    std::vector<DataScratch<T>> scratch;   // (allocated here: an exception cannot leave a parallel region)
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(G.copy.size()));
        bufs.push_back(aligned_buffer<T>(G.copy.size()));
        scratch.emplace_back(s, G);
    }

#pragma omp parallel num_threads(nt)
    {
        T* buf0 = bufs[2 * worker()].get();
        T* buf1 = bufs[2 * worker() + 1].get();
        G.copy.clear(buf0);
        G.copy.clear(buf1);
        index_t begin, end;
        my_share(s.n * C, begin, end);   // planes n*C + c; items plane*M + m
        pipelined(buf0, buf1, begin * M, end * M,
            [&](T* buf, index_t item) { G.copy(buf, grad_out + item * P); },
            [&](const T* buf, index_t item) { backward_data_item(grad_x, buf, item, w, s, G, scratch[worker()]); });
    }
}

// Output planes of fewer values than this take the two passes: the channel-major walk of the
// fused pass (planes C apart) loses to backward-data's walk in memory order there (Zen 4,
// batch 16: 28x28 planes 1.11-1.16x the time of two passes, 14x14 and 7x7 level; 56x56 and
// 112x112 planes 0.83-0.91x).
constexpr index_t kFusedMinPlane = 2048;

// grad_w (C*M, 1, KH, KW) from grad_out (N, C*M, OH, OW) and x (N, C, H, W); and, when
// grad_x is given, grad_x (N, C, H, W) in the same pass (w: the weights): each grad_out plane
// is then read from memory once, for both (the two separate passes had streamed it twice).
template <class T>
void depthwise_conv2d_backward(T* grad_x, T* grad_w, const T* grad_out, const T* x, const T* w,
                               const Conv2dSizes& s) {
    using namespace depthwise;
    if (lanes_across_channels<T>(s)) return depthwise_conv2d_backward_lanes(grad_x, grad_w, grad_out, x, w, s);
    if (grad_x && s.oh * s.ow < kFusedMinPlane) {
        CONVKIT_ISA::depthwise_conv2d_backward_data(grad_x, grad_out, w, s);   // (qualified: ADL would also find convkit::)
        return CONVKIT_ISA::depthwise_conv2d_backward<T>(nullptr, grad_w, grad_out, x, w, s);
    }
    constexpr int VL = lanes<T>(), kChunk = 9;   // taps per pass (tap_dots unrolls up to 9)
    constexpr index_t kTerms = 32;                // vector terms per lane summed in T before a flush to double
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow;
    const InputLayout L = InputLayout::of<T>(s);
    const GradLayout G = GradLayout::of<T>(s);
    const index_t chunks = ceil_div(s.ow, VL);                        // vector terms per row and lane
    const index_t block = std::min(s.oh, std::max<index_t>(1, kTerms / chunks));   // rows per tap_dots call
    std::vector<AlignedBuffer<T>> bufs;
    std::vector<AlignedBuffer<V<T>>> partials;   // per thread: M * taps vector sums in T
    std::vector<AlignedBuffer<double>> sums;     // per thread: M * taps * VL lane sums in double
    std::vector<DataScratch<T>> data;            // per thread, with grad_x
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(L.copy.size()));
        bufs.push_back(aligned_buffer<T>(L.copy.size()));
        partials.push_back(aligned_buffer<V<T>>(M * taps));
        sums.push_back(aligned_buffer<double>(M * taps * VL));
        if (grad_x) {   // a grad_out plane and the scratch of backward-data
            bufs.push_back(aligned_buffer<T>(G.copy.size()));
            data.emplace_back(s, G);
        }
    }
    const int per_thread = grad_x ? 3 : 2;

#pragma omp parallel num_threads(nt)
    {
        T* buf0 = bufs[per_thread * worker()].get();
        T* buf1 = bufs[per_thread * worker() + 1].get();
        T* gbuf = grad_x ? bufs[per_thread * worker() + 2].get() : nullptr;
        if (grad_x) G.copy.clear(gbuf);
        V<T>* part = partials[worker()].get();
        double* sum = sums[worker()].get();
        L.copy.clear(buf0);
        L.copy.clear(buf1);
        auto flush = [&] {
            for (index_t j = 0; j < M * taps; ++j) {
                for (int l = 0; l < VL; ++l) sum[j * VL + l] += static_cast<double>(part[j][l]);
                part[j] = V<T>{};
            }
        };
#pragma omp for schedule(dynamic)
        for (index_t c = 0; c < C; ++c) {
            std::fill(sum, sum + M * taps * VL, 0.0);
            std::fill(part, part + M * taps, V<T>{});
            index_t terms = 0;   // per lane in `part` since the last flush (a function of the shape only)
            pipelined(buf0, buf1, 0, s.n,   // images in order: deterministic
                [&](T* buf, index_t n) {
                    L.copy(buf, x + (n * C + c) * s.h * s.w);
                    if (n + 1 < s.n) {   // the planes of image n+1, read an item from now
                        prefetch(x + ((n + 1) * C + c) * s.h * s.w, s.h * s.w);
                        prefetch(grad_out + ((n + 1) * C + c) * M * P, M * P);
                    }
                },
                [&](const T* buf, index_t n) {
                    if (grad_x)   // the planes' grad_x first: their grad_out then stays in cache for the dots
                        for (index_t m = 0; m < M; ++m) {
                            const index_t item = (n * C + c) * M + m;
                            G.copy(gbuf, grad_out + item * P);
                            backward_data_item(grad_x, gbuf, item, w, s, G, data[worker()]);
                        }
                    for (index_t oh = 0; oh < s.oh; oh += block) {
                        const index_t rows = std::min(block, s.oh - oh);
                        if (terms + rows * chunks > kTerms) { flush(); terms = 0; }
                        for (index_t m = 0; m < M; ++m)
                            for (index_t i = 0; i < taps; i += kChunk)
                                tap_dots_any<T>(static_cast<int>(std::min<index_t>(kChunk, taps - i)),
                                                part + m * taps + i, grad_out + ((n * C + c) * M + m) * P + oh * s.ow,
                                                s.ow, rows, buf + oh * L.pitch, L.pitch,
                                                &L.tap_offset[i]);
                        terms += rows * chunks;
                    }
                });
            flush();
            for (index_t j = 0; j < M * taps; ++j) {   // lanes summed in order
                double total = 0.0;
                for (int l = 0; l < VL; ++l) total += sum[j * VL + l];
                grad_w[c * M * taps + j] = static_cast<T>(total);
            }
        }
    }
}

template <class T>
void depthwise_conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) {
    CONVKIT_ISA::depthwise_conv2d_backward<T>(nullptr, grad_w, grad_out, x, nullptr, s);
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
