// convkit/src/depthwise_lanes.hpp -- the depthwise kernels with VL channels side by side in
// the lanes of one vector, instead of VL columns of one output row (depthwise_impl.hpp).
//
// Why: a 7-wide output row (MobileNet's 1024x7x7 layer, or 14x14 at stride 2) fills 7 of
// AVX-512's 16 float lanes, and a 7x7 plane is all tails: masked loads and stores, a buffer
// copy and a taps_block call for 49 outputs. Strided taps need phase buffers and interleaves.
// Here a "lane plane" holds VL planes (channels c0 .. c0+VL-1 of one image) position by
// position, one vector per position, so every tap of every output is one full, aligned vector
// load and one FMA with that tap's VL channel weights, whatever the row width; stride, padding
// and dilation only change which positions are read. Planes move into and out of lane planes
// by VL x VL in-register transposes (about 4 shuffles per vector each way).
//
//   lane plane     (rows x pitch vectors): input (ih, iw) at (ih + ph)*pitch + iw + pw, zero
//                  padding around; output (oh, ow) with tap (kh, kw) reads
//                  (oh*sh + kh*dh)*pitch + ow*sw + kw*dw.
//   forward        task (n, channel block): x planes -> lane plane; for each m, every output
//                  vector = bias + the taps in order; lanes -> out planes.
//   backward       task channel block, n in order (with grad_w; without it, task (n, block)):
//                  grad_out planes -> a padded lane plane (GradPlane). grad_x: each stride
//                  phase of grad_x positions (ih + ph = rh mod sh, iw + pw = rw mod sw) is a
//                  stride-1 grid over grad_out with that phase's taps, summed in a register and
//                  written once (lane_taps), then the grad_x planes. grad_w: per tap, the sum
//                  over outputs of grad_out * the tap's input vector, lane by lane (channel by
//                  channel), in T over at most kLaneTerms outputs, then into double.
// Deterministic: a lane's arithmetic does not depend on its block or thread. out and grad_x
// add the same taps in the same order as the row kernels; grad_w sums in another order.
// Chosen by lanes_across_channels (below). Test: tests/test_depthwise.py (the "channels
// across vector lanes" grid entries). Bench: bench/bench_depthwise.py.
#pragma once
#include <vector>
#include "depthwise_buffers.hpp"   // (which requires CONVKIT_ISA)

