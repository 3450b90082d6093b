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
//   forward          task = plane (n, c): buffer of x[n,c]; for each m and output row oh:
//                    out[oh, :] = bias + sum over taps of w[tap] * (the tap's buffer run)
//   backward-data    task = plane (n, c): for each m, buffer of gy[n, c*M+m]; grad_x row ih,
//                    column phase rho = (iw + pw) mod sw, is a stride-1 correlation over the
//                    taps that reach it ((kh*dh) mod sh = (ih+ph) mod sh, (kw*dw) mod sw = rho)
//   backward-weight  task = channel c: for n in order, buffer of x[n,c]; for each m and tap:
//                    dot(gy[n, c*M+m], the tap's buffer runs) in vector lanes, flushed every
//                    few rows into double lanes (float sums stay short), lanes summed last.
// Tap loops are unrolled at compile time for the common counts (3x3: 9; 3x3 stride-2 phases
// of backward-data: 4, 2, 1).
//
// Writes: out, grad_x and grad_w are fully OVERWRITTEN, never accumulated into.
// Determinism: each output element is produced by one task with a fixed summation order,
// independent of the thread count (no atomics, no split reductions).
#pragma once
#include <type_traits>
#include <vector>
#include "gemm.hpp"   // Vec<T> (the instruction set's vector type), kVecBytes
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including depthwise_impl.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace depthwise {

inline int worker() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The calling thread's contiguous share [begin, end) of `total` items (as schedule(static)).
inline void my_share(index_t total, index_t& begin, index_t& end) {
#ifdef _OPENMP
    const index_t t = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    const index_t t = 0, nth = 1;
#endif
    begin = total * t / nth;
    end = total * (t + 1) / nth;
}

// Ask for `count` values from p to be brought into the cache (planes a loop will read next
// but that hardware prefetchers cannot guess: a channel's images are C planes apart).
template <class T> inline void prefetch(const T* p, index_t count) {
    const char* b = reinterpret_cast<const char*>(p);
    for (index_t i = 0; i < count * static_cast<index_t>(sizeof(T)); i += 64) __builtin_prefetch(b + i);
}

// fill(buf, i) then work(buf, i) for the items i in [begin, end), on two buffers: item i+1 is
// filled before item i is worked on. The taps read a buffer at other offsets than the copy
// wrote it, so a read straight after the writes stalls on failed store-to-load forwarding
// (several times the kernel's own cost on small planes); here the writes are an item old.
template <class T, class Fill, class Work>
void pipelined(T* buf0, T* buf1, index_t begin, index_t end, Fill&& fill, Work&& work) {
    if (begin >= end) return;
    fill(buf0, begin);
    for (index_t i = begin; i < end; ++i) {
        T* cur = (i - begin) % 2 ? buf1 : buf0;
        if (i + 1 < end) fill(cur == buf0 ? buf1 : buf0, i + 1);
        work(cur, i);
    }
}

// ------------------------------------------------------------------ vector helpers
template <class T> using V = typename Vec<T>::type;
template <class T> constexpr int lanes() { return kVecBytes / static_cast<int>(sizeof(T)); }

template <class T> inline V<T> load(const T* p) { V<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <class T> inline void store(T* p, const V<T>& v) { std::memcpy(p, &v, sizeof v); }
template <class T> inline V<T> splat(T a) { return a - V<T>{}; }   // a broadcast (a - 0 == a, even -0;
                                                                    // V{} + a would cost an add)

// The first n < lanes values of p, the other lanes 0; never touches memory past p + n
// (masked loads/stores where the instruction set has them).
template <class T> inline V<T> load_first(const T* p, index_t n);
template <class T> inline void store_first(T* p, const V<T>& v, index_t n);
#if defined(__AVX512F__)
template <> inline V<float> load_first(const float* p, index_t n) {
    return (V<float>)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
}
template <> inline V<double> load_first(const double* p, index_t n) {
    return (V<double>)_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p);
}
template <> inline void store_first(float* p, const V<float>& v, index_t n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), (__m512)v);
}
template <> inline void store_first(double* p, const V<double>& v, index_t n) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), (__m512d)v);
}
#elif defined(__AVX2__)
inline __m256i first_lanes32(index_t n) {   // lanes 0..n-1 of 8 int32 set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i first_lanes64(index_t n) {   // lanes 0..n-1 of 4 int64 set
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
template <> inline V<float> load_first(const float* p, index_t n) {
    return (V<float>)_mm256_maskload_ps(p, first_lanes32(n));
}
template <> inline V<double> load_first(const double* p, index_t n) {
    return (V<double>)_mm256_maskload_pd(p, first_lanes64(n));
}
template <> inline void store_first(float* p, const V<float>& v, index_t n) {
    _mm256_maskstore_ps(p, first_lanes32(n), (__m256)v);
}
template <> inline void store_first(double* p, const V<double>& v, index_t n) {
    _mm256_maskstore_pd(p, first_lanes64(n), (__m256d)v);
}
#else
template <class T> inline V<T> load_first(const T* p, index_t n) {
    alignas(64) T t[lanes<T>()] = {};
    for (index_t i = 0; i < n; ++i) t[i] = p[i];
    return load(t);
}
template <class T> inline void store_first(T* p, const V<T>& v, index_t n) {
    alignas(64) T t[lanes<T>()];
    store(t, v);
    for (index_t i = 0; i < n; ++i) p[i] = t[i];
}
#endif

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

// ------------------------------------------------------------------ zero-padded plane buffers
// d[i] = s[i*step] for i in [0, n). For step 1 it may also write zeros to d[n, round_up(n, VL))
// (a full store instead of a slow partial one; PlaneCopy leaves room for it).
template <class T>
inline void copy_cols(T* __restrict d, const T* __restrict s, index_t n, index_t step) {
    constexpr int VL = lanes<T>();
    if (step == 1) {
        index_t i = 0;
        for (; i + VL <= n; i += VL) store(d + i, load(s + i));
        if (i < n) store(d + i, load_first(s + i, n - i));
    } else if (step == 2) {
        for (index_t i = 0; i < n; ++i) d[i] = s[2 * i];   // vectorised deinterleave
    } else {
        for (index_t i = 0; i < n; ++i) d[i] = s[i * step];
    }
}

// Copies the same part of every source plane (src_h x src_w) into a zero-padded buffer.
// Buffer row r (of `row` values) takes source row r - row_shift; it holds `phases` runs of
// `run` values, and entry i of run p takes source column p + i*phases - col_shift. Entries
// outside the source, or at columns >= col_limit, are zero. The buffer is cleared once per
// call (clear) and every plane then writes the same entries, so the zeros stay. Rows and runs
// are written in address order, so copy_cols' zero spill past a run's end only lands on
// entries that are zero or written after it (plus a vector of room at the very end).
struct PlaneCopy {
    index_t src_w = 0, rows = 0, row = 0, run = 0, phases = 1;
    index_t row_begin = 0, row_end = 0, row_shift = 0;   // buffer rows holding source rows
    std::vector<index_t> lo, hi, first;                   // per run: entries [lo, hi) <- columns first + i*phases

    static PlaneCopy make(index_t src_h, index_t src_w, index_t rows, index_t row_shift,
                          index_t phases, index_t run, index_t col_shift, index_t col_limit) {
        PlaneCopy c;
        c.src_w = src_w; c.rows = rows; c.row = phases * run; c.run = run; c.phases = phases;
        c.row_shift = row_shift;
        c.row_begin = std::max<index_t>(0, row_shift);
        c.row_end = std::min(rows, src_h + row_shift);
        const index_t limit = std::min(src_w, col_limit);
        for (index_t p = 0; p < phases; ++p) {
            const index_t first = p - col_shift;
            index_t lo = first >= 0 ? 0 : ceil_div(-first, phases);
            index_t hi = first < limit ? ceil_div(limit - first, phases) : 0;
            hi = std::min(hi, run);
            lo = std::min(lo, hi);
            c.lo.push_back(lo); c.hi.push_back(hi); c.first.push_back(first);
        }
        return c;
    }
    template <class T> index_t size() const { return rows * row + lanes<T>(); }
    template <class T> void clear(T* buf) const { std::fill(buf, buf + size<T>(), T(0)); }
    template <class T> void operator()(T* buf, const T* src) const {
        for (index_t r = row_begin; r < row_end; ++r) {
            const T* s = src + (r - row_shift) * src_w;
            T* d = buf + r * row;
            for (index_t p = 0; p < phases; ++p)
                if (hi[p] > lo[p])
                    copy_cols(d + p * run + lo[p], s + first[p] + lo[p] * phases, hi[p] - lo[p], phases);
        }
    }
};

// Buffer of one input plane (forward, backward-weight): padded row r = ih + ph holds sw
// phase runs of `len` values; entry i of phase p is padded column p + i*sw (iw = p + i*sw - pw).
// Output (oh, ow) with tap (kh, kw) reads
//   buf[oh*sh*row + tap_offset[kh*KW + kw] + ow],  tap_offset = kh*dh*row + ((kw*dw) % sw)*len + (kw*dw)/sw.
struct InputLayout {
    index_t len;                       // per phase run: round_up(OW, VL) + (KW-1)*dw/sw (vector tails stay inside)
    index_t row;                       // per padded row: sw * len
    std::vector<index_t> tap_offset;
    PlaneCopy copy;                    // rows (OH-1)*sh + (KH-1)*dh + 1, columns < (OW-1)*sw + (KW-1)*dw + 1

    template <class T> static InputLayout of(const Conv2dSizes& s) {
        InputLayout L;
        L.len = round_up(s.ow, lanes<T>()) + (s.kw - 1) * s.dil_w / s.stride_w;
        L.row = s.stride_w * L.len;
        for (index_t kh = 0; kh < s.kh; ++kh)
            for (index_t kw = 0; kw < s.kw; ++kw) {
                const index_t q = kw * s.dil_w;
                L.tap_offset.push_back(kh * s.dil_h * L.row + (q % s.stride_w) * L.len + q / s.stride_w);
            }
        const index_t rows = (s.oh - 1) * s.stride_h + (s.kh - 1) * s.dil_h + 1;
        const index_t cols = (s.ow - 1) * s.stride_w + (s.kw - 1) * s.dil_w + 1;
        L.copy = PlaneCopy::make(s.h, s.w, rows, s.pad_h, s.stride_w, L.len, s.pad_w, cols - s.pad_w);
        return L;
    }
};

// Buffer of one grad_out plane (backward-data): buffer row b = oh + top, column c = ow + left.
// grad_x row ih with ih + ph = u*sh + rh and column phase rho covers iw = t*sw + rho - pw for
// t in [t0[rho], t0[rho] + count[rho]); tap (kh, kw) reaches it when (kh*dh) % sh == rh and
// (kw*dw) % sw == rho, reading grad_out at oh = u - kh*dh/sh, ow = t - kw*dw/sw. The rows of
// one phase rh, ih = ih0[rh] + r*sh, read buffer rows u0 + top + r: one taps_block.
struct GradLayout {
    index_t top, left;                 // (KH-1)*dh/sh, (KW-1)*dw/sw
    index_t rows_max, count_max;       // most grad_x rows of one phase rh; most columns of one phase rho, rounded up to VL
    std::vector<index_t> ih0, nrows;   // per row phase rh: first grad_x row, number of rows
    std::vector<index_t> t0, count;    // per column phase rho
    // Taps of phase (rh, rho) = entries [first[rh*sw + rho], first[rh*sw + rho + 1]) of
    // tap (index kh*KW + kw) and offset (-(kh*dh/sh)*row - kw*dw/sw).
    std::vector<index_t> first, tap, offset;
    PlaneCopy copy;

    template <class T> static GradLayout of(const Conv2dSizes& s) {
        const index_t sh = s.stride_h, sw = s.stride_w;
        GradLayout G;
        G.top = (s.kh - 1) * s.dil_h / sh;
        G.left = (s.kw - 1) * s.dil_w / sw;
        G.rows_max = G.count_max = 0;
        for (index_t rh = 0; rh < sh; ++rh) {
            const index_t ih0 = ((rh - s.pad_h) % sh + sh) % sh;
            G.ih0.push_back(ih0);
            G.nrows.push_back(ih0 < s.h ? ceil_div(s.h - ih0, sh) : 0);
            G.rows_max = std::max(G.rows_max, G.nrows.back());
        }
        index_t right = s.ow;   // buffer columns needed right of `left`
        for (index_t rho = 0; rho < sw; ++rho) {
            const index_t t0 = s.pad_w >= rho ? ceil_div(s.pad_w - rho, sw) : 0;
            const index_t t1 = s.w + s.pad_w > rho ? ceil_div(s.w + s.pad_w - rho, sw) : 0;
            G.t0.push_back(t0);
            G.count.push_back(std::max<index_t>(t1 - t0, 0));
            G.count_max = std::max(G.count_max, round_up(G.count.back(), lanes<T>()));
            right = std::max(right, t0 + round_up(G.count.back(), lanes<T>()));
        }
        const index_t row = G.left + right;
        G.first.push_back(0);
        for (index_t rh = 0; rh < sh; ++rh)
            for (index_t rho = 0; rho < sw; ++rho) {
                for (index_t kh = 0; kh < s.kh; ++kh)
                    for (index_t kw = 0; kw < s.kw; ++kw)
                        if ((kh * s.dil_h) % sh == rh && (kw * s.dil_w) % sw == rho) {
                            G.tap.push_back(kh * s.kw + kw);
                            G.offset.push_back(-(kh * s.dil_h / sh) * row - kw * s.dil_w / sw);
                        }
                G.first.push_back(static_cast<index_t>(G.tap.size()));
            }
        const index_t rows = G.top + (s.h - 1 + s.pad_h) / sh + 1;
        G.copy = PlaneCopy::make(s.oh, s.ow, rows, G.top, 1, row, G.left, s.ow);
        return G;
    }
    // First buffer value the rows of phase rh, column phase rho read (before tap offsets).
    index_t start(index_t rh, index_t rho, const Conv2dSizes& s) const {
        return ((ih0[rh] + s.pad_h) / s.stride_h + top) * copy.row + t0[rho] + left;
    }
};

}  // namespace depthwise

