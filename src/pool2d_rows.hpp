// convkit/src/pool2d_rows.hpp -- the separable forward pass of windowed max and avg pooling
// (included by pool2d_impl.hpp, compiled once per instruction set).
//
// A KH x KW window reduces as KW taps along each input row, then KH taps down the column
// of those row results: KH + KW steps per output instead of KH*KW, and every step is a
// full-width vector over contiguous values:
//   horizontal  each input row the task needs is copied once into a one-row phase buffer,
//               padded (-inf for max, 0 for avg) and de-interleaved by stride_w
//               (pool2d_phase.hpp with one row), so tap kw of outputs ow = j.. is the
//               contiguous run at tap_at[kw] + j: one "row result" per (input row, ow);
//               max without indices or padding reads the rows in place instead;
//   vertical    output (oh, ow) reduces the row results of its window's input rows; rows in
//               the padding are skipped (their taps are all padding), so no bounds tests.
//
// Max semantics are exactly those of the row-major scan of PyTorch's kernel (an element
// replaces the running max when greater or NaN): the row pass scans kw in order and the
// column pass scans kh in order with the same rule, and nesting the two scans picks the
// same element -- the last NaN (last row holding a NaN, its last NaN) if there is one, else
// the first maximum in row-major order; -inf (padding or input) never replaces the start
// value. The winner's input column rides along in an integer lane as wide as T, its row
// in another; nothing replaced (all -inf): the first window element inside the input, as
// in PyTorch. Avg keeps the padded phase rows themselves and adds all KH*KW taps in
// row-major window order (in T), the order of PyTorch's kernel and of the GPU backend, so
// the sums agree bit for bit.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>
#include "gemm.hpp"   // kVecBytes
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include "pool2d_phase.hpp"

namespace convkit {
namespace CONVKIT_ISA {

// One vector register of T (kVecBytes: the instruction set's vector width, gemm.hpp) and the
// integer lanes of the same width (GCC/Clang vector extensions, so the loops below are
// vectorised for certain, for every ISA). The integer lanes that follow a comparison's mask
// are as wide as T where they can be (int32 for float).
template <class T> struct Simd;
template <> struct Simd<float> {
    typedef float vec __attribute__((vector_size(kVecBytes)));
};
template <> struct Simd<double> {
    typedef double vec __attribute__((vector_size(kVecBytes)));
};
// One integer of type Tap per lane of Simd<T>::vec (two registers for float with int64).
template <class T, class Tap> struct TapLanes {
    typedef Tap vec __attribute__((vector_size(kVecBytes / sizeof(T) * sizeof(Tap))));
};
// The integer as wide as T (the lanes of a comparison's mask).
template <class T> using SameWidthInt = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
template <class V, class T> inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <class V, class T> inline void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }

// max, max_indices: PyTorch's rule on every element; max_no_nan, max_indices_no_nan: the
// same results for inputs without NaN, comparing with > alone (for values: one max
// instruction per tap, since a > m ? a : m is exactly "greater replaces", first max wins);
// a task whose rows hold a NaN (found while they are read) reruns with the exact kind.
enum class PoolKind { max, max_no_nan, max_indices, max_indices_no_nan, sum };
constexpr bool has_indices(PoolKind k) { return k == PoolKind::max_indices || k == PoolKind::max_indices_no_nan; }
constexpr bool no_nan(PoolKind k) { return k == PoolKind::max_no_nan || k == PoolKind::max_indices_no_nan; }
// The kind that handles any input, NaN included.
constexpr PoolKind exact(PoolKind k) {
    return k == PoolKind::max_no_nan ? PoolKind::max : k == PoolKind::max_indices_no_nan ? PoolKind::max_indices : k;
}

// PyTorch's rule: v replaces the running max m when greater or NaN (no_nan kinds: greater,
// which compiles to one max instruction).
template <PoolKind K, class V> inline auto replaces(V v, V m) {
    if constexpr (no_nan(K)) return v > m;
    else return (v > m) | (v != v);
}

// The max of `taps` vectors at at, at + step, ... scanned in that order with "greater
// replaces" (one max instruction each; the no_nan kinds): along a row (step dil_w), down the
// row results (step dil_h * row stride) or along a short row (pool2d_short_rows.hpp).
template <class V, class T>
inline V window_max(const T* at, index_t taps, index_t step) {
    V m = load<V>(at);
    for (index_t k = 1; k < taps; ++k) {
        const V v = load<V>(at + k * step);
        m = v > m ? v : m;
    }
    return m;
}

// Padded input rows read by n_oh consecutive output rows.
inline index_t rows_read(const Pool2dSizes& s, index_t n_oh) { return windows_span(n_oh, s.stride_h, s.kh, s.dil_h); }

// First tap along one axis whose input position start + k*dil is >= 0.
inline index_t first_tap(index_t start, index_t dil) { return start >= 0 ? 0 : ceil_div(-start, dil); }


// Input values a row pass with stride_w S in {1, 2} reads from a row's start: the last
// block's lanes past OW, and its taps (a whole vector past the block when they are lane
// shifts, block_max_shifted).
inline index_t row_reach(const Pool2dSizes& s, index_t owp, int S, index_t lanes) {
    return S * owp + std::max((s.kw - 1) * s.dil_w, lanes);
}

// The geometry of one call: how a task's input rows are stored, padded (`src_stride`
// values each), the row stride of the max row results (OW rounded up to whole vectors)
// and how the output rows split into tasks (a task is a block of output rows of one plane:
// whole planes when there are at least 4 per thread, and blocks small enough that its rows
// stay within a few MiB). stride_w S in {1, 2}: a plain padded copy of each row (tap kw of
// outputs j.. reads at j*S + kw*dil_w, S = 2 de-interleaving in registers); other strides:
// the row de-interleaved by stride_w into a phase row (pool2d_phase.hpp with one row; tap kw
// reads at tap_at[kw] + j).
struct RowPlan {
    Pool2dSizes one_row;      // s with stride_h = 1: PhaseLayout of a single row
    PhaseLayout p;
    PhaseRuns runs;
    std::vector<index_t> tap_at;
    index_t owp;              // row results per row: OW rounded up to whole vectors
    index_t src_stride;       // values per stored input row; the last block's taps read past OW
    index_t rows, blocks, count;
    index_t interior_lo, interior_hi;   // the output rows whose KH window rows all lie in the input
    index_t spill_rows;                 // a task's last rows, whose whole-vector stores (owp) pass its end