namespace convkit {
namespace CONVKIT_ISA {
namespace depthwise {

// r[i][j] <-> r[j][i] for the VL x VL values of the vectors r[0, VL): log2(VL) rounds, each
// swapping the off-diagonal B x B blocks of every 2B x 2B block (two-source shuffles).
template <class T, int B> __attribute__((always_inline)) inline void swap_blocks(V<T>* r) {
    constexpr int VL = lanes<T>();
    using I = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
    typedef I Index __attribute__((vector_size(sizeof(V<T>))));
    Index low, high;
    for (int l = 0; l < VL; ++l) {
        low[l] = (l & B) ? VL + l - B : l;    // row i keeps its own low halves, takes row i+B's
        high[l] = (l & B) ? VL + l : l + B;   // row i+B the reverse
    }
#pragma GCC unroll 16
    for (int i = 0; i < VL; ++i)
        if (!(i & B)) {
            const V<T> a = r[i], b = r[i + B];
            r[i] = __builtin_shuffle(a, b, low);
            r[i + B] = __builtin_shuffle(a, b, high);
        }
}
template <class T> __attribute__((always_inline)) inline void transpose(V<T>* r) {
    constexpr int VL = lanes<T>();
    swap_blocks<T, 1>(r);
    if constexpr (VL > 2) swap_blocks<T, 2>(r);
    if constexpr (VL > 4) swap_blocks<T, 4>(r);
    if constexpr (VL > 8) swap_blocks<T, 8>(r);
}

// Calls chunk(p0, n, full) over the positions [0, P) in chunks of n <= VL: the last VL
// positions as one full chunk that overlaps the one before (the same values again), so only
// P < VL takes a partial chunk. full: n == VL and all VL planes (the unbranched case).
template <class T, class Chunk>
inline void over_chunks(index_t P, index_t count, Chunk&& chunk) {
    constexpr int VL = lanes<T>();
    if (P < VL) return chunk(0, P, std::false_type());
    for (index_t p = 0; p < P; p += VL) {
        const index_t p0 = std::min(p, P - VL);
        if (count == VL) chunk(p0, VL, std::true_type());
        else chunk(p0, VL, std::false_type());
    }
}

// Positions [0, P) of `count` <= VL planes (plane l at src + l*stride) -> vectors
// vecs[slot(p)] (lane l = plane l; lanes >= count are 0). slot(p): an index_t -> index_t callable.
template <class T, class Slot>
void planes_to_lanes(V<T>* vecs, Slot&& slot, const T* src, index_t stride, index_t count, index_t P) {
    constexpr int VL = lanes<T>();
    over_chunks<T>(P, count, [&](index_t p0, index_t n, auto full) {
        V<T> r[VL];
#pragma GCC unroll 16
        for (int l = 0; l < VL; ++l) {
            if constexpr (decltype(full)::value) r[l] = load(src + l * stride + p0);
            else r[l] = l >= count ? V<T>{} : n == VL ? load(src + l * stride + p0) : load_first(src + l * stride + p0, n);
        }
        transpose<T>(r);
#pragma GCC unroll 16
        for (int j = 0; j < VL; ++j)
            if (decltype(full)::value || j < n) vecs[slot(p0 + j)] = r[j];
    });
}

// The inverse: vectors vecs[slot(p)], p in [0, P) -> positions of the first `count` planes.
template <class T, class Slot>
void lanes_to_planes(T* dst, index_t stride, index_t count, index_t P, const V<T>* vecs, Slot&& slot) {
    constexpr int VL = lanes<T>();
    over_chunks<T>(P, count, [&](index_t p0, index_t n, auto full) {
        V<T> r[VL];
#pragma GCC unroll 16
        for (int j = 0; j < VL; ++j) r[j] = decltype(full)::value || j < n ? vecs[slot(p0 + j)] : V<T>{};
        transpose<T>(r);
#pragma GCC unroll 16
        for (int l = 0; l < VL; ++l) {
            if constexpr (decltype(full)::value) store(dst + l * stride + p0, r[l]);
            else if (l < count) {
                if (n == VL) store(dst + l * stride + p0, r[l]);
                else store_first(dst + l * stride + p0, r[l], n);
            }
        }
    });
}

// The slot of a dense lane plane (outputs, grad_out): the position itself.
struct SamePosition {
    index_t operator()(index_t p) const { return p; }
};

template <class T> struct LanePlane {
    index_t rows, pitch;               // vectors: rows x pitch
    std::vector<index_t> slot;         // input position ih*W + iw -> (ih + ph)*pitch + iw + pw
    std::vector<index_t> tap_offset;   // kh*dh*pitch + kw*dw

    // Rows and columns the taps read, or the padded input's, whichever is more.
    static index_t rows_of(const Conv2dSizes& s) { return std::max(windows_span(s.oh, s.stride_h, s.kh, s.dil_h), s.pad_h + s.h); }
    static index_t pitch_of(const Conv2dSizes& s) { return std::max(windows_span(s.ow, s.stride_w, s.kw, s.dil_w), s.pad_w + s.w); }

    static LanePlane of(const Conv2dSizes& s) {
        LanePlane L;
        L.rows = rows_of(s);
        L.pitch = pitch_of(s);
        for (index_t ih = 0; ih < s.h; ++ih)
            for (index_t iw = 0; iw < s.w; ++iw) L.slot.push_back((ih + s.pad_h) * L.pitch + iw + s.pad_w);
        for (index_t kh = 0; kh < s.kh; ++kh)
            for (index_t kw = 0; kw < s.kw; ++kw) L.tap_offset.push_back(kh * s.dil_h * L.pitch + kw * s.dil_w);
        return L;
    }
    index_t size() const { return rows * pitch; }
    // The slot table as a callable (planes_to_lanes, lanes_to_planes).
    auto slot_of() const { return [t = slot.data()](index_t p) { return t[p]; }; }
    // Lane plane vector that output (oh, ow) reads with tap 0.
    index_t origin(index_t oh, index_t ow, const Conv2dSizes& s) const { return oh * s.stride_h * pitch + ow * s.stride_w; }
};

// Lanes across channels whenever the channels fill at least two vectors (two tasks for two
// threads in the backward) and a lane plane fits in 1 MiB (an L2 here: 112x112 maps do,
// 224x224 ones, measured 1.25-1.7x the row kernels' time, do not). A function of the shape
// only: the thread count never changes the result. (Measurements: docs/cpu-kernels.md.)
template <class T> bool lanes_across_channels(const Conv2dSizes& s) {
    constexpr index_t most = (1024 << 10) / sizeof(V<T>);   // vectors
    const index_t rows = LanePlane<T>::rows_of(s), pitch = LanePlane<T>::pitch_of(s);
    return s.c_in >= 2 * lanes<T>() && rows <= most && pitch <= most && rows * pitch <= most;
}

// Per-channel values (C channels of `per` values each, channel-major: the weights with
// per = M*taps, the bias with per = M) as lane vectors, built once per call:
// table[b*per + j] lane l = values[(b*VL + l)*per + j], 0 past channel C.
template <class T>
AlignedBuffer<V<T>> channel_lanes(const T* values, index_t per, index_t C) {
    constexpr int VL = lanes<T>();
    const index_t blocks = ceil_div(C, VL);
    AlignedBuffer<V<T>> table = aligned_buffer<V<T>>(blocks * per);
    for (index_t b = 0; b < blocks; ++b)
        for (index_t j = 0; j < per; ++j) {
            V<T> v{};
            for (index_t l = 0; l < std::min<index_t>(VL, C - b * VL); ++l) v[l] = values[(b * VL + l) * per + j];
            table[b * per + j] = v;
        }
    return table;
}

// A grid of outputs, each a sum of taps: for i < rows, j < cols,
//   out[i*out_row + j*out_col] (=, or with accumulate +=) init + sum_k wt[k] * in[i*in_row + j*in_col + off[k]],
// the taps k in order. The forward's outputs, and each phase of backward-data's grad_x.
struct LaneGrid {
    index_t rows, cols, out_row, out_col, in_row, in_col;
};

// NT > 0: ntaps == NT, unrolled, the weights held in registers (`out` might alias `wt`).
template <class T, int NT>
void lane_taps(V<T>* out, const V<T>* in, const LaneGrid& g, const index_t* off, const V<T>* wt, int ntaps,
               V<T> init, bool accumulate) {
    V<T> w_reg[NT > 0 ? NT : 1];
    if constexpr (NT > 0)
        for (int k = 0; k < NT; ++k) w_reg[k] = wt[k];
    const V<T>* wk = NT > 0 ? w_reg : wt;
    const int n = NT > 0 ? NT : ntaps;
    for (index_t i = 0; i < g.rows; ++i)
        for (index_t j = 0; j < g.cols; ++j) {
            const V<T>* p = in + i * g.in_row + j * g.in_col;
            V<T>& o = out[i * g.out_row + j * g.out_col];
            V<T> acc = accumulate ? o : init;
#pragma GCC unroll 9
            for (int k = 0; k < n; ++k) acc += wk[k] * p[off[k]];
            o = acc;
        }
}

template <class T>
void lane_taps_any(V<T>* out, const V<T>* in, const LaneGrid& g, const index_t* off, const V<T>* wt, int ntaps,
                   V<T> init, bool accumulate) {
    switch (ntaps) {   // 3x3: 9 taps; its stride-2 phases: 4, 2, 1
        case 9: return lane_taps<T, 9>(out, in, g, off, wt, 9, init, accumulate);
        case 4: return lane_taps<T, 4>(out, in, g, off, wt, 4, init, accumulate);
        case 2: return lane_taps<T, 2>(out, in, g, off, wt, 2, init, accumulate);
        case 1: return lane_taps<T, 1>(out, in, g, off, wt, 1, init, accumulate);
        default: return lane_taps<T, 0>(out, in, g, off, wt, ntaps, init, accumulate);
    }
}

// grad_out planes as a lane plane for backward-data's gathers: grad_out (oh, ow) at
// (oh + top)*pitch + ow + left, zeros around. grad_x (ih, iw), with ih + ph = rh + i*sh and
// iw + pw = rw + j*sw, is the sum over the taps with kh*dh = rh and kw*dw = rw (mod sh, sw) of
//   w[kh, kw] * grad_out[i + (rh - kh*dh)/sh, j + (rw - kw*dw)/sw]:
// per phase (rh, rw) a stride-1 grid of sums of taps (lane_taps), and each grad_x value is
// written once, all its taps added in a register. backward-weight reads grad_out here too.
struct GradPlane {
    index_t top, left, rows, pitch;
    std::vector<index_t> slot;   // grad_out position oh*OW + ow -> (oh + top)*pitch + ow + left
    struct Phase {
        LaneGrid grid;
        index_t out0, in0;        // first grad_x position (dense H x W), first grad_out vector read
        index_t first, count;     // taps: tap[first + k], offset[first + k], k < count
    };
    std::vector<Phase> phases;   // those holding grad_x positions
    std::vector<index_t> tap, offset;