// ------------------------------------------------------------------ kernels
// out (N, C*M, OH, OW) = depthwise conv of x (N, C, H, W) with w (C*M, 1, KH, KW) + bias (C*M or null)
template <class T>
void depthwise_conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    using namespace depthwise;
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow;
    const InputLayout L = InputLayout::of<T>(s);
    std::vector<AlignedBuffer<T>> bufs;   // two per thread (pipelined)
    for (int t = 0; t < 2 * nt; ++t) bufs.push_back(aligned_buffer<T>(L.copy.size<T>()));

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
                    taps_block_any(out + (plane * M + m) * P, s.ow, s.oh, s.ow, buf, s.stride_h * L.row,
                                   L.tap_offset.data(), w + co * taps, static_cast<int>(taps),
                                   bias ? bias[co] : T(0), false, false);
                }
            });
    }
}

// grad_x (N, C, H, W) from grad_out (N, C*M, OH, OW) and w (C*M, 1, KH, KW).
template <class T>
void depthwise_conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) {
    using namespace depthwise;
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow;
    const index_t sh = s.stride_h, sw = s.stride_w;
    const GradLayout G = GradLayout::of<T>(s);
    // per thread: two grad_out buffers (pipelined); for sw > 1 the column phases of a block of
    // rows, (rho, r, t) at (rho*rows_max + r)*count_max + t, before they are interleaved
    const index_t phase_block = G.rows_max * G.count_max;
    std::vector<AlignedBuffer<T>> bufs, phase_rows;
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(G.copy.size<T>()));
        bufs.push_back(aligned_buffer<T>(G.copy.size<T>()));
        phase_rows.push_back(aligned_buffer<T>(sw > 1 ? sw * phase_block : 1));
    }
    std::vector<T> weights(static_cast<std::size_t>(nt) * taps);   // one phase's tap weights