    RowPlan(const Pool2dSizes& s, int nt, index_t lanes, int S)
        : one_row(with_unit_stride_h(s)), p(one_row, 1, padded_width(s)), runs(p, s.w), tap_at(s.kw),
          owp(round_up(s.ow, lanes)),
          src_stride(S ? round_up(std::max(s.pad_w + s.w, row_reach(s, owp, S, lanes)), lanes)
                       : round_up(p.size + owp + lanes, lanes)) {
        for (index_t kw = 0; kw < s.kw; ++kw) tap_at[kw] = p.at(0, kw * s.dil_w);
        constexpr index_t kMaxRowValues = 1 << 18;
        const index_t want = 4 * static_cast<index_t>(nt);
        rows = s.planes >= want ? s.oh : ceil_div(s.oh, std::min(s.oh, ceil_div(want, s.planes)));
        const index_t rows_fit = (kMaxRowValues / (src_stride + owp) - (s.kh - 1) * s.dil_h - 1) / s.stride_h + 1;
        rows = std::min(rows, std::max<index_t>(1, rows_fit));
        blocks = ceil_div(s.oh, rows);
        count = s.planes * blocks;
        const index_t room = s.h - 1 + s.pad_h - (s.kh - 1) * s.dil_h;   // for the window's first row
        interior_lo = std::min(s.oh, ceil_div(s.pad_h, s.stride_h));
        interior_hi = room < 0 ? 0 : std::min(s.oh, room / s.stride_h + 1);
        spill_rows = ceil_div(owp - s.ow, s.ow);
    }
    static Pool2dSizes with_unit_stride_h(Pool2dSizes s) { s.stride_h = 1; return s; }
};

// Per-thread scratch: the task's stored input rows, the max row results (values and, for
// indices, columns), and one output row of values / winning rows / winning columns.
template <class T, class Tap>
struct RowScratch {
    AlignedBuffer<T> src, hval, yval;
    AlignedBuffer<Tap> hcol, yrow, ycol;
};

// Lanes of the pair (a, b) by compile-time index, a's lanes first: pick_lanes<0, 2, ...>.
template <std::size_t... idx, class V>
inline V pick_lanes(V a, V b) {
#if defined(__clang__)
    return __builtin_shufflevector(a, b, idx...);
#else
    using T = typename std::remove_reference<decltype(a[0])>::type;
    return __builtin_shuffle(a, b, typename TapLanes<T, SameWidthInt<T>>::vec{idx...});
#endif
}

// The even lanes of a then of b: a[0], a[2], ..., b[0], b[2], ... (de-interleaves stride 2).
template <class V, std::size_t... i>
inline V even_lanes(V a, V b, std::index_sequence<i...>) { return pick_lanes<(2 * i)...>(a, b); }
template <class V>
inline V even_lanes(V a, V b) {
#if defined(__AVX2__) && !defined(__AVX512F__)
    // 8 floats: shufps + permpd (2 instructions; GCC's own choice for the shuffle takes 3)
    if constexpr (std::is_same<V, Simd<float>::vec>::value)
        return (V)_mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps((__m256)a, (__m256)b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
#endif
    return even_lanes(a, b, std::make_index_sequence<sizeof(V) / sizeof(a[0])>{});
}

// Every third lane of a, b, c (a first): a[0], a[3], ..., then b's and c's (stride 3: two
// two-source picks and one that merges them).
template <class V, std::size_t... i>
inline V every_third_lane(V a, V b, V c, std::index_sequence<i...>) {
    constexpr std::size_t L = sizeof...(i);
    const V from_ab = pick_lanes<(3 * i < 2 * L ? 3 * i : 0)...>(a, b);
    const V from_c = pick_lanes<(3 * i < 2 * L ? 0 : 3 * i - 2 * L)...>(c, c);
    return pick_lanes<(3 * i < 2 * L ? i : L + i)...>(from_ab, from_c);
}
template <class V>
inline V every_third_lane(V a, V b, V c) {
    return every_third_lane(a, b, c, std::make_index_sequence<sizeof(V) / sizeof(a[0])>{});
}

// a[k], ..., a[L-1], b[0], ..., b[k-1]: the lanes k places along (one valignd / palignr).
template <int k, class V, std::size_t... i>
inline V lanes_from(V a, V b, std::index_sequence<i...>) { return pick_lanes<(k + i)...>(a, b); }
template <int k, class V>
inline V lanes_from(V a, V b) { return lanes_from<k>(a, b, std::make_index_sequence<sizeof(V) / sizeof(a[0])>{}); }

// The window max at each of the L positions of v (taps +0, .., +K-1 scanned in order with
// "greater replaces", one max each), the lanes past v taken from next: the sliding taps as
// lane shifts of two loads instead of K unaligned loads (which made max pooling load-bound).
template <int K, class V>
inline V window_max_shifted(V v, V next) {
    static_assert(K >= 1 && K <= 3, "taps 2 and 3 are written out");
    V m = v;
    if constexpr (K >= 2) { const V t = lanes_from<1>(v, next); m = t > m ? t : m; }
    if constexpr (K >= 3) { const V t = lanes_from<2>(v, next); m = t > m ? t : m; }
    return m;
}

// The K-tap window max (dilation 1) of the L outputs of a block at `at` in stride S = 1 or 2:
// S = 2 reduces at every input position of 2L and keeps the even lanes.
template <int S, int K, class V, class T>
inline V block_max_shifted(V v0, const T* at) {   // v0: the block's first vector (at[0, L))
    constexpr index_t L = sizeof(V) / sizeof(T);
    const V v1 = load<V>(at + L);
    if constexpr (S == 1) return window_max_shifted<K>(v0, v1);
    else return even_lanes(window_max_shifted<K>(v0, v1), window_max_shifted<K>(v1, load<V>(at + 2 * L)));
}

// The L inputs of one tap for the L outputs of a block when stride_w = S is 1 or 2, read
// straight from the input row: at[i*S], i < L (S = 2: the even lanes of two loads).
template <int S, class V, class T>
inline V tap_lanes(const T* at) {
    constexpr index_t L = sizeof(V) / sizeof(T);
    if constexpr (S == 1) return load<V>(at);
    else return even_lanes(load<V>(at), load<V>(at + L));
}

// dst[0, n) = src[0, n), n < 2*C: two overlapping copies of C values, C the largest power
// of two <= n (fixed-size copies compile to plain moves).
template <index_t C, class T>
inline void copy_under(T* __restrict dst, const T* __restrict src, index_t n) {
    if (n >= C) {
        std::memcpy(dst, src, C * sizeof(T));
        std::memcpy(dst + n - C, src + n - C, C * sizeof(T));
    } else if constexpr (C > 1) {
        copy_under<C / 2>(dst, src, n);
    }
}

// dst[0, n) = src[0, n) for short rows, inline (a memmove call per short row costs more
// than the copy): whole vectors, the last one overlapping. With `probe`, the values are also
// added into it, so that a NaN among them makes it NaN (so can inf - inf: a false alarm).
template <class T, class V = typename Simd<T>::vec>
inline void copy_short(T* __restrict dst, const T* __restrict src, index_t n, V* probe = nullptr) {
    constexpr index_t L = sizeof(V) / sizeof(T);
    if (n < L) {
        if (probe) {   // four sums: one chain of n dependent adds was most of a 13-wide row's time
            T part[4] = {};
            for (index_t i = 0; i < n; ++i) part[i % 4] += src[i];
            (*probe)[0] += (part[0] + part[1]) + (part[2] + part[3]);
        }
        return copy_under<L / 2>(dst, src, n);
    }
    V sum{};
    for (index_t i = 0; i + L <= n; i += L) {
        const V v = load<V>(src + i);
        store(dst + i, v);
        if (probe) sum += v;
        asm volatile("" ::: "memory");   // keeps GCC from turning the loop back into a memmove call
    }
    const V last = load<V>(src + n - L);
    store(dst + n - L, last);
    if (probe) *probe += sum + last;
}

// dst[0, n) = src[0, n) out of a row of whole vectors just stored at src (L-aligned): no
// load straddles two of those stores (such a load waits until both have left the store
// buffer), so the last n % L values go as two overlapping power-of-two copies.
template <class T, class V = typename Simd<T>::vec>
inline void copy_stored(T* __restrict dst, const T* __restrict src, index_t n) {
    constexpr index_t L = sizeof(V) / sizeof(T);
    index_t i = 0;
    for (; i + L <= n; i += L) {
        store(dst + i, load<V>(src + i));
        asm volatile("" ::: "memory");   // keeps GCC from turning the loop into a memmove call
    }
    copy_under<L / 2>(dst + i, src + i, n - i);
}

// Stores input row `src` (W values) as buffer row d (padding: the fill written once at
// allocation), adding its values into `probe` when given (stride_w 1 or 2 only).
template <int S, class T, class V>
inline void store_src_row(T* d, const T* src, const Pool2dSizes& s, const RowPlan& r, T fill, V* probe) {
    if constexpr (S == 0) store_rows(d, 0, src, 0, 1, r.one_row, r.p, r.runs, fill);
    else copy_short(d + s.pad_w, src, s.w, probe);
}

// Tap kw of the L outputs j.. of a stored row.
template <int S, class V, class T>
inline V tap(const T* row, index_t j, index_t kw, const Pool2dSizes& s, const RowPlan& r) {
    if constexpr (S == 0) return load<V>(row + r.tap_at[kw] + j);
    else return tap_lanes<S, V>(row + j * S + kw * s.dil_w);
}

// Max row results of one stored row: hv[ow] (and hc[ow], the winning input column or -1)
// for ow in [0, owp) (past OW: dropped later). N: the window size KH = KW when it is known
// at compile time (the tap loops unroll), else 0.
template <PoolKind K, int S, int N, class T, class Tap>
inline void row_pass(T* __restrict hv, Tap* __restrict hc, const T* row, const Pool2dSizes& s, const RowPlan& r,
                     T fill) {
    using V = typename Simd<T>::vec;
    using I = typename TapLanes<T, Tap>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const index_t kw_n = N ? N : s.kw;
    if constexpr (K == PoolKind::max_no_nan && N != 0) {
        if (s.dil_w == 1) {
            for (index_t j = 0; j < r.owp; j += L) store(hv + j, block_max_shifted<S, N>(load<V>(row + S * j), row + S * j));
            return;
        }
    }
    if constexpr (K == PoolKind::max_no_nan && S == 2) {
        // The window max at every input position of 2L (sliding: one max per tap), then its
        // even lanes: fewer shuffles than de-interleaving every tap.
        for (index_t j = 0; j < r.owp; j += L)
            store(hv + j, even_lanes(window_max<V>(row + 2 * j, kw_n, s.dil_w),
                                     window_max<V>(row + 2 * j + L, kw_n, s.dil_w)));
        return;
    }
    I col0;   // input column of tap 0 for the lanes of block 0
    for (index_t i = 0; i < L; ++i) col0[i] = Tap(i * s.stride_w - s.pad_w);
    for (index_t j = 0; j < r.owp; j += L) {
        V m = V{} + fill;
        I col = I{} - 1;
        const I col_j = col0 + Tap(j * s.stride_w);
        for (index_t kw = 0; kw < kw_n; ++kw) {
            const V v = tap<S, V>(row, j, kw, s, r);
            const auto take = replaces<K>(v, m);
            m = take ? v : m;
            if constexpr (has_indices(K))
                col = __builtin_convertvector(take, I) ? col_j + Tap(kw * s.dil_w) : col;
        }
        store(hv + j, m);
        if constexpr (has_indices(K)) store(hc + j, col);
    }
}

// Max row results of n_rows input rows read in place (max_no_nan; every window inside its
// padded row, padding only with 2x2 / 3x3 windows without dilation): hv[r * owp + ow] for ow
// in [0, owp), blocks of L outputs. The lanes of the last block past OW read on past the row
// (the caller keeps those reads inside x) and are dropped later, so the block needs no
// special case; the first block's lanes in the left padding read the end of the row before
// and are replaced by -inf. Every value a kept output reads is added into `probe`: the
// values under tap 0 of each block (a contiguous run of S*owp per row from -pad_w) and,
// when that run ends before the row does, every tap of the last block.
template <int S, int N, class T, class V>
inline void rows_max_in_place(T* __restrict hv, index_t owp, const T* row, index_t n_rows, const Pool2dSizes& s,
                              V& probe, const T* next_plane) {
    constexpr index_t L = sizeof(V) / sizeof(T);
    using Lane = SameWidthInt<T>;
    using I = typename TapLanes<T, Lane>::vec;
    const index_t kw_n = N ? N : s.kw, d = s.dil_w, w = s.w, last = owp - L;
    const bool tail = S * owp - s.pad_w < w;
    I lane{};
    for (index_t i = 0; i < L; ++i) lane[i] = Lane(i);
    const auto in_pad = lane < I{} + Lane(s.pad_w);
    const V minus_inf = V{} - std::numeric_limits<T>::infinity();
    for (index_t r = 0; r < n_rows; ++r, row += w, hv += owp) {
        const T* prow = row - s.pad_w;   // the padded row's start
        if (next_plane) prefetch(next_plane + r * w, w);
        for (index_t j = 0; j <= last; j += L) {
            const T* at = prow + S * j;
            const V v0 = load<V>(at);
            probe += S == 1 ? v0 : v0 + load<V>(at + L);
            if (N != 0 && d == 1)
                store(hv + j, block_max_shifted<S, N ? N : 1>(j == 0 ? (in_pad ? minus_inf : v0) : v0, at));
            else if constexpr (S == 1)
                store(hv + j, window_max<V>(at, kw_n, d));
            else
                store(hv + j, even_lanes(window_max<V>(at, kw_n, d), window_max<V>(at + L, kw_n, d)));
        }
        if (tail)
            for (index_t kw = 1; kw < kw_n; ++kw)
                probe += load<V>(prow + S * last + kw * d) + (S == 2 ? load<V>(prow + S * last + L + kw * d) : V{});
    }
}


// Output row oh: yv[ow] for ow < n and, for indices, the winner's row and column (row -1:
// nothing replaced the start value). n: owp (scratch rows), or OW >= L (the output row
// itself: the last block overlaps the one before). Max: from the row results of the
// window's input rows (row ih at hv + (ih - ih_lo)*owp); sum: all KH*KW taps of the stored
// rows, in row-major window order.
template <PoolKind K, int S, int N, class T, class Tap>
inline void column_pass(T* __restrict yv, Tap* __restrict yr, Tap* __restrict yc, index_t n, const T* src,
                        const T* hv, const Tap* hc, index_t ih_lo, index_t oh, const Pool2dSizes& s, const RowPlan& r,
                        T fill) {
    using V = typename Simd<T>::vec;
    using I = typename TapLanes<T, Tap>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const index_t kh_n = N ? N : s.kh, kw_n = N ? N : s.kw;
    const index_t ih0 = oh * s.stride_h - s.pad_h;
    index_t k_lo = 0, k_hi = kh_n;   // the window's rows inside the input (divisions only at the edges)
    if (ih0 < 0 || ih0 + (kh_n - 1) * s.dil_h >= s.h)
        k_lo = first_tap(ih0, s.dil_h), k_hi = std::min(kh_n, ceil_div(s.h - ih0, s.dil_h));
    if constexpr (K == PoolKind::max_no_nan && N != 0) {
        if (k_hi - k_lo == N) {   // an interior row: N fixed taps
            const T* top = hv + (ih0 - ih_lo) * r.owp;
            for (index_t jb = 0; jb < n; jb += L) {
                const index_t j = std::min(jb, n - L);
                store(yv + j, window_max<V>(top + j, N, s.dil_h * r.owp));
            }
            return;
        }
    }
    for (index_t jb = 0; jb < n; jb += L) {
        const index_t j = std::min(jb, n - L);
        V m = V{} + fill;
        I row = I{} - 1, col = I{} - 1;
        for (index_t k = k_lo; k < k_hi; ++k) {
            const index_t ih = ih0 + k * s.dil_h;
            if constexpr (K == PoolKind::sum) {
                const T* stored = src + (ih - ih_lo) * r.src_stride;
                for (index_t kw = 0; kw < kw_n; ++kw) m += tap<S, V>(stored, j, kw, s, r);
                continue;
            }
            const index_t at = (ih - ih_lo) * r.owp + j;
            const V v = load<V>(hv + at);
            const auto take = replaces<K>(v, m);
            m = take ? v : m;
            if constexpr (has_indices(K)) {
                const I wide = __builtin_convertvector(take, I);
                row = wide ? I{} + Tap(ih) : row, col = wide ? load<I>(hc + at) : col;
            }
        }
        store(yv + j, m);
        if constexpr (has_indices(K)) store(yr + j, row), store(yc + j, col);
    }
}

// The column passes of one task (output rows [oh0, oh1) of one plane) over the row results
// (or, for sum, the stored rows) of its input rows from ih_lo. Emit: a callable given every
// finished output row (values in scratch), or the output array itself (max without indices:
// rows written in place).
template <PoolKind K, int S, int N, class T, class Tap, class Emit>
inline void column_passes(RowScratch<T, Tap>& b, index_t plane, index_t oh0, index_t oh1, index_t ih_lo,
                          const Pool2dSizes& s, const RowPlan& r, T fill, Emit& emit) {
    using V = typename Simd<T>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    const auto rows = [&](index_t from, index_t to) {
        for (index_t oh = from; oh < to; ++oh) {
            if constexpr (std::is_pointer<Emit>::value) {
                T* y = emit + (plane * s.oh + oh) * s.ow;
                const bool direct = s.ow >= L;
                column_pass<K, S, N>(direct ? y : b.yval.get(), b.yrow.get(), b.ycol.get(), direct ? s.ow : r.owp,
                                     b.src.get(), b.hval.get(), b.hcol.get(), ih_lo, oh, s, r, fill);
                if (!direct) copy_stored(y, b.yval.get(), s.ow);
            } else {
                column_pass<K, S, N>(b.yval.get(), b.yrow.get(), b.ycol.get(), r.owp, b.src.get(), b.hval.get(),
                                     b.hcol.get(), ih_lo, oh, s, r, fill);
                emit(plane, oh, b.yval.get(), b.yrow.get(), b.ycol.get());
            }
        }
    };
    if constexpr (K == PoolKind::max_no_nan && N != 0 && std::is_pointer<Emit>::value) {
        // The output rows whose N window rows all lie in the input, in one loop straight into
        // out: whole vectors of row results (owp per row), the lanes past OW landing in the
        // task's next output row, which is written after (so only rows whose spill stays
        // inside the task's rows go here).
        const index_t ow = s.ow, owp = r.owp, step = s.dil_h * owp;
        const index_t first = std::clamp(r.interior_lo, oh0, oh1);
        const index_t end = std::max(first, std::min(r.interior_hi, oh1 - r.spill_rows));
        rows(oh0, first);
        const T* top = b.hval.get() + (first * s.stride_h - s.pad_h - ih_lo) * owp;
        T* y = emit + (plane * s.oh + first) * ow;
        for (index_t oh = first; oh < end; ++oh, top += s.stride_h * owp, y += ow)
            for (index_t j = 0; j < owp; j += L) store(y + j, window_max<V>(top + j, N, step));
        rows(end, oh1);
    } else {
        rows(oh0, oh1);
    }
}

// One task over its stored input rows [ih_lo, ih_hi): the row passes, then the column passes.
template <PoolKind K, int S, int N, class T, class Tap, class Emit>
inline void pool_task(RowScratch<T, Tap>& b, index_t plane, index_t oh0, index_t oh1, index_t ih_lo, index_t ih_hi,
                      const Pool2dSizes& s, const RowPlan& r, T fill, Emit& emit, const T* next_plane) {
    constexpr bool idx = has_indices(K);
    if constexpr (K != PoolKind::sum)
        for (index_t ih = ih_lo; ih < ih_hi; ++ih) {
            if (next_plane) prefetch(next_plane + ih * s.w, s.w);   // while this plane computes: its copy then hits
            row_pass<K, S, N>(b.hval.get() + (ih - ih_lo) * r.owp, b.hcol.get() + (idx ? (ih - ih_lo) * r.owp : 0),
                              b.src.get() + (ih - ih_lo) * r.src_stride, s, r, fill);
        }
    column_passes<K, S, N>(b, plane, oh0, oh1, ih_lo, s, r, fill, emit);
}

// PyTorch's rule, element by element (dilation 1): output rows [oh0, oh1) of one plane, values
// and, when idx is given, indices. The fallback of the fast kernels for tasks holding a NaN.
template <class T>
void max_rows_exact(T* __restrict y, index_t* __restrict idx, const T* __restrict xp, const Pool2dSizes& s,
                    index_t oh0, index_t oh1) {
    for (index_t oh = oh0; oh < oh1; ++oh)
        for (index_t ow = 0; ow < s.ow; ++ow) {
            const index_t ih0 = oh * s.stride_h - s.pad_h, iw0 = ow * s.stride_w - s.pad_w;
            const index_t h_lo = std::max<index_t>(ih0, 0), h_hi = std::min(ih0 + s.kh, s.h);
            const index_t w_lo = std::max<index_t>(iw0, 0), w_hi = std::min(iw0 + s.kw, s.w);
            T m = -std::numeric_limits<T>::infinity();
            index_t best = h_lo * s.w + w_lo;
            for (index_t ih = h_lo; ih < h_hi; ++ih)
                for (index_t iw = w_lo; iw < w_hi; ++iw) {
                    const T v = xp[ih * s.w + iw];
                    if (v > m || v != v) m = v, best = ih * s.w + iw;
                }
            y[oh * s.ow + ow] = m;
            if (idx) idx[oh * s.ow + ow] = best;
        }
}

// Whether a lane of v is NaN, once per task: one unordered compare and a mask test where the
// instruction set has them (a lane-by-lane loop compiles to a scalar compare per lane).
template <class V> inline bool any_nan(V v) {
    constexpr bool is_float = sizeof(v[0]) == 4;
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64)
        return is_float ? _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q) != 0
                        : _mm512_cmp_pd_mask((__m512d)v, (__m512d)v, _CMP_UNORD_Q) != 0;
#endif
#if defined(__AVX__)
    if constexpr (sizeof(V) == 32)
        return is_float ? _mm256_movemask_ps(_mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q)) != 0
                        : _mm256_movemask_pd(_mm256_cmp_pd((__m256d)v, (__m256d)v, _CMP_UNORD_Q)) != 0;
