// convkit/src/pool2d_impl.hpp -- windowed max pooling (forward) and avg pooling (forward,
// backward) for one instruction set (pool2d_isa.cpp, built once per CONVKIT_ISA, includes this
// file). Max-pool backward and adaptive pooling are portable: pool2d.cpp.
//
// Phase layout (pool2d_phase.hpp): each task's padded input rows are copied into a
// per-thread buffer, de-interleaved by stride, so that every window tap is ONE contiguous
// run over all outputs of the task (numbered j = oh*len + ow); the forward kernels reduce
// those runs in register-sized blocks of outputs that stay in registers while all taps
// stream past, then compact the rows of len into rows of OW. Small planes are stacked
// into one tall image per task (ForwardTasks), so they too get long runs.
//
// Max pooling follows PyTorch's CPU kernel: over the window's input elements in row-major
// order, an element replaces the running max when it is greater or NaN. So the first
// maximum wins ties, NaN propagates, and of several NaNs the last is reported. Padding
// (-inf) never replaces anything. The winning tap number kh*KW + kw is tracked in an
// integer lane as wide as T and turned into the flat offset ih*W + iw at the end; when
// nothing replaced the start value (all -inf) the answer is the first tap inside the
// input, as in PyTorch (for a window wholly in the padding, possible only with dilation,
// that offset lies outside the plane, also as in PyTorch).
//
// Writes: out, indices and grad_x are fully OVERWRITTEN, never accumulated into.
// Determinism: forward outputs are independent of each other; the backward kernel gives
// each plane of grad_x to one thread, which accumulates into it in a fixed order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#include "pool2d_phase.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// One vector register of T and the integer lanes of the same width (GCC/Clang vector
// extensions, so the register blocks below are vectorised for certain, for every ISA).
#if defined(__AVX512F__)
constexpr int kPoolVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kPoolVecBytes = 32;
#else
constexpr int kPoolVecBytes = 16;
#endif
template <class T> struct Simd;
template <> struct Simd<float> {
    typedef float vec __attribute__((vector_size(kPoolVecBytes)));
    typedef std::int32_t lanes __attribute__((vector_size(kPoolVecBytes)));
};
template <> struct Simd<double> {
    typedef double vec __attribute__((vector_size(kPoolVecBytes)));
    typedef std::int64_t lanes __attribute__((vector_size(kPoolVecBytes)));
};
template <class V, class T> inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <class V, class T> inline void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }

// Outputs per register block: two vectors.
template <class T> constexpr index_t block_lanes() { return 2 * kPoolVecBytes / sizeof(T); }

// Padded input rows read by n_oh consecutive output rows.
inline index_t rows_read(const Pool2dSizes& s, index_t n_oh) { return (n_oh - 1) * s.stride_h + (s.kh - 1) * s.dil_h + 1; }

// First tap along one axis whose input position start + k*dil is >= 0.
inline index_t first_tap(index_t start, index_t dil) { return start >= 0 ? 0 : ceil_div(-start, dil); }

// Buffer position of every window tap, in row-major window order.
inline std::vector<index_t> tap_positions(const Pool2dSizes& s, const PhaseLayout& p) {
    std::vector<index_t> at(s.kh * s.kw);
    for (index_t t = 0; t < s.kh * s.kw; ++t) at[t] = p.at(t / s.kw * s.dil_h, t % s.kw * s.dil_w);
    return at;
}

// PyTorch's rule: v replaces the running max m when greater or NaN.
template <class T> inline bool replaces(T v, T m) { return v > m || v != v; }
template <class V> inline auto replaces_lanes(V v, V m) { return (v > m) | (v != v); }

// One register block of B outputs: the max over all taps (values at buf + tap_at[t]).
template <class T, index_t B>
inline void max_block(T* m_out, const T* buf, const index_t* tap_at, index_t taps) {
    using V = typename Simd<T>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T), NV = B / L;
    V m[NV];
    for (index_t k = 0; k < NV; ++k) m[k] = V{} - std::numeric_limits<T>::infinity();
    for (index_t t = 0; t < taps; ++t)
        for (index_t k = 0; k < NV; ++k) {
            const V v = load<V>(buf + tap_at[t] + k * L);
            m[k] = replaces_lanes(v, m[k]) ? v : m[k];
        }
    for (index_t k = 0; k < NV; ++k) store(m_out + k * L, m[k]);
}