    static GradPlane of(const Conv2dSizes& s) {
        const index_t sh = s.stride_h, sw = s.stride_w;
        GradPlane G;
        G.top = ceil_div((s.kh - 1) * s.dil_h, sh);
        G.left = ceil_div((s.kw - 1) * s.dil_w, sw);
        G.rows = std::max(s.oh, ceil_div(s.pad_h + s.h, sh)) + G.top;
        G.pitch = std::max(s.ow, ceil_div(s.pad_w + s.w, sw)) + G.left;
        for (index_t oh = 0; oh < s.oh; ++oh)
            for (index_t ow = 0; ow < s.ow; ++ow) G.slot.push_back((oh + G.top) * G.pitch + ow + G.left);
        // a phase's first index and count along one axis: rh + i*sh in [pad, pad + size)
        auto span = [](index_t rh, index_t stride, index_t pad, index_t size, index_t& i0, index_t& count) {
            i0 = pad > rh ? ceil_div(pad - rh, stride) : 0;
            count = std::max<index_t>(0, ceil_div(pad + size - rh, stride) - i0);
        };
        for (index_t rh = 0; rh < sh; ++rh)
            for (index_t rw = 0; rw < sw; ++rw) {
                Phase f;
                index_t i0, j0;
                span(rh, sh, s.pad_h, s.h, i0, f.grid.rows);
                span(rw, sw, s.pad_w, s.w, j0, f.grid.cols);
                if (f.grid.rows == 0 || f.grid.cols == 0) continue;
                f.grid.out_row = sh * s.w; f.grid.out_col = sw;
                f.grid.in_row = G.pitch; f.grid.in_col = 1;
                f.out0 = (rh + i0 * sh - s.pad_h) * s.w + rw + j0 * sw - s.pad_w;
                f.in0 = (i0 + G.top) * G.pitch + j0 + G.left;
                f.first = static_cast<index_t>(G.tap.size());
                for (index_t kh = 0; kh < s.kh; ++kh)
                    for (index_t kw = 0; kw < s.kw; ++kw)
                        if ((kh * s.dil_h) % sh == rh && (kw * s.dil_w) % sw == rw) {   // exact divisions below
                            G.tap.push_back(kh * s.kw + kw);
                            G.offset.push_back((rh - kh * s.dil_h) / sh * G.pitch + (rw - kw * s.dil_w) / sw);
                        }
                f.count = static_cast<index_t>(G.tap.size()) - f.first;
                G.phases.push_back(f);
            }
        return G;
    }
    index_t size() const { return rows * pitch; }
    auto slot_of() const { return [t = slot.data()](index_t p) { return t[p]; }; }
};

// acc[t] += sum over the outputs (oh, ow) of rows [oh0, oh1) of
// gy[oh*gy_row + ow] * in[origin(oh, ow) + off[t]], lane by lane.
template <class T, int NT>
void lane_tap_dots(V<T>* __restrict acc_io, const V<T>* gy, index_t gy_row, const V<T>* in, index_t oh0, index_t oh1,
                   const LanePlane<T>& L, const Conv2dSizes& s) {
    const int taps = NT > 0 ? NT : static_cast<int>(s.kh * s.kw);
    const index_t* off = L.tap_offset.data();
    V<T> acc[NT > 0 ? NT : 1];
    if constexpr (NT > 0) {
#pragma GCC unroll 9
        for (int t = 0; t < NT; ++t) acc[t] = acc_io[t];
    }
    for (index_t oh = oh0; oh < oh1; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow) {
            const V<T> g = gy[oh * gy_row + ow];
            const V<T>* p = in + L.origin(oh, ow, s);
            if constexpr (NT > 0) {
#pragma GCC unroll 9
                for (int t = 0; t < NT; ++t) acc[t] += g * p[off[t]];
            } else {
                for (int t = 0; t < taps; ++t) acc_io[t] += g * p[off[t]];
            }
        }
    if constexpr (NT > 0) {
#pragma GCC unroll 9
        for (int t = 0; t < NT; ++t) acc_io[t] = acc[t];
    }
}

}  // namespace depthwise

template <class T>
void depthwise_conv2d_forward_lanes(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    using namespace depthwise;
    constexpr int VL = lanes<T>();
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow, HW = s.h * s.w;
    const index_t blocks = ceil_div(C, VL);
    const LanePlane<T> L = LanePlane<T>::of(s);
    const LaneGrid outputs{s.oh, s.ow, s.ow, 1, s.stride_h * L.pitch, s.stride_w};
    const AlignedBuffer<V<T>> wt = channel_lanes(w, M * taps, C);
    const AlignedBuffer<V<T>> bt = bias ? channel_lanes(bias, M, C) : nullptr;
    std::vector<AlignedBuffer<V<T>>> in, outs;
    for (int t = 0; t < nt; ++t) {
        in.push_back(aligned_buffer<V<T>>(L.size()));
        outs.push_back(aligned_buffer<V<T>>(P));
    }
#pragma omp parallel num_threads(nt)
    {
        V<T>* xl = in[worker()].get();
        V<T>* yl = outs[worker()].get();
        std::fill(xl, xl + L.size(), V<T>{});   // the padding stays zero: tasks write only L.slot
#pragma omp for schedule(static)
        for (index_t task = 0; task < s.n * blocks; ++task) {
            const index_t n = task / blocks, c0 = task % blocks * VL, count = std::min<index_t>(VL, C - c0);
            planes_to_lanes(xl, L.slot_of(), x + (n * C + c0) * HW, HW, count, HW);
            for (index_t m = 0; m < M; ++m) {
                const index_t bm = task % blocks * M + m;   // (block, m)
                lane_taps_any<T>(yl, xl, outputs, L.tap_offset.data(), wt.get() + bm * taps, static_cast<int>(taps),
                                 bias ? bt[bm] : V<T>{}, false);
                lanes_to_planes(out + ((n * C + c0) * M + m) * P, M * P, count, P, yl, SamePosition());
            }
        }
    }
}

// grad_x (when not null, from w) and grad_w (when not null) from grad_out and x.
template <class T>
void depthwise_conv2d_backward_lanes(T* grad_x, T* grad_w, const T* grad_out, const T* x, const T* w,
                                     const Conv2dSizes& s) {
    using namespace depthwise;
    constexpr int VL = lanes<T>();
    constexpr index_t kLaneTerms = 32;   // outputs summed in T per lane before the add into double
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow, HW = s.h * s.w;
    const index_t blocks = ceil_div(C, VL);
    const index_t block_rows = std::max<index_t>(1, kLaneTerms / s.ow);   // output rows per sum in T
    const LanePlane<T> L = LanePlane<T>::of(s);
    const GradPlane G = GradPlane::of(s);
    const AlignedBuffer<V<T>> wt = grad_x ? channel_lanes(w, M * taps, C) : nullptr;
    struct Scratch {
        AlignedBuffer<V<T>> x, gy, gx, phase_wt, part;
        AlignedBuffer<double> sum;
    };
    std::vector<Scratch> scratch;
    for (int t = 0; t < nt; ++t)
        scratch.push_back({aligned_buffer<V<T>>(grad_w ? L.size() : 1), aligned_buffer<V<T>>(G.size()),
                           aligned_buffer<V<T>>(grad_x ? HW : 1), aligned_buffer<V<T>>(taps), aligned_buffer<V<T>>(M * taps),
                           aligned_buffer<double>(M * taps * VL)});
    // With grad_w a task is a channel block over all images in order (its sums stay in one
    // thread); without, a task is one (image, block).
    const index_t tasks = grad_w ? blocks : s.n * blocks;
#pragma omp parallel num_threads(nt)
    {
        Scratch& my = scratch[worker()];
        if (grad_w) std::fill(my.x.get(), my.x.get() + L.size(), V<T>{});   // padding: zero for good
        std::fill(my.gy.get(), my.gy.get() + G.size(), V<T>{});
        const V<T>* gy_at = my.gy.get() + G.top * G.pitch + G.left;   // grad_out (0, 0)
#pragma omp for schedule(dynamic)
        for (index_t task = 0; task < tasks; ++task) {
            const index_t c0 = task % blocks * VL, count = std::min<index_t>(VL, C - c0);
            const index_t n_begin = grad_w ? 0 : task / blocks, n_end = grad_w ? s.n : n_begin + 1;
            double* sum = my.sum.get();
            V<T>* part = my.part.get();
            std::fill(sum, sum + M * taps * VL, 0.0);
            for (index_t n = n_begin; n < n_end; ++n) {
                if (grad_w) planes_to_lanes(my.x.get(), L.slot_of(), x + (n * C + c0) * HW, HW, count, HW);
                for (index_t m = 0; m < M; ++m) {
                    planes_to_lanes(my.gy.get(), G.slot_of(), grad_out + ((n * C + c0) * M + m) * P, M * P, count, P);
                    if (grad_x) {   // m > 0 adds to what m - 1 wrote
                        const V<T>* wm = wt.get() + (task % blocks * M + m) * taps;
                        for (const GradPlane::Phase& f : G.phases) {
                            for (index_t k = 0; k < f.count; ++k) my.phase_wt[k] = wm[G.tap[f.first + k]];
                            lane_taps_any<T>(my.gx.get() + f.out0, my.gy.get() + f.in0, f.grid, &G.offset[f.first],
                                          my.phase_wt.get(), static_cast<int>(f.count), V<T>{}, m > 0);
                        }
                    }
                    if (!grad_w) continue;
                    V<T>* acc = part + m * taps;
                    for (index_t oh = 0; oh < s.oh; oh += block_rows) {
                        std::fill(acc, acc + taps, V<T>{});
                        const index_t oh1 = std::min(s.oh, oh + block_rows);
                        if (taps == 9) lane_tap_dots<T, 9>(acc, gy_at, G.pitch, my.x.get(), oh, oh1, L, s);
                        else lane_tap_dots<T, 0>(acc, gy_at, G.pitch, my.x.get(), oh, oh1, L, s);
                        for (index_t t = 0; t < taps; ++t)
                            for (int l = 0; l < VL; ++l) sum[(m * taps + t) * VL + l] += static_cast<double>(acc[t][l]);
                    }
                }
                if (grad_x) lanes_to_planes(grad_x + (n * C + c0) * HW, HW, count, HW, my.gx.get(), SamePosition());
            }
            if (grad_w)
                for (index_t l = 0; l < count; ++l)
                    for (index_t j = 0; j < M * taps; ++j)   // j = m*taps + t
                        grad_w[(c0 + l) * M * taps + j] = static_cast<T>(sum[j * VL + l]);
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
