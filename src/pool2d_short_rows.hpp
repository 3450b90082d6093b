// convkit/src/pool2d_short_rows.hpp -- max pooling of planes whose rows fit in at most 8
// vectors (AlexNet's 13x13, 27x27 and 55x55 maps, 7x7), a plane at a time in registers, with or
// without indices (included by pool2d_impl.hpp, compiled once per instruction set).
//
// The separable kernel (pool2d_rows.hpp) stores its row results and reads them back; at these
// sizes that store/load traffic and the per-row bookkeeping cost more than the maxima. Here
// each input row is read once, straight from x, as B vectors of padded columns (B <= 8; the
// lanes past the last window read on into the next row and are never picked; padding 1: the
// row is read from one value before it, that left padding lane then read as column 0):
//   along W   the window max at every column of the row (K taps at +0 .. +K-1, one max each),
//   down H    the max of the K row results of an output row's window, kept in registers
//             (a window of K rows slides down by S: only S new rows per output row),
//   pick      stride 2: the even lanes (one permute), stride 3: every third lane (three),
//             stride 1: the lanes as they are.
// The scans run along each row, then down, each with "greater replaces" (one max instruction),
// so ties go to the first maximum in row-major window order, sign of zero included, as in
// PyTorch. With indices, each row result also carries the flat offset of its winner (integer
// lanes as wide as T, replaced under the same comparison), and the row result that wins down
// H brings its offset along: the first row holding the window's maximum, and in it the first
// column, which is PyTorch's row-major first maximum (an all -inf window: its first element).
// Padding (0 or 1) and ceil_mode windows past the edge: a row of the top padding and the
// left padding column read as row 0 and column 0, offsets included (never strictly greater:
// the first maximum, or the first element inside the input, still wins); the bottom and
// right padding and what lies past them read -inf.
// Every input row an output reads is added into a probe while it is loaded; a plane
// whose probe is NaN (a NaN in it, or inf - inf: a false alarm) runs PyTorch's rule element by
// element instead, and so does a plane whose whole-vector reads would pass the end of x (the
// last plane, at most) or start before it (plane 0 with left padding).
// Output rows (and index rows) are stored as whole vectors in order, the lanes past OW landing
// in the next row, written after; a task's planes are consecutive and done in order, so that
// next row may be the next plane's first. Only the rows whose store would pass the task's
// last plane go through a copy (the copy of 13x13's last two rows in every plane, through
// the stack, had been a quarter of pooling with indices: store-to-load forwarding stalls).
// Applies where max_pool2d_short_rows_apply (pool2d.hpp) says.
// Writes: out (and indices) fully OVERWRITTEN. Planes are independent: any thread count, same bits.
#pragma once
#include <algorithm>
#include <type_traits>
#include "pool2d_rows.hpp"