// The same, also tracking the winning tap number (-1: nothing replaced the start value).
// Tap lanes as wide as T blend with the same mask; other widths take a scalar loop.
template <class T, class Tap, index_t B>
inline void max_block(T* m_out, Tap* t_out, const T* buf, const index_t* tap_at, index_t taps) {
    if constexpr (sizeof(Tap) == sizeof(T)) {
        using V = typename Simd<T>::vec;
        using I = typename Simd<T>::lanes;
        constexpr index_t L = sizeof(V) / sizeof(T), NV = B / L;
        V m[NV];
        I win[NV];
        for (index_t k = 0; k < NV; ++k) m[k] = V{} - std::numeric_limits<T>::infinity(), win[k] = I{} - 1;
        for (index_t t = 0; t < taps; ++t)
            for (index_t k = 0; k < NV; ++k) {
                const V v = load<V>(buf + tap_at[t] + k * L);
                const auto take = replaces_lanes(v, m[k]);
                m[k] = take ? v : m[k];
                win[k] = take ? I{} + Tap(t) : win[k];
            }
        for (index_t k = 0; k < NV; ++k) store(m_out + k * L, m[k]), store(t_out + k * L, win[k]);
    } else {
        for (index_t i = 0; i < B; ++i) {
            T m = -std::numeric_limits<T>::infinity();
            Tap win = -1;
            for (index_t t = 0; t < taps; ++t)
                if (replaces(buf[tap_at[t] + i], m)) m = buf[tap_at[t] + i], win = Tap(t);
            m_out[i] = m, t_out[i] = win;
        }
    }
}

template <class T, index_t B>
inline void sum_block(T* s_out, const T* buf, const index_t* tap_at, index_t taps) {
    using V = typename Simd<T>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T), NV = B / L;
    V acc[NV] = {};
    for (index_t t = 0; t < taps; ++t)
        for (index_t k = 0; k < NV; ++k) acc[k] += load<V>(buf + tap_at[t] + k * L);
    for (index_t k = 0; k < NV; ++k) store(s_out + k * L, acc[k]);
}

template <class T>
void add_run(T* __restrict acc, const T* __restrict v, index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] += v[i];
}

// How the forward pass splits into tasks. Each task stacks `group` planes into one tall
// image, every plane's padded rows rounded up to plane_rows, a multiple of sh, so that plane g
// owns the tall output rows [g*plane_rows/sh, ...) (the extra rows between planes are
// computed and dropped); small planes thus share long runs. With fewer planes than
// 4 x threads, a task is instead a block of `rows` output rows of one plane. Huge planes
// are cut into blocks of rows too, so that a thread's phase buffer stays a few MiB instead
// of a share of the plane (a 2**31-element plane would otherwise need GiBs of copies).
struct ForwardTasks {
    index_t rows, blocks;          // output rows per task, tasks per plane
    index_t group, plane_rows;     // planes per task, buffer rows per plane
    index_t count;                 // tasks

    ForwardTasks(const Pool2dSizes& s, int nt, index_t width) {
        constexpr index_t kGroupValues = 8192;        // phase buffer of a group: about L1-sized
        constexpr index_t kMaxBufferValues = 1 << 20; // phase buffer of one task: at most ~ this
        const index_t want = 4 * static_cast<index_t>(nt);
        rows = s.planes >= want ? s.oh : ceil_div(s.oh, std::min(s.oh, ceil_div(want, s.planes)));
        const index_t rows_fit = (kMaxBufferValues / width - (s.kh - 1) * s.dil_h - 1) / s.stride_h + 1;
        rows = std::min(rows, std::max<index_t>(1, rows_fit));
        blocks = ceil_div(s.oh, rows);
        plane_rows = round_up(rows_read(s, rows), s.stride_h);
        group = blocks > 1 ? 1 : std::max<index_t>(1, std::min(kGroupValues / (plane_rows * width), s.planes / want));
        count = ceil_div(s.planes, group) * blocks;
    }

    // Outputs j = oh*len + ow of one task's tall image.
    index_t tall_outputs(const Pool2dSizes& s) const {
        return group * plane_rows / s.stride_h * ceil_div(padded_width(s), s.stride_w);
    }
};