#endif
    bool nan = false;
    for (std::size_t i = 0; i < sizeof(V) / sizeof(v[0]); ++i) nan |= v[i] != v[i];
    return nan;
}

// Runs the tasks: per task, stores the input rows its outputs read (all first, so that
// the vector loads never wait on the copies' stores), then pool_task. The no_nan kinds probe
// the rows while storing them (max_no_nan may read them in place, probing them in the row
// pass) and run the task with the exact kind when they hold a NaN.
// The task hook of pool_rows when nothing follows the tasks.
struct NoAfter {
    template <class... A> void operator()(A...) const {}
};

template <PoolKind K, int S, int N, class T, class Tap, class Emit, class After>
void pool_rows_as(const T* x, const Pool2dSizes& s, T fill, Emit emit, After after) {
    using V = typename Simd<T>::vec;
    constexpr index_t L = sizeof(V) / sizeof(T);
    constexpr bool idx = has_indices(K), max = K != PoolKind::sum, probed = no_nan(K);
    const int nt = num_threads();
    const RowPlan r(s, nt, L, S);
    // max_no_nan reads the rows in place when no window reaches into the right padding (left
    // padding: 2x2 / 3x3 windows without dilation, its lanes replaced by -inf) and the task's
    // reads stay inside x (the first rows of the first plane and the last rows of the last
    // plane may be copied instead)
    const bool in_place = K == PoolKind::max_no_nan && S != 0 && (s.pad_w == 0 || (N != 0 && s.dil_w == 1)) &&
                          s.pad_w < L && (s.ow - 1) * s.stride_w + (s.kw - 1) * s.dil_w - s.pad_w < s.w;
    const index_t x_size = s.planes * s.h * s.w;
    const index_t reach = row_reach(s, r.owp, S, L);
    const index_t hrows = std::min(s.h, rows_read(s, r.rows));
    std::vector<RowScratch<T, Tap>> scratch(nt);
    for (auto& b : scratch) {
        b.src = aligned_buffer<T>(hrows * r.src_stride);
        std::fill_n(b.src.get(), hrows * r.src_stride, fill);
        b.hval = aligned_buffer<T>(max ? hrows * r.owp : 1), b.yval = aligned_buffer<T>(r.owp);
        b.hcol = aligned_buffer<Tap>(idx ? hrows * r.owp : 1);
        b.yrow = aligned_buffer<Tap>(idx ? r.owp : 1), b.ycol = aligned_buffer<Tap>(idx ? r.owp : 1);
    }
#pragma omp parallel num_threads(nt)
    {
        RowScratch<T, Tap>& b = scratch[thread_index()];
#pragma omp for schedule(dynamic, std::max<index_t>(1, r.count / (64 * static_cast<index_t>(nt))))
        for (index_t task = 0; task < r.count; ++task) {
            const index_t plane = r.blocks == 1 ? task : task / r.blocks;   // (a division per task costs)
            const index_t oh0 = (task - plane * r.blocks) * r.rows;
            const index_t oh1 = std::min(s.oh, oh0 + r.rows);
            const index_t ih_lo = std::max<index_t>(0, oh0 * s.stride_h - s.pad_h);
            const index_t ih_hi = std::min(s.h, (oh1 - 1) * s.stride_h - s.pad_h + (s.kh - 1) * s.dil_h + 1);
            const T* xp = x + plane * s.h * s.w;
            // whole planes per task: the thread's next task is most often the next plane
            const T* next_plane = r.blocks == 1 && plane + 1 < s.planes ? xp + s.h * s.w : nullptr;
            const index_t first_read = (xp - x) + ih_lo * s.w - s.pad_w, last_row = (xp - x) + (ih_hi - 1) * s.w - s.pad_w;
            if (in_place && first_read >= 0 && x_size - last_row >= reach) {   // max_no_nan, rows read where they are
                V probe{};
                rows_max_in_place<S, N>(b.hval.get(), r.owp, xp + ih_lo * s.w, ih_hi - ih_lo, s, probe,
                                        next_plane ? next_plane + ih_lo * s.w : nullptr);
                if (!any_nan(probe)) {
                    column_passes<K, S, N>(b, plane, oh0, oh1, ih_lo, s, r, fill, emit);
                    after(plane, oh0, oh1, std::integral_constant<int, S>{}, std::integral_constant<int, N>{});
                    continue;
                }
            }
            V probe{};
            for (index_t ih = ih_lo; ih < ih_hi; ++ih)
                store_src_row<S>(b.src.get() + (ih - ih_lo) * r.src_stride, xp + ih * s.w, s, r, fill,
                                 probed ? &probe : nullptr);
            if (probed && any_nan(probe))
                pool_task<exact(K), S, N>(b, plane, oh0, oh1, ih_lo, ih_hi, s, r, fill, emit, next_plane);
            else
                pool_task<K, S, N>(b, plane, oh0, oh1, ih_lo, ih_hi, s, r, fill, emit, next_plane);
            after(plane, oh0, oh1, std::integral_constant<int, S>{}, std::integral_constant<int, N>{});
        }
    }
}

