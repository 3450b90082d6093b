// convkit/src/depthwise_rows.hpp -- the inner loops of the depthwise kernels (depthwise_impl.hpp):
// vector helpers, a block of output rows as a sum of taps (forward, backward-data), and tap
// dot products (backward-weight). Everything reads zero-padded buffers (depthwise_buffers.hpp),
// so no loop here checks a bound. Compiled once per instruction set, like gemm.hpp.
#pragma once
#include <type_traits>
#include "gemm.hpp"          // Vec<T> (the instruction set's vector type), kVecBytes
#include "simd_first.hpp"    // load_first, store_first: a row's last, partial vector

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including this header (see depthwise_impl.hpp)"
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace depthwise {

// ------------------------------------------------------------------ vector helpers
template <class T> using V = typename Vec<T>::type;
template <class T> constexpr int lanes() { return kVecBytes / static_cast<int>(sizeof(T)); }

// Unaligned vector access typed as T (not memcpy's "any type"), so the compiler knows a store
// to a float buffer cannot change an offset, a pointer or a size it holds in a register.
template <class T> struct Unaligned { typedef T type __attribute__((vector_size(kVecBytes), aligned(sizeof(T)))); };
template <class T> inline V<T> load(const T* p) { return *reinterpret_cast<const typename Unaligned<T>::type*>(p); }
template <class T> inline void store(T* p, const V<T>& v) { *reinterpret_cast<typename Unaligned<T>::type*>(p) = v; }
template <class T> inline V<T> splat(T a) { return a - V<T>{}; }   // a broadcast (a - 0 == a, even -0;
                                                                    // V{} + a would cost an add)

// The even / odd lanes of the 2*VL values a, b (a first): a deinterleave, as shuffles.
template <class T> inline V<T> lanes_from(const V<T>& a, const V<T>& b, int first) {
    using I = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
    typedef I Index __attribute__((vector_size(sizeof(V<T>))));
    Index pick;
    for (int l = 0; l < lanes<T>(); ++l) pick[l] = first + 2 * l;
    return __builtin_shuffle(a, b, pick);
}
template <class T> inline V<T> evens(const V<T>& a, const V<T>& b) { return lanes_from<T>(a, b, 0); }
template <class T> inline V<T> odds(const V<T>& a, const V<T>& b) { return lanes_from<T>(a, b, 1); }

// The inverse: a[0] b[0] a[1] b[1] ... , as the low and the high VL lanes (shuffles).
template <class T> inline V<T> zip_half(const V<T>& a, const V<T>& b, int half) {
    using I = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
    typedef I Index __attribute__((vector_size(sizeof(V<T>))));
    Index pick;
    for (int l = 0; l < lanes<T>(); ++l) pick[l] = (l % 2) * lanes<T>() + half * lanes<T>() / 2 + l / 2;
    return __builtin_shuffle(a, b, pick);
}
template <class T> inline V<T> zip_low(const V<T>& a, const V<T>& b) { return zip_half<T>(a, b, 0); }
template <class T> inline V<T> zip_high(const V<T>& a, const V<T>& b) { return zip_half<T>(a, b, 1); }

// ------------------------------------------------------------------ the two inner loops
// U output vectors of n lanes (n == VL: full): out[b[u], +n) (= or +=) init + sum_i w[i] * in[off[i] + a[u], +VL).
template <class T, int NT, int U>
inline void tap_group(T* out, const index_t* b, const T* in, const index_t* a, const index_t* off,
                      const T* w, int nt, T init, bool accumulate, index_t n) {
    constexpr int VL = lanes<T>();
    V<T> acc[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u)
        acc[u] = !accumulate ? splat(init) : n == VL ? load(out + b[u]) : load_first(out + b[u], n);
#pragma GCC unroll 9
    for (int i = 0; i < (NT > 0 ? NT : nt); ++i) {
        const V<T> wv = splat(w[i]);
        const T* p = in + off[i];
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[u] += wv * load(p + a[u]);
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
        if (n == VL) store(out + b[u], acc[u]);
        else store_first(out + b[u], acc[u], n);
    }
}

// How the last, partial vector of an output row (len % VL values) is stored. Partial
// (masked) stores are slow (AMD Zen 3: ~7x a full store), so they are the last resort.
enum class Tail {
    full,      // store all VL lanes: the row has room, or the spill lands in a row written later
    overlap,   // recompute the row's last VL values (len >= VL; outputs written, not accumulated)
    partial,   // store only the valid lanes
};

// Output rows r in [r0, r1), k in [0, len):
//   out[r*out_pitch + k] (= or +=) init + sum_i w[i] * in[r*in_pitch + off[i] + k].
// Reads `in` up to k < round_up(len, VL) (the buffers are padded for it). Four independent
// accumulators hide the FMA latency: four vectors of one row when rows are wide, else the
// same vector of four rows. NT > 0 fixes the tap count at compile time (unrolled); NT == 0
// takes ntaps (which may be 0: out = init).
template <class T, int NT>
void taps_rows(T* out, index_t out_pitch, index_t r0, index_t r1, index_t len, const T* in, index_t in_pitch,
               const index_t* off, const T* w, int ntaps, T init, bool accumulate, Tail tail) {
    constexpr int VL = lanes<T>(), U = 4;
    const index_t body = len - len % VL;                          // full vectors cover [0, body)
    const index_t tk = tail == Tail::overlap ? len - VL : body;   // the tail vector's start
    const index_t tn = tail == Tail::partial ? len - body : VL;   // and the lanes it stores
    if (len >= U * VL) {
        for (index_t r = r0; r < r1; ++r) {
            const index_t ri = r * in_pitch, ro = r * out_pitch;
            index_t k = 0;
            for (; k + U * VL <= len; k += U * VL) {
                const index_t a[U] = {ri + k, ri + k + VL, ri + k + 2 * VL, ri + k + 3 * VL};
                const index_t b[U] = {ro + k, ro + k + VL, ro + k + 2 * VL, ro + k + 3 * VL};
                tap_group<T, NT, U>(out, b, in, a, off, w, ntaps, init, accumulate, VL);
            }
            for (; k < body; k += VL) {
                const index_t a[1] = {ri + k}, b[1] = {ro + k};
                tap_group<T, NT, 1>(out, b, in, a, off, w, ntaps, init, accumulate, VL);
            }
            if (body < len) {
                const index_t a[1] = {ri + tk}, b[1] = {ro + tk};
                tap_group<T, NT, 1>(out, b, in, a, off, w, ntaps, init, accumulate, tn);
            }
        }
        return;
    }
    auto rows_at = [&](index_t r, index_t k, index_t n, auto group_size) {   // `group_size` rows from r, vector at k
        constexpr int G = decltype(group_size)::value;
        index_t a[G], b[G];
        for (int u = 0; u < G; ++u) { a[u] = (r + u) * in_pitch + k; b[u] = (r + u) * out_pitch + k; }
        tap_group<T, NT, G>(out, b, in, a, off, w, ntaps, init, accumulate, n);
    };
    index_t r = r0;
    for (; r + U <= r1; r += U) {
        for (index_t k = 0; k < body; k += VL) rows_at(r, k, VL, std::integral_constant<int, U>());
        if (body < len) rows_at(r, tk, tn, std::integral_constant<int, U>());
    }
    auto last_rows = [&](auto group_size) {   // the 1-3 rows left, as one group
        for (index_t k = 0; k < body; k += VL) rows_at(r, k, VL, group_size);
        if (body < len) rows_at(r, tk, tn, group_size);
    };
    switch (r1 - r) {
        case 3: return last_rows(std::integral_constant<int, 3>());
        case 2: return last_rows(std::integral_constant<int, 2>());
        case 1: return last_rows(std::integral_constant<int, 1>());
        default: return;
    }
}

// All `rows` output rows of a block (see taps_rows). room: every out row has space for
// round_up(len, VL) values (scratch rows).
template <class T, int NT>
void taps_block(T* out, index_t out_pitch, index_t rows, index_t len, const T* in, index_t in_pitch,
                const index_t* off, const T* w, int ntaps, T init, bool accumulate, bool room) {
    constexpr int VL = lanes<T>();
    auto run = [&](index_t r0, index_t r1, Tail tail) {
        taps_rows<T, NT>(out, out_pitch, r0, r1, len, in, in_pitch, off, w, ntaps, init, accumulate, tail);
    };
    if (room) return run(0, rows, Tail::full);
    if (accumulate) return run(0, rows, Tail::partial);
    if (len >= VL) return run(0, rows, Tail::overlap);
    if (out_pitch == len) {   // contiguous rows stored in order: a row's spill lands on later rows
        const index_t spilling = rows * len >= VL ? (rows * len - VL) / len + 1 : 0;   // spill stays inside
        run(0, spilling, Tail::full);
        return run(spilling, rows, Tail::partial);
    }
    run(0, rows, Tail::partial);
}

template <class T>
void taps_block_any(T* out, index_t out_pitch, index_t rows, index_t len, const T* in, index_t in_pitch,
                    const index_t* off, const T* w, int ntaps, T init, bool accumulate, bool room) {
    switch (ntaps) {
        case 1: return taps_block<T, 1>(out, out_pitch, rows, len, in, in_pitch, off, w, 1, init, accumulate, room);
        case 2: return taps_block<T, 2>(out, out_pitch, rows, len, in, in_pitch, off, w, 2, init, accumulate, room);
        case 4: return taps_block<T, 4>(out, out_pitch, rows, len, in, in_pitch, off, w, 4, init, accumulate, room);
        case 9: return taps_block<T, 9>(out, out_pitch, rows, len, in, in_pitch, off, w, 9, init, accumulate, room);
        default: return taps_block<T, 0>(out, out_pitch, rows, len, in, in_pitch, off, w, ntaps, init, accumulate, room);
    }
}

// NT tap dot products over `rows` rows of width ow, added to vector partial sums:
//   acc[i] += sum_{r, k} gy[r*ow + k] * in[r*in_pitch + off[i] + k]   (lane by lane).
// The last partial vector of a row is loaded masked on both sides (an inf or NaN read past
// ow cannot leak in as 0 * inf).
template <class T, int NT>
void tap_dots(V<T>* __restrict acc_io, const T* gy, index_t ow, index_t rows,
              const T* in, index_t in_pitch, const index_t* off) {
    constexpr int VL = lanes<T>();
    V<T> acc[NT];
#pragma GCC unroll 9
    for (int i = 0; i < NT; ++i) acc[i] = acc_io[i];
    for (index_t r = 0; r < rows; ++r) {
        const T* g = gy + r * ow;
        const T* p = in + r * in_pitch;
        index_t k = 0;
        for (; k + VL <= ow; k += VL) {
            const V<T> gv = load(g + k);
#pragma GCC unroll 9
            for (int i = 0; i < NT; ++i) acc[i] += gv * load(p + off[i] + k);
        }
        if (k < ow) {
            const V<T> gv = load_first(g + k, ow - k);
#pragma GCC unroll 9
            for (int i = 0; i < NT; ++i) acc[i] += gv * load_first(p + off[i] + k, ow - k);
        }
    }
#pragma GCC unroll 9
    for (int i = 0; i < NT; ++i) acc_io[i] = acc[i];
}

// ntaps in [1, 9], unrolled.
template <class T, int NT = 9>
void tap_dots_any(int ntaps, V<T>* acc, const T* gy, index_t ow, index_t rows,
                  const T* in, index_t in_pitch, const index_t* off) {
    if constexpr (NT > 1)
        if (ntaps < NT) return tap_dots_any<T, NT - 1>(ntaps, acc, gy, ow, rows, in, in_pitch, off);
    tap_dots<T, NT>(acc, gy, ow, rows, in, in_pitch, off);
}

}  // namespace depthwise
}  // namespace CONVKIT_ISA
}  // namespace convkit