// Runs the forward tasks: stores a task's padded input rows in a per-thread phase buffer,
// then calls
//     reduce(result + j, buf + j, tap_at, j, thread)   for the tall outputs j = oh*len + ow
//                                                      in blocks of B (B - 1 past the end: dropped),
//     emit(plane, oh0, n_oh, result, j0, len, thread)  per plane, its outputs starting at j0,
//                                                      to compact rows of len into rows of OW.
template <class T, class Reduce, class Emit>
void forward_tasks(const T* x, const Pool2dSizes& s, const ForwardTasks& tasks, int nt, T fill, Reduce reduce,
                   Emit emit) {
    constexpr index_t B = block_lanes<T>();
    const index_t width = padded_width(s);
    const PhaseLayout p(s, tasks.group * tasks.plane_rows, width);
    const PhaseRuns runs(p, s.w);
    const index_t tall_rows = tasks.plane_rows / s.stride_h;   // output rows per plane in the tall image
    const std::vector<index_t> tap_at = tap_positions(s, p);
    std::vector<AlignedBuffer<T>> bufs, results;
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(p.size + B));      // + B: the last block reads past the end
        std::fill_n(bufs.back().get(), p.size + B, fill);
        results.push_back(aligned_buffer<T>(round_up(tasks.tall_outputs(s), B)));
    }
#pragma omp parallel num_threads(nt)
    {
        const int thread = thread_index();
        T* buf = bufs[thread].get();
        T* result = results[thread].get();
#pragma omp for schedule(dynamic)
        for (index_t task = 0; task < tasks.count; ++task) {
            const index_t p0 = task / tasks.blocks * tasks.group, planes = std::min(tasks.group, s.planes - p0);
            const index_t oh0 = task % tasks.blocks * tasks.rows, n_oh = std::min(tasks.rows, s.oh - oh0);
            for (index_t g = 0; g < planes; ++g)
                store_rows(buf, g * tasks.plane_rows, x + (p0 + g) * s.h * s.w, oh0 * s.stride_h - s.pad_h,
                           rows_read(s, n_oh), s, p, runs, fill);
            const index_t n = ((planes - 1) * tall_rows + n_oh - 1) * p.len + s.ow;
            for (index_t j = 0; j < n; j += B) reduce(result + j, buf + j, tap_at.data(), j, thread);
            for (index_t g = 0; g < planes; ++g) emit(p0 + g, oh0, n_oh, result, g * tall_rows * p.len, p.len, thread);
        }
    }
}

// Tap is a lane-wide integer for the winning tap number (int32 for float, int64 for double).
template <class T, class Tap>
void max_pool2d_taps(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out, indices (planes, OH, OW)
    constexpr index_t B = block_lanes<T>();
    const index_t taps = s.kh * s.kw;
    std::vector<index_t> tap_offset(taps);        // flat offset of tap t from the window origin
    for (index_t t = 0; t < taps; ++t) tap_offset[t] = t / s.kw * s.dil_h * s.w + t % s.kw * s.dil_w;
    std::vector<index_t> first_kw(s.ow);          // first window column inside the input, per ow
    for (index_t ow = 0; ow < s.ow; ++ow) first_kw[ow] = first_tap(ow * s.stride_w - s.pad_w, s.dil_w);
    const int nt = num_threads();
    const ForwardTasks tasks(s, nt, padded_width(s));
    const index_t flat = round_up(tasks.tall_outputs(s), B);   // the size of forward_tasks' results
    std::vector<AlignedBuffer<Tap>> winners;
    for (int t = 0; t < nt; ++t) winners.push_back(aligned_buffer<Tap>(indices ? flat : 1));

    auto reduce = [&](T* m, const T* buf, const index_t* tap_at, index_t j, int thread) {
        if (indices) max_block<T, Tap, B>(m, winners[thread].get() + j, buf, tap_at, taps);
        else max_block<T, B>(m, buf, tap_at, taps);
    };
    auto emit = [&](index_t plane, index_t oh0, index_t n_oh, const T* m, index_t j0, index_t len, int thread) {
        const Tap* win = winners[thread].get() + j0;
        m += j0;
        for (index_t r = 0; r < n_oh; ++r) {
            const index_t oh = oh0 + r, o = (plane * s.oh + oh) * s.ow;
            std::copy(m + r * len, m + r * len + s.ow, out + o);
            if (!indices) continue;
            const index_t ih0 = oh * s.stride_h - s.pad_h, first = first_tap(ih0, s.dil_h) * s.kw;
            const index_t origin = ih0 * s.w - s.pad_w;
            for (index_t ow = 0; ow < s.ow; ++ow) {
                const Tap t = win[r * len + ow];
                indices[o + ow] = origin + ow * s.stride_w + tap_offset[t >= 0 ? t : first + first_kw[ow]];
            }
        }
    };
    forward_tasks(x, s, tasks, nt, -std::numeric_limits<T>::infinity(), reduce, emit);
}