#pragma omp parallel num_threads(nt)
    {
        T* buf0 = bufs[2 * worker()].get();
        T* buf1 = bufs[2 * worker() + 1].get();
        T* tmp = phase_rows[worker()].get();
        T* wt = weights.data() + worker() * taps;
        G.copy.clear(buf0);
        G.copy.clear(buf1);
        index_t begin, end;
        my_share(s.n * C, begin, end);   // planes n*C + c; items plane*M + m
        pipelined(buf0, buf1, begin * M, end * M,
            [&](T* buf, index_t item) { G.copy(buf, grad_out + item * P); },
            [&](const T* buf, index_t item) {
                const index_t plane = item / M, m = item % M;   // m > 0 adds to what m-1 wrote
                const T* wk = w + ((plane % C) * M + m) * taps;
                T* gx = grad_x + plane * s.h * s.w;
                for (index_t rh = 0; rh < sh; ++rh) {
                    const index_t rows = G.nrows[rh];
                    if (rows == 0) continue;
                    for (index_t rho = 0; rho < sw; ++rho) {
                        if (G.count[rho] == 0) continue;
                        const index_t b = G.first[rh * sw + rho], e = G.first[rh * sw + rho + 1];
                        for (index_t j = b; j < e; ++j) wt[j - b] = wk[G.tap[j]];
                        const T* in = buf + G.start(rh, rho, s);
                        if (sw == 1)   // the one column phase is the whole row (t0 = pw: iw = t - pw)
                            taps_block_any(gx + G.ih0[rh] * s.w, sh * s.w, rows, G.count[0], in, G.copy.row,
                                           &G.offset[b], wt, static_cast<int>(e - b), T(0), m > 0, false);
                        else
                            taps_block_any(tmp + rho * phase_block, G.count_max, rows, G.count[rho], in,
                                           G.copy.row, &G.offset[b], wt, static_cast<int>(e - b), T(0), false, true);
                    }
                    if (sw == 1) continue;
                    for (index_t r = 0; r < rows; ++r)   // interleave the column phases into grad_x
                        for (index_t rho = 0; rho < sw; ++rho) {
                            if (G.count[rho] == 0) continue;
                            T* g = gx + (G.ih0[rh] + r * sh) * s.w + G.t0[rho] * sw + rho - s.pad_w;
                            const T* t = tmp + rho * phase_block + r * G.count_max;
                            if (m == 0) for (index_t k = 0; k < G.count[rho]; ++k) g[k * sw] = t[k];
                            else for (index_t k = 0; k < G.count[rho]; ++k) g[k * sw] += t[k];
                        }
                }
            });
    }
}