namespace convkit {
namespace CONVKIT_ISA {

// B vectors: one input row's window maxima, or one output row's; with indices (Idx) also
// the flat offset of each maximum in the plane.
template <class V, class I, int B, bool Idx> struct RowVecs { V v[B]; };
template <class V, class I, int B> struct RowVecs<V, I, B, true> { V v[B]; I at[B]; };

// window_max_shifted (pool2d_rows.hpp) that also gives each lane's winner: the offset of tap
// k >= 1 is base + k, that of tap 0 `first` (base but where tap 0 is the left padding, read
// as column 0).
template <int K, class V, class I>
inline void window_argmax_shifted(V v, V next, I first, I base, V& m, I& at) {
    static_assert(K >= 2 && K <= 3, "taps 2 and 3 are written out");
    m = v;
    at = first;
    const auto take = [&](V t, int k) {   // a masked add: at = greater ? base + k : at
        const auto greater = t > m;
        m = greater ? t : m;
        at = greater ? base + k : at;
    };
    take(lanes_from<1>(v, next), 1);
    if constexpr (K == 3) take(lanes_from<2>(v, next), 2);
}

// The lanes lo, lo + 1, .. of `at` (as many as i...), widened to index_t (one sign-extending
// move: GCC's own conversion took four instructions).
template <std::size_t lo, class I, std::size_t... i>
inline auto widened_lanes(I at, std::index_sequence<i...>) {
    typedef index_t Wide __attribute__((vector_size(sizeof...(i) * sizeof(index_t))));
#if defined(__AVX512F__)
    if constexpr (sizeof(I) == 64)
        return (Wide)_mm512_cvtepi32_epi64(lo ? _mm512_extracti64x4_epi64((__m512i)at, 1) : _mm512_castsi512_si256((__m512i)at));
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(I) == 32)
        return (Wide)_mm256_cvtepi32_epi64(lo ? _mm256_extracti128_si256((__m256i)at, 1) : _mm256_castsi256_si128((__m256i)at));
#endif
    return __builtin_convertvector(__builtin_shufflevector(at, at, (lo + i)...), Wide);
}

// dst[0, n) = the first n offsets of `at` (n <= its lanes), widened to index_t, as whole
// vectors (what they store past n is scratch). int32 offsets go a half at a time, and the
// upper half only when n needs it (GCC kept a 16-lane int64 vector on the stack).
template <class I>
inline void store_offsets(index_t* dst, I at, index_t n) {
    constexpr std::size_t L = sizeof(I) / sizeof(at[0]);
    if constexpr (sizeof(at[0]) == sizeof(index_t)) {
        store(dst, at);
    } else {
        store(dst, widened_lanes<0>(at, std::make_index_sequence<L / 2>{}));
        if (n > index_t(L / 2)) store(dst + L / 2, widened_lanes<L / 2>(at, std::make_index_sequence<L / 2>{}));
    }
}

// v with lane 0 replaced by lane 1 (the left padding column reads as column 0).
template <class V, std::size_t... i>
inline V first_lane_twice(V v, std::index_sequence<i...>) { return pick_lanes<(i == 0 ? 1 : i)...>(v, v); }
template <class V>
inline V first_lane_twice(V v) { return first_lane_twice(v, std::make_index_sequence<sizeof(V) / sizeof(v[0])>{}); }

template <bool Idx, int S, int K, int B, class T>
void max_pool2d_short_rows_as(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    // x (planes, H, W) -> out, indices (planes, OH, OW)
    using V = typename Simd<T>::vec;
    using Lane = SameWidthInt<T>;
    using I = typename TapLanes<T, Lane>::vec;      // offsets < H*W <= INT32_MAX
    using Wide = typename TapLanes<T, index_t>::vec;
    using R = RowVecs<V, I, B, Idx>;
    constexpr index_t L = sizeof(V) / sizeof(T);
    constexpr int NO = (B + S - 1) / S;   // output vectors per row
    // (locals: the index stores could alias the fields of s, which would then be reloaded)
    const index_t w = s.w, h = s.h, hw = h * w, oh_count = s.oh, ow = s.ow, ohw = oh_count * ow, planes = s.planes;
    const index_t pad_h = s.pad_h, pad_w = s.pad_w;
    // Lane l of row vector b holds padded column b*L + l, input column b*L + l - pad_w; padded
    // columns from `right` on (right padding, or past it with ceil_mode) read -inf. The windows
    // read window_rows x window_cols padded values.
    const index_t right = w + pad_w, window_cols = windows_span(ow, S, K, 1), window_rows = rows_read(s, oh_count);
    const int first_masked = window_cols > right ? int(right / L) : B;
    // each lane's input column (-1: the left padding), the same read as column 0, and whether
    // the lane lies before `right` (-1) or not (0)
    I column[B], first_column[B], inside[B];
    for (int b = 0; b < B; ++b)
        for (index_t l = 0; l < L; ++l) {
            column[b][l] = Lane(b * L + l - pad_w);
            first_column[b][l] = std::max<Lane>(column[b][l], 0);
            inside[b][l] = b * L + l < right ? -1 : 0;
        }
    // The rows of a plane that can be stored as whole vectors: their spill stays inside the
    // `room` values from the plane's start that this thread writes, in order, from here on.
    const auto whole_rows = [&](index_t room) { return room < NO * L ? 0 : std::min(oh_count, (room - NO * L) / ow + 1); };
    // a plane's reads end here (relative to its start): the last input row a window reads, its
    // last vector; with left padding they start a value before the plane, so plane 0 runs the
    // exact kernel (as do the last planes, whose reads would pass the end of x)
    const index_t last_row = std::min(h - 1, window_rows - 1 - pad_h);
    const index_t reach = last_row * w - pad_w + B * L;
    const bool padded = pad_h || pad_w || first_masked < B || window_rows - pad_h > h;
    const index_t first_safe = pad_w ? 1 : 0, safe_planes = planes * hw >= reach ? (planes * hw - reach) / hw + 1 : 0;
    const int nt = num_threads();
    // Tasks are runs of consecutive planes, done in order: a plane's last rows may spill into
    // the next planes of its run, which are written after it (rows whose spill would pass the
    // run's last plane go through the stack instead).
    const index_t run = std::max<index_t>(1, planes / (64 * static_cast<index_t>(nt)));
    // firstprivate: shared, these would be read through pointers at every use (the outlined
    // region gets their addresses), which cost the small planes a quarter of their time
#pragma omp parallel for num_threads(nt) schedule(dynamic) \
    firstprivate(w, h, hw, oh_count, ow, ohw, planes, pad_h, pad_w, first_masked, padded, first_safe, safe_planes, column, first_column, inside)
    for (index_t task = 0; task < ceil_div(planes, run); ++task)
    for (index_t plane = task * run, run_end = std::min(planes, plane + run); plane < run_end; ++plane) {
        const T* xp = x + plane * hw;
        T* yp = out + plane * ohw;
        index_t* ip = Idx ? indices + plane * ohw : nullptr;
        if (plane < first_safe || plane >= safe_planes) {
            max_rows_exact(yp, ip, xp, s, 0, s.oh);
            continue;
        }
        const index_t whole_in_run = whole_rows(std::min(run_end - plane, index_t(2) + NO * L / ohw) * ohw);
        V probe{};
        // Window maxima at every padded column of input row ih. A row of the top padding reads
        // as row 0 (the same values and offsets: never strictly greater, so the window's first
        // maximum, or its first element inside the input, still wins), a row of the bottom
        // padding (or past it) as -inf; so does the right padding, and the left padding column
        // reads as column 0. Padded: whether the call has any of them (if not, a version of the
        // row loop without their tests: a quarter of 13x13's time without indices).
        const auto along = [&](index_t ih, auto padded) {
            constexpr bool Padded = decltype(padded)::value;
            const V minus_inf = V{} - std::numeric_limits<T>::infinity();
            R r;
            if constexpr (Padded) {
                if (ih >= h) {
                    for (int b = 0; b < B; ++b) r.v[b] = minus_inf;
                    if constexpr (Idx) for (int b = 0; b < B; ++b) r.at[b] = I{};
                    return r;
                }
                ih = std::max<index_t>(ih, 0);
            }
            V v[B];
            for (int b = 0; b < B; ++b) probe += v[b] = load<V>(xp + ih * w - (Padded ? pad_w : 0) + b * L);
            if constexpr (Padded) {
                if (pad_w) v[0] = first_lane_twice(v[0]);
                for (int b = 0; b < B; ++b)   // (b from 0: a runtime first index would put v on the stack)
                    if (b >= first_masked) v[b] = inside[b] ? v[b] : minus_inf;
            }
            if constexpr (B > 1) prefetch(xp + hw + ih * w, w);   // the thread's next plane, most often
            for (int b = 0; b < B; ++b) {   // the last vector's own lanes suffice for its taps (W <= B*L)
                const V next = v[std::min(b + 1, B - 1)];
                if constexpr (Idx) {
                    const Lane row = Lane(ih * w);
                    window_argmax_shifted<K>(v[b], next, first_column[b] + row, column[b] + row, r.v[b], r.at[b]);
                } else {
                    r.v[b] = window_max_shifted<K>(v[b], next);
                }
            }
            return r;
        };
        R win[K];   // the row results of the current output row's window, top first
#pragma GCC unroll 3
        for (int k = 0; k < K; ++k)
            win[k] = padded ? along(k - pad_h, std::true_type{}) : along(k, std::false_type{});
        for (index_t oh = 0;;) {
            R m = win[0];
#pragma GCC unroll 3
            for (int k = 1; k < K; ++k)
                for (int b = 0; b < B; ++b) {
                    const auto greater = win[k].v[b] > m.v[b];
                    m.v[b] = greater ? win[k].v[b] : m.v[b];
                    if constexpr (Idx) m.at[b] = greater ? win[k].at[b] : m.at[b];
                }
            const auto pick = [&](const auto* row_vecs, int i) {   // output vector i of the row
                const auto at = [&](int b) { return row_vecs[std::min(b, B - 1)]; };
                if constexpr (S == 1) return row_vecs[i];
                else if constexpr (S == 2) return even_lanes(at(2 * i), at(2 * i + 1));
                else return every_third_lane(at(3 * i), at(3 * i + 1), at(3 * i + 2));
            };
            T* yr = yp + oh * ow;
            const bool whole = oh < whole_in_run;
            alignas(sizeof(V)) T row[NO * L];
            for (int i = 0; i < NO; ++i) store(whole ? yr + i * L : row + i * L, pick(m.v, i));
            if (!whole) copy_stored(yr, row, ow);
            if constexpr (Idx) {
                index_t* ir = ip + oh * ow;
                alignas(sizeof(Wide)) index_t row_at[NO * L];
                for (int i = 0; i < NO; ++i)
                    store_offsets(whole ? ir + i * L : row_at + i * L, pick(m.at, i), ow - i * L);
                if (!whole) copy_stored<index_t, Wide>(ir, row_at, ow);
            }
            if (++oh == oh_count) break;
#pragma GCC unroll 3
            for (int k = 0; k < K; ++k)
                if (k + S < K) win[k] = win[k + S];
                else win[k] = padded ? along(oh * S - pad_h + k, std::true_type{}) : along(oh * S + k, std::false_type{});
        }
        if (any_nan(probe)) max_rows_exact(yp, ip, xp, s, 0, s.oh);
    }
}

// Runs the kernel for the window, stride and row length of s (max_pool2d_short_rows_apply(s, L, indices) holds).
template <int B, class T>
void max_pool2d_short_rows_b(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    const auto run = [&](auto with_indices) {
        constexpr bool Idx = decltype(with_indices)::value;
        const bool k3 = s.kh == 3;
        switch (s.stride_h) {
            case 3: return k3 ? max_pool2d_short_rows_as<Idx, 3, 3, B>(out, indices, x, s)
                              : max_pool2d_short_rows_as<Idx, 3, 2, B>(out, indices, x, s);
            case 2: return k3 ? max_pool2d_short_rows_as<Idx, 2, 3, B>(out, indices, x, s)
                              : max_pool2d_short_rows_as<Idx, 2, 2, B>(out, indices, x, s);
            default: return k3 ? max_pool2d_short_rows_as<Idx, 1, 3, B>(out, indices, x, s)
                               : max_pool2d_short_rows_as<Idx, 1, 2, B>(out, indices, x, s);
        }
    };
    if (indices) return run(std::true_type{});
    run(std::false_type{});
}
template <class T>
void max_pool2d_short_rows(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
    constexpr index_t L = sizeof(typename Simd<T>::vec) / sizeof(T);
    switch (ceil_div(windows_span(s.ow, s.stride_w, s.kw, 1), L)) {   // vectors of padded columns the windows read
        case 1: return max_pool2d_short_rows_b<1>(out, indices, x, s);
        case 2: return max_pool2d_short_rows_b<2>(out, indices, x, s);
        case 3: return max_pool2d_short_rows_b<3>(out, indices, x, s);
        case 4: return max_pool2d_short_rows_b<4>(out, indices, x, s);
        case 5: return max_pool2d_short_rows_b<5>(out, indices, x, s);
        case 6: return max_pool2d_short_rows_b<6>(out, indices, x, s);
        case 7: return max_pool2d_short_rows_b<7>(out, indices, x, s);
        default: return max_pool2d_short_rows_b<8>(out, indices, x, s);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