template <class T>
void max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // int32 tap numbers keep the float lanes and the tap lanes the same width
    if (sizeof(T) == 4 && s.kh * s.kw <= std::numeric_limits<std::int32_t>::max())
        max_pool2d_taps<T, std::int32_t>(out, indices, x, s);
    else
        max_pool2d_taps<T, std::int64_t>(out, indices, x, s);
}

// PyTorch's avg-pool divisor, one axis: the window [start, start + k) clipped to the padded
// input [-pad, n + pad) when padding counts, else to the input [0, n).
inline index_t pool_extent(index_t start, index_t k, index_t n, index_t pad, bool count_pad) {
    return count_pad ? std::min(start + k, n + pad) - start
                     : std::min(start + k, n) - std::max<index_t>(start, 0);
}

// Divisor of every output column (or 1 with divisor_override, applied per row instead).
inline std::vector<index_t> column_divisors(const Pool2dSizes& s) {
    std::vector<index_t> d(s.ow, 1);
    if (!s.divisor_override)
        for (index_t ow = 0; ow < s.ow; ++ow)
            d[ow] = pool_extent(ow * s.stride_w - s.pad_w, s.kw, s.w, s.pad_w, s.count_include_pad);
    return d;
}

inline index_t row_divisor(const Pool2dSizes& s, index_t oh) {
    return s.divisor_override ? s.divisor_override
                              : pool_extent(oh * s.stride_h - s.pad_h, s.kh, s.h, s.pad_h, s.count_include_pad);
}

template <class T>
void avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW): window sums (in T, as PyTorch) / divisor
    constexpr index_t B = block_lanes<T>();
    const index_t taps = s.kh * s.kw;
    const std::vector<index_t> col_div = column_divisors(s);
    auto reduce = [&](T* acc, const T* buf, const index_t* tap_at, index_t, int) {
        sum_block<T, B>(acc, buf, tap_at, taps);
    };
    auto emit = [&](index_t plane, index_t oh0, index_t n_oh, const T* acc, index_t j0, index_t len, int) {
        acc += j0;
        for (index_t r = 0; r < n_oh; ++r) {
            const index_t div = row_divisor(s, oh0 + r);
            T* y = out + (plane * s.oh + oh0 + r) * s.ow;
            for (index_t ow = 0; ow < s.ow; ++ow) y[ow] = acc[r * len + ow] / T(div * col_div[ow]);
        }
    };
    const int nt = num_threads();
    forward_tasks(x, s, ForwardTasks(s, nt, padded_width(s)), nt, T(0), reduce, emit);
}

template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s) {
    // grad_out (planes, OH, OW) -> grad_x (planes, H, W): each output's share, grad/divisor,
    // is added to every input of its window. Per plane: the shares laid out as outputs
    // j = oh*len + ow (0 in the extra columns), added tap by tap into a zeroed phase buffer
    // (the forward's reads, reversed), which is then copied out without its padding.
    const int nt = num_threads();
    const PhaseLayout p(s, std::max(rows_read(s, s.oh), s.pad_h + s.h), padded_width(s));
    const std::vector<index_t> tap_at = tap_positions(s, p), col_div = column_divisors(s);
    const PhaseRuns runs(p, s.w);
    const index_t n = (s.oh - 1) * p.len + s.ow;
    std::vector<AlignedBuffer<T>> bufs, shares;
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(p.size));
        shares.push_back(aligned_buffer<T>(s.oh * p.len));
        std::fill_n(shares.back().get(), s.oh * p.len, T(0));
    }
#pragma omp parallel num_threads(nt)
    {
        T* buf = bufs[thread_index()].get();
        T* share = shares[thread_index()].get();
#pragma omp for schedule(dynamic)
        for (index_t plane = 0; plane < s.planes; ++plane) {
            for (index_t oh = 0; oh < s.oh; ++oh) {
                const T* gy = grad_out + (plane * s.oh + oh) * s.ow;
                const index_t div = row_divisor(s, oh);
                for (index_t ow = 0; ow < s.ow; ++ow) share[oh * p.len + ow] = gy[ow] / T(div * col_div[ow]);
            }
            std::fill_n(buf, p.size, T(0));
            for (const index_t at : tap_at) add_run(buf + at, share, n);
            load_plane(grad_x + plane * s.h * s.w, buf, s, p, runs);
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