// stride_w 1 and 2 read plain padded rows; other strides go through phase rows (the no_nan
// kinds run exact there: the phase rows are not probed). The common square windows 2x2 and 3x3
// get their tap loops unrolled, max and sum (avg pooling 3x3 / 2: 5-15% less time; the sums
// keep their row-major order, so the same bits).
// after(plane, oh0, oh1, S, N) runs once each task's output rows [oh0, oh1) of `plane` are
// written (S and N as std::integral_constant).
template <PoolKind K, int S, class T, class Tap, class Emit, class After>
void pool_rows_sized(const T* x, const Pool2dSizes& s, T fill, Emit emit, After after) {
    if constexpr (no_nan(K) || K == PoolKind::sum) {
        if (s.kh == 3 && s.kw == 3) return pool_rows_as<K, S, 3, T, Tap>(x, s, fill, emit, after);
        if (s.kh == 2 && s.kw == 2) return pool_rows_as<K, S, 2, T, Tap>(x, s, fill, emit, after);
    }
    pool_rows_as<K, S, 0, T, Tap>(x, s, fill, emit, after);
}

template <PoolKind K, class T, class Tap, class Emit, class After = NoAfter>
void pool_rows(const T* x, const Pool2dSizes& s, T fill, Emit emit, After after = {}) {
    switch (s.stride_w) {
        case 1: return pool_rows_sized<K, 1, T, Tap>(x, s, fill, emit, after);
        case 2: return pool_rows_sized<K, 2, T, Tap>(x, s, fill, emit, after);
        default: return pool_rows_as<exact(K), 0, 0, T, Tap>(x, s, fill, emit, after);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