// grad_w (C*M, 1, KH, KW) from grad_out (N, C*M, OH, OW) and x (N, C, H, W).
template <class T>
void depthwise_conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) {
    using namespace depthwise;
    constexpr int VL = lanes<T>(), kChunk = 9;   // taps per pass (tap_dots unrolls up to 9)
    constexpr index_t kTerms = 32;                // vector terms per lane summed in T before a flush to double
    const int nt = num_threads();
    const index_t C = s.c_in, M = s.c_out / s.c_in, taps = s.kh * s.kw, P = s.oh * s.ow;
    const InputLayout L = InputLayout::of<T>(s);
    const index_t chunks = ceil_div(s.ow, VL);                        // vector terms per row and lane
    const index_t block = std::min(s.oh, std::max<index_t>(1, kTerms / chunks));   // rows per tap_dots call
    std::vector<AlignedBuffer<T>> bufs;
    std::vector<AlignedBuffer<V<T>>> partials;   // per thread: M * taps vector sums in T
    std::vector<AlignedBuffer<double>> sums;     // per thread: M * taps * VL lane sums in double
    for (int t = 0; t < nt; ++t) {
        bufs.push_back(aligned_buffer<T>(L.copy.size<T>()));
        bufs.push_back(aligned_buffer<T>(L.copy.size<T>()));
        partials.push_back(aligned_buffer<V<T>>(M * taps));
        sums.push_back(aligned_buffer<double>(M * taps * VL));
    }

#pragma omp parallel num_threads(nt)
    {
        T* buf0 = bufs[2 * worker()].get();
        T* buf1 = bufs[2 * worker() + 1].get();
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
                    for (index_t oh = 0; oh < s.oh; oh += block) {
                        const index_t rows = std::min(block, s.oh - oh);
                        if (terms + rows * chunks > kTerms) { flush(); terms = 0; }
                        for (index_t m = 0; m < M; ++m)
                            for (index_t i = 0; i < taps; i += kChunk)
                                tap_dots_any<T>(static_cast<int>(std::min<index_t>(kChunk, taps - i)),
                                                part + m * taps + i, grad_out + ((n * C + c) * M + m) * P + oh * s.ow,
                                                s.ow, rows, buf + oh * s.stride_h * L.row, s.stride_h * L.row,
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

}  // namespace CONVKIT_ISA
}  // namespace convkit
