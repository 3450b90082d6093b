// convkit/src/lrn_impl.hpp -- local response normalisation kernels for one instruction set.
//
// Compiled once per instruction set (norm_isa.cpp, built with CONVKIT_ISA = avx512 / avx2 /
// generic); norm_dispatch.cpp picks the variant at run time. Writes: y and grad_x are fully
// OVERWRITTEN, never accumulated into.
//
// float with a window of 3 or 5 channels (AlexNet, Caffe and GoogLeNet use 5) runs the
// column kernels, which keep every window term in registers ("windows in registers" below).
// The rest of this comment is about the row kernels, which run every other case.
//
// One task per (image, block of kPixelBlock pixels) walks the channels once. The window
// sums over channels come from a sliding-window sum (van Herk / Gil-Werman): the channel
// axis, zero-padded by size/2 below and (size-1)/2 above, is cut into blocks of `size`;
// every window is the suffix sum of one block plus the prefix sum of the next, both
// built by additions only. So each element costs O(1) whatever the size, nothing is ever
// subtracted (no drift, no cancellation: the accuracy of a direct sum, in T like
// PyTorch; a NaN or inf stays inside the windows that hold it), and the pixel loops are
// SIMD loops over kLanes pixels (GCC/Clang vector extensions). Each output depends on
// its pixel's data only: results are bit-identical for any thread count.
//
// Backward, with q[c] = scale[c]^-beta and t[c] = dy[c] x[c] q[c] / scale[c]:
//   grad_x[i] = dy[i] q[i] - 2 alpha beta / size * x[i] * sum of t[c] over c in [i - (size-1)/2, i + size/2]
// (the channels whose window holds i): a second sliding sum over t, fed by the first
// one, in the same walk; a ring of size/2 + 1 rows keeps dy q until grad_x needs it. Each
// channel step runs two loops over the pixel row (squares, q and t, written straight into
// the t stream's value row; then the t stream and grad_x), each with about half the row
// pointers live: one loop with all of them spilled ~14 per vector to the stack.
//
// scale^-beta: float with beta = 0.75 (AlexNet / Caffe), k >= FLT_MIN and alpha >= 0 uses
// hardware reciprocal square root estimates and one Newton step (FastThreeQuarters, rel.
// error < 1e-6; scale >= k > 0 there); otherwise exact square roots (beta 0.75, 0.5), a
// division (beta 1) or std::pow per element.
//
// Speed (Zen 3, AVX2; bench/RESULTS.md, branches lrn2 and lrn3): the input and output rows
// of a later channel step are prefetched (without the output prefetch the stores, missing
// the cache, stall the loops: 15-20% more time; the backward: kAhead steps on, into L2); the steady-state steps (all but the first
// and last few channels) run a vector loop with no tests (a compile-time flag); the
// backward's sliding sums read a row of zeros for a missing term instead of branching.
// The loops are bound by their work per vector, not by memory: a kernel with the same walk
// that only reads dy and x and writes grad_x takes 55-60% of the backward's time; the power
// is 15-20% of it. Tried and not faster: a direct sum of the `size` window rows (from x or
// from a ring of squares), streaming output stores, 64..1024-pixel blocks, walking the
// channels one pixel column at a time with the window in registers (Zen 3, AVX2, whole
// columns; in passes over blocks of columns it is now the float backward on Zen 5),
// prefetching 2-3 steps ahead into L1 (Zen 3) or once per cache line, scratch rows padded
// against 4 KB aliasing, 1/s by its own Newton step beside q's chain.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>
#include "lrn.hpp"
#include "simd_first.hpp"   // load_first, store_first (and the instruction set's vector width)
#if defined(__SSE__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including lrn_impl.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace lrn {

constexpr int kLanes = kVecBytes / int(sizeof(float));   // floats per vector: 16 AVX-512, 8 AVX2, 4 SSE
constexpr index_t kPixelBlock = 256;   // pixels per task (a multiple of kLanes): scratch rows stay in L1
// The backward prefetches its input and output rows this many channel steps ahead, into L2
// (Zen 4: 15% less time on 16x256x27x27 than one step ahead into L1, the same on 55x55;
// 128 or 512 pixels per task were 10-30% slower).
constexpr index_t kAhead = 3;

typedef float Floats __attribute__((vector_size(kLanes * sizeof(float))));
typedef double Doubles __attribute__((vector_size(kLanes * sizeof(double))));   // two vectors
using DoubleHalf = ::convkit::CONVKIT_ISA::Vec<double>::type;
template <class T> struct VecOf;
template <> struct VecOf<float> { typedef Floats type; };
template <> struct VecOf<double> { typedef Doubles type; };
template <class T> using Vec = typename VecOf<T>::type;

template <class T> inline Vec<T> load(const T* p) {
    Vec<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T> inline void store(T* p, Vec<T> v) { std::memcpy(p, &v, sizeof v); }
// The first `count` lanes from / to tensor memory (the last vector of a row); others read 0.
// The loops pass a compile-time count (Full) for every vector but that last one.
using Full = std::integral_constant<int, kLanes>;
template <class T> inline Vec<T> load_part(const T* p, Full) { return load(p); }
template <class T> inline void store_part(T* p, Vec<T> v, Full) { store(p, v); }
// The partial last vector: masked loads and stores (simd_first.hpp) where the instruction set
// has them; a memcpy of a run-time length had been a library call per row (Zen 5,
// 16x256x27x27 backward: 6-7% of the time). Floats is one instruction-set vector, Doubles two.
inline Floats load_part(const float* p, int count) { return load_first(p, count); }
inline void store_part(float* p, Floats v, int count) { store_first(p, v, count); }
inline Doubles load_part(const double* p, int count) {
    constexpr int half = kLanes / 2;
    const DoubleHalf parts[2] = {load_first(p, std::min(count, half)), load_first(p + half, std::max(count - half, 0))};
    Doubles v;
    std::memcpy(&v, parts, sizeof v);
    return v;
}
inline void store_part(double* p, Doubles v, int count) {
    constexpr int half = kLanes / 2;
    DoubleHalf parts[2];
    std::memcpy(parts, &v, sizeof v);
    store_first(p, parts[0], std::min(count, half));
    store_first(p + half, parts[1], std::max(count - half, 0));
}

// ------------------------------------------------------------------ scale^-beta
// apply(scale, beta, q, inv): q = scale^-beta, inv = 1 / scale.

inline Floats rsqrt_estimate(Floats a) {
#if defined(__AVX512F__)
    return (Floats)_mm512_rsqrt14_ps((__m512)a);
#elif defined(__AVX2__)
    return (Floats)_mm256_rsqrt_ps((__m256)a);
#elif defined(__SSE__)
    return (Floats)_mm_rsqrt_ps((__m128)a);
#else
    Floats r;
    for (int l = 0; l < kLanes; ++l) r[l] = 1.0f / std::sqrt(a[l]);
    return r;
#endif
}

// float, beta = 0.75, scale in [FLT_MIN, inf]. Estimates r ~ s^-1/2 and e ~ r^-1/2 = s^1/4
// (12 bits each) give q0 = r r e ~ s^-3/4; one Newton step on q^4 s^3 = 1, written
// h = (q0 s)^3 q0 so nothing overflows, refines it: q = q0 (5 - h) / 4 (rel. error < 1e-6);
// 1/s = (q q s)^2.
// Short dependency chains matter here: the loop is bound by how many are in flight.
// An infinite scale gives q = inv = 0 (x / inf).
struct FastThreeQuarters {
    static void apply(Floats s, float, Floats& q, Floats& inv) {
        const Floats zero = {};
        const auto infinite = s > zero + FLT_MAX;   // NaN compares false: it propagates
        const Floats r = rsqrt_estimate(s), e = rsqrt_estimate(r);
        const Floats q0 = (r * r) * e, t = q0 * s;
        const Floats h = (t * t) * (t * q0);
        q = infinite ? zero : q0 * (1.25f - 0.25f * h);
        const Floats rs = q * (q * s);          // s^-1/2
        inv = infinite ? zero : rs * rs;
    }
};

// Exact powers, one lane at a time.
template <class Power> struct ExactPow {
    template <class V, class T> static void apply(V s, T beta, V& q, V& inv) {
        for (int l = 0; l < kLanes; ++l) q[l] = T(1) / Power::of(s[l], beta);
        inv = T(1) / s;
    }
};
struct ThreeQuarters { template <class T> static T of(T v, T) { return std::sqrt(v * std::sqrt(v)); } };
struct Half { template <class T> static T of(T v, T) { return std::sqrt(v); } };
struct One { template <class T> static T of(T v, T) { return v; } };
struct AnyBeta { template <class T> static T of(T v, T beta) { return std::pow(v, beta); } };

// ------------------------------------------------------------------ sliding window sums

// Window sums of a stream of rows (one row = one channel's kPixelBlock pixels) over
// `size` consecutive rows of the padded stream. Row j enters at step j; window c covers
// padded rows [c, c + size - 1] and is complete at step c + size - 1. Blocks of `size`
// padded rows: a window starting a block is that block's full prefix sum; any other is the
// suffix sum of its first block plus the prefix sum of the next (built when the first
// block ends). A missing term (a block's first prefix, the suffix of a window that is one
// whole block) reads a row of zeros, so push() can run without branches (x + 0 == x, except
// that -0 becomes +0): the backward's two streams do; the forward's one skips those loads
// (fewer instructions there). Scratch: 2*size + 2 rows.
template <class T> struct SlidingSum {
    T* values;    // size rows: the current block's inputs
    T* suffix;    // size rows: suffix sums of the previous block
    T* prefix;    // 1 row: prefix sums of the current block so far
    T* zeros;     // 1 row of zeros
    index_t size;

    static index_t scratch_rows(index_t size) { return 2 * size + 2; }

    // The row-wide state of step j: where input j goes, where window j - size + 1 reads.
    struct Step {
        T* value_row;
        T* prefix;
        const T* prefix_before;   // the prefix sums so far, zeros if j starts a block
        const T* suffix_row;      // zeros: the window is one whole block (or none ends here)
        bool starts_block, whole_block;
    };
    Step step(index_t j) const {
        const index_t offset = j % size, start = j - (size - 1);
        const bool whole = !(start > 0 && start % size);
        return {values + offset * kPixelBlock, prefix, offset != 0 ? prefix : zeros,
                whole ? zeros : suffix + (start % size) * kPixelBlock, offset == 0, whole};
    }
    // Push one vector of row j at pixel i; returns the window sum ending at row j. Branches
    // (the forward) skip the zero rows; Branches = false (the backward) reads them.
    template <bool Branches = false> static Vec<T> push(const Step& st, index_t i, Vec<T> v) {
        store(st.value_row + i, v);
        const Vec<T> p = Branches && st.starts_block ? v : load(st.prefix_before + i) + v;
        store(st.prefix + i, p);
        return Branches && st.whole_block ? p : load(st.suffix_row + i) + p;
    }
    // push() of the vector already in the value row (written there by the caller).
    static Vec<T> push_stored(const Step& st, index_t i) {
        const Vec<T> p = load(st.prefix_before + i) + load(st.value_row + i);
        store(st.prefix + i, p);
        return load(st.suffix_row + i) + p;
    }
    // After the last row of a block: its suffix sums (len pixels), for the windows starting inside it.
    void finish_step(index_t j, index_t len) const {
        if (size == 1 || j % size != size - 1) return;   // size 1: every window is one block
        for (index_t i = 0; i < len; i += kLanes) {
            Vec<T> acc = load(values + (size - 1) * kPixelBlock + i);
            store(suffix + (size - 1) * kPixelBlock + i, acc);
            for (index_t o = size - 2; o >= 1; --o) {
                acc += load(values + o * kPixelBlock + i);
                store(suffix + o * kPixelBlock + i, acc);
            }
        }
    }
};

template <class T> SlidingSum<T> sliding_sum(T* scratch, index_t size) {
    T* zeros = scratch + (2 * size + 1) * kPixelBlock;
    std::fill(zeros, zeros + kPixelBlock, T(0));
    return {scratch, scratch + size * kPixelBlock, scratch + 2 * size * kPixelBlock, zeros, size};
}

// ------------------------------------------------------------------ kernels

// Calls body(i, count, interior) over the vectors of a row of len pixels, the last one
// partial (count lanes). `interior` (a compile-time flag): every stage of the step has its
// rows, so the vector loop carries no tests of that (most steps: all but the first and last
// few channels); the others test each condition.
template <class Body> inline void for_each_vector(index_t len, bool interior, Body&& body) {
    const auto row = [&](auto interior) {
        index_t i = 0;
        for (; i + kLanes <= len; i += kLanes) body(i, Full{}, interior);
        if (i < len) body(i, int(len - i), interior);
    };
    if (interior) row(std::true_type{});
    else row(std::false_type{});
}

// Per-task constants. The window reaches `before` channels below and `after` above; both
// are capped at C (a window never holds more than all C channels), so the scratch stays
// O(C) rows for any size; the divisor remains the requested size.
template <class T> struct Params {
    index_t c, stride, before, after, size;   // channels, channel stride (S), window: size = before + after + 1
    T k, coef, coef_grad, beta;               // k, alpha/size, 2 alpha beta/size, beta
};

template <class T> Params<T> params(const LrnSizes& s) {
    const index_t before = std::min(s.size / 2, s.c), after = std::min((s.size - 1) / 2, s.c);
    return {s.c, s.s, before, after, before + after + 1, T(s.k), T(s.alpha / double(s.size)),
            T(2.0 * s.alpha * s.beta / double(s.size)), T(s.beta)};
}

// One image's block of `len` pixels: x, y point at its first pixel in channel 0.
template <class T, class Pow>
void forward_block(T* y, const T* x, index_t len, const Params<T>& p, T* scratch) {
    const SlidingSum<T> squares = sliding_sum(scratch, p.size);
    const index_t channels = p.c, stride = p.stride, before = p.before, size = p.size;
    const T k = p.k, coef = p.coef, beta = p.beta;
    for (index_t j = 0; j < channels + size - 1; ++j) {
        const index_t in = j - before, out = j - (size - 1);   // channel entering; window completed
        const T* x_in = in >= 0 && in < channels ? x + in * stride : nullptr;
        const T* x_out = x + out * stride;
        T* y_out = y + out * stride;
        const auto st = squares.step(j);
        const auto body = [&](index_t i, auto count, auto interior) {
            const bool has_x = interior || x_in;
            if (has_x) __builtin_prefetch(x_in + stride + i);   // next step's rows
            if (interior) __builtin_prefetch(y_out + stride + i, 1);
            const Vec<T> a = has_x ? load_part(x_in + i, count) : Vec<T>{};
            const Vec<T> sum = SlidingSum<T>::template push<true>(st, i, a * a);
            if (!interior && out < 0) return;
            Vec<T> q, inv;
            Pow::apply(k + coef * sum, beta, q, inv);
            store_part(y_out + i, load_part(x_out + i, count) * q, count);
        };
        for_each_vector(len, x_in && out >= 0, body);
        squares.finish_step(j, len);
    }
}

// Scratch rows of backward_block: the two sliding sums and a ring of before + 1 rows of dy q.
inline index_t backward_scratch_rows(index_t size, index_t before) {
    return 2 * SlidingSum<float>::scratch_rows(size) + before + 1;
}

template <class T, class Pow>
void backward_block(T* grad_x, const T* grad_out, const T* x, index_t len, const Params<T>& p, T* scratch) {
    const index_t rows = SlidingSum<T>::scratch_rows(p.size);
    const SlidingSum<T> squares = sliding_sum(scratch, p.size);
    const SlidingSum<T> ts = sliding_sum(scratch + rows * kPixelBlock, p.size);
    T* dyq_ring = scratch + 2 * rows * kPixelBlock;   // before + 1 rows: dy q of the channels awaiting grad_x
    const index_t channels = p.c, stride = p.stride, before = p.before, after = p.after, size = p.size;
    const index_t padded = channels + size - 1, ring = before + 1;   // rows of each padded stream
    const T k = p.k, coef = p.coef, coef_grad = p.coef_grad, beta = p.beta;
    // Step j walks the pixel row twice, each loop with about half the live row pointers
    // (one loop keeping all of them live spilled them to the stack). First loop: x^2 of
    // channel j - before enters the squares stream; the scale of channel c = j - size + 1
    // is complete: q = scale^-beta, dy q goes to the ring, t straight into the t stream's
    // value row (its row c + after; zeros for the padding rows). Second loop: that row
    // enters the t stream, completing the t window of channel c - before, whose grad_x is
    // dy q - 2 alpha beta / size * x * t_sum.
    for (index_t j = 0; j < padded + before; ++j) {
        const index_t in = j - before, c = j - (size - 1), out = c - before;
        const T* x_in = in >= 0 && in < channels ? x + in * stride : nullptr;
        const bool has_c = c >= 0 && c < channels, t_step = j >= before;   // t row c + after = j - before
        if (j < padded || t_step) {
            const auto sq = j < padded ? squares.step(j) : typename SlidingSum<T>::Step{};
            T* t_row = t_step ? ts.step(j - before).value_row : nullptr;
            T* dyq_c = dyq_ring + (has_c ? c % ring : 0) * kPixelBlock;
            const T* g_c = grad_out + c * stride;
            const T* x_c = x + c * stride;
            const auto first = [&](index_t i, auto count, auto interior) {
                if (interior || x_in) {   // the rows of the step kAhead on, into L2
                    __builtin_prefetch(x_in + kAhead * stride + i, 0, 1);
                    __builtin_prefetch(g_c + (after + kAhead) * stride + i, 0, 1);
                }
                if (!interior && j >= padded) return store(t_row + i, Vec<T>{});   // past the last channel
                const Vec<T> a = interior || x_in ? load_part(x_in + i, count) : Vec<T>{};
                const Vec<T> scale = k + coef * SlidingSum<T>::push(sq, i, a * a);
                if (!interior && !has_c) {
                    if (t_step) store(t_row + i, Vec<T>{});
                    return;
                }
                Vec<T> q, inv;
                Pow::apply(scale, beta, q, inv);
                const Vec<T> g = load_part(g_c + i, count);
                store(dyq_c + i, g * q);
                store(t_row + i, g * load_part(x_c + i, count) * (q * inv));
            };
            for_each_vector(len, x_in && has_c, first);
            if (j < padded) squares.finish_step(j, len);
        }
        if (!t_step) continue;
        const auto tt = ts.step(j - before);
        const T* dyq_out = dyq_ring + (out >= 0 ? out % ring : 0) * kPixelBlock;
        const T* x_out = x + out * stride;
        T* gx_out = grad_x + out * stride;
        const auto second = [&](index_t i, auto count, auto interior) {
            if (interior) __builtin_prefetch(gx_out + kAhead * stride + i, 1, 1);   // the output row kAhead steps on
            const Vec<T> t_sum = SlidingSum<T>::push_stored(tt, i);
            if (!interior && out < 0) return;
            const Vec<T> xo = load_part(x_out + i, count);
            store_part(gx_out + i, load(dyq_out + i) - coef_grad * xo * t_sum, count);
        };
        for_each_vector(len, out >= 0, second);
        ts.finish_step(j - before, len);
    }
}

// ------------------------------------------------------------------ windows in registers
// For the common window sizes (3, 5), float, the kernels keep every window term in registers:
// a column of kLanes pixels walks the channels and carries the last Size - 1 squares and, in
// the backward, the last Size - 1 t terms and `before` dy q values; each step loads x (and
// dy) and stores one output vector, and touches no scratch rows (the backward row kernel
// above moves ~20 vectors through L1 per step).
// To keep the memory traffic in whole rows, a task (one image, kColumnBlock columns) walks
// the channels in passes of kColumnPass steps: each pass runs every column of the block in
// turn, each carrying its window terms from the previous pass in a ColumnState. A column
// prefetches its lines of the next pass into L2 as it goes.
// A window's sum is taken in pairs, ((a + b) + (c + d)) + e in channel order (window_sum);
// results do not depend on the thread count.
// Zen 5, float, size 5, 2 threads, in-process A/B (16x96x55x55 / 16x256x27x27), backward:
// 1.48 / 0.73 ms with the row kernel, 0.96 / 0.48 ms this way (AVX2 variant: 10% less time,
// generic: 20%); passes of 8-32 steps, blocks of 8-32 columns and prefetch hints T0-T2 were
// all within the noise of each other. float only: a vector of kLanes doubles is two
// registers, and the backward's size-5 state (20 registers) spilled: 1.6x the row kernel's time.
constexpr index_t kColumnBlock = 16;   // columns of kLanes pixels per task
constexpr index_t kColumnPass = 16;    // channel steps per pass (and prefetch distance)

template <int Size, bool Backward> struct Window {
    static_assert(Size == 3 || Size == 5, "windows of 3 and 5 channels");
    static constexpr int before = Size / 2, after = (Size - 1) / 2;   // channels below / above c
    // Step j: x[j] enters and channel j - after gets its scale; the output of step j is
    // channel j - lag (the backward's t window of channel o, [o - after, o + before], is
    // complete at j = o + Size - 1).
    static constexpr int lag = Backward ? Size - 1 : after;
};

// The window terms a column carries from one pass to the next, oldest first.
template <class T, int Size, bool Backward> struct ColumnState {
    Vec<T> squares[Size - 1];   // x^2 of the last Size - 1 channels entered
};
template <class T, int Size> struct ColumnState<T, Size, true> {
    Vec<T> squares[Size - 1];
    Vec<T> ts[Size - 1];                         // t of the last Size - 1 channels scaled
    Vec<T> dyq[Window<Size, true>::before];      // dy q of the channels awaiting grad_x
};

// The window's sum, older terms first, in pairs: ((a + b) + (c + d)) + newest.
template <class V, int N> inline V window_sum(const V (&older)[N], V newest) {
    if constexpr (N == 4) return ((older[0] + older[1]) + (older[2] + older[3])) + newest;
    else return (older[0] + older[1]) + newest;
}

// Steps [j0, j1) of one column: out (y or grad_x), grad_out (backward only) and x at its
// first pixel in channel 0; count lanes.
template <class T, class Pow, int Size, bool Backward, class Count>
inline void column_pass(T* out, const T* grad_out, const T* x, const Params<T>& p, Count count, index_t j0,
                        index_t j1, bool next_image, ColumnState<T, Size, Backward>& state) {
    using W = Window<Size, Backward>;
    constexpr int before = W::before, after = W::after, lag = W::lag;
    const index_t channels = p.c, stride = p.stride;
    const T k = p.k, coef = p.coef, coef_grad = p.coef_grad, beta = p.beta;
    ColumnState<T, Size, Backward> w = state;   // in registers: every index below is a compile-time constant
    // This column's lines of step j of the next pass; past the last channel, those of the first
    // pass over the same pixels of the next image (when there is one: next_image), a task this
    // thread runs a few tasks later (tasks run image by image). Without them each task's first
    // pass ran from memory: 8-10% more time. The steady loop is split where the channels end: a
    // test per step cost 8% (its two registers were spilled).
    // always_inline: GCC found this call free of side effects (prefetches only) and removed it.
    const auto ahead = [&](index_t j) __attribute__((always_inline)) {
        __builtin_prefetch(x + (j + kColumnPass) * stride, 0, 1);
        if constexpr (Backward) __builtin_prefetch(grad_out + (j - after + kColumnPass) * stride, 0, 1);
        __builtin_prefetch(out + (j - lag + kColumnPass) * stride, 1, 1);
    };
    const auto step = [&](index_t j, auto has_in, auto has_c, auto has_out) {
        const index_t c = j - after, o = j - lag;
        Vec<T> square = {}, t = {}, dyq = {};
        if (has_in) {
            const Vec<T> a = load_part(x + j * stride, count);
            square = a * a;
        }
        if (has_c) {
            Vec<T> q, inv;
            Pow::apply(k + coef * window_sum(w.squares, square), beta, q, inv);
            const Vec<T> xc = load_part(x + c * stride, count);
            if constexpr (Backward) {
                dyq = load_part(grad_out + c * stride, count) * q;
                t = dyq * (xc * inv);
            } else {
                store_part(out + c * stride, xc * q, count);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i + 1 < Size - 1; ++i) w.squares[i] = w.squares[i + 1];
        w.squares[Size - 2] = square;
        if constexpr (Backward) {
            if (has_out) {
                const Vec<T> xo = load_part(x + o * stride, count);
                store_part(out + o * stride, w.dyq[0] - coef_grad * xo * window_sum(w.ts, t), count);
            }
#pragma GCC unroll 8
            for (int i = 0; i + 1 < Size - 1; ++i) w.ts[i] = w.ts[i + 1];
            w.ts[Size - 2] = t;
#pragma GCC unroll 8
            for (int i = 0; i + 1 < before; ++i) w.dyq[i] = w.dyq[i + 1];
            w.dyq[before - 1] = dyq;
        }
    };
    using Y = std::true_type;
    using N = std::false_type;
    if (j0 >= lag && j1 <= channels) {   // every stage has its channel: no tests
        const index_t split = next_image ? j1 : std::max(j0, std::min(j1, channels - kColumnPass));
        for (index_t j = j0; j < split; ++j) {
            ahead(j);
            step(j, Y{}, Y{}, Y{});
        }
        for (index_t j = split; j < j1; ++j) step(j, Y{}, Y{}, Y{});
    } else {   // the first and last passes (an input without c comes before any output)
        for (index_t j = j0; j < j1; ++j) {
            if (next_image || j + kColumnPass < channels) ahead(j);
            const bool in = j < channels, has_c = j >= after && j - after < channels, has_out = j >= lag;
            if (in && has_c) has_out ? step(j, Y{}, Y{}, Y{}) : step(j, Y{}, Y{}, N{});
            else if (in) step(j, Y{}, N{}, N{});
            else if (has_c) has_out ? step(j, N{}, Y{}, Y{}) : step(j, N{}, Y{}, N{});
            else has_out ? step(j, N{}, N{}, Y{}) : step(j, N{}, N{}, N{});
        }
    }
    state = w;
}

// One task: pixels [0, len) of one image's planes (pointers at its first pixel in channel 0);
// next_image: another image follows this one.
template <class T, class Pow, int Size, bool Backward>
void column_block(T* out, const T* grad_out, const T* x, index_t len, bool next_image, const Params<T>& p) {
    ColumnState<T, Size, Backward> states[kColumnBlock] = {};
    const index_t columns = ceil_div(len, index_t(kLanes)), steps = p.c + Window<Size, Backward>::lag;
    for (index_t j0 = 0; j0 < steps; j0 += kColumnPass) {
        const index_t j1 = std::min(j0 + kColumnPass, steps);
        for (index_t col = 0; col < columns; ++col) {
            const index_t at = col * kLanes, rest = len - at;
            const T* g = Backward ? grad_out + at : nullptr;
            if (rest >= kLanes)
                column_pass<T, Pow, Size, Backward>(out + at, g, x + at, p, Full{}, j0, j1, next_image, states[col]);
            else
                column_pass<T, Pow, Size, Backward>(out + at, g, x + at, p, int(rest), j0, j1, next_image, states[col]);
        }
    }
}

// Runs the column kernel over every (image, block of columns) and returns true when it covers
// this case (float, a window of 3 or 5 channels); false: the row kernels' case.
template <class T, class Pow, bool Backward>
bool by_columns(T* out, const T* grad_out, const T* x, const LrnSizes& s, const Params<T>& p) {
    if constexpr (std::is_same<T, float>::value) {
        const auto run = [&](auto size) {
            constexpr index_t block = kColumnBlock * kLanes;
            const index_t blocks = ceil_div(s.s, block);
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
            for (index_t n = 0; n < s.n; ++n)
                for (index_t b = 0; b < blocks; ++b) {
                    const index_t first = n * s.c * s.s + b * block;
                    column_block<T, Pow, decltype(size)::value, Backward>(
                        out + first, Backward ? grad_out + first : nullptr, x + first,
                        std::min(block, s.s - b * block), n + 1 < s.n, p);
                }
            return true;
        };
        if (s.size == 5) return run(std::integral_constant<int, 5>{});
        if (s.size == 3) return run(std::integral_constant<int, 3>{});
    }
    return false;
}

// Runs block(task pointers..., len, params, scratch) over every (image, pixel block).
template <class T, class Block>
void for_each_block(const LrnSizes& s, index_t scratch_rows, Block&& block) {
    const index_t blocks = ceil_div(s.s, kPixelBlock), per_thread = scratch_rows * kPixelBlock;
    AlignedBuffer<T> scratch = aligned_buffer<T>(num_threads() * per_thread);
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
    for (index_t n = 0; n < s.n; ++n)
        for (index_t b = 0; b < blocks; ++b) {
            const index_t p0 = b * kPixelBlock;
            block(n * s.c * s.s + p0, std::min(kPixelBlock, s.s - p0), scratch.get() + thread_index() * per_thread);
        }
}

// Calls kernel(Pow{}) with the scale^-beta policy for these parameters.
template <class T, class Kernel> void with_pow(const LrnSizes& s, Kernel&& kernel) {
    const bool fast = std::is_same<T, float>::value && s.beta == 0.75 && s.k >= FLT_MIN && s.alpha >= 0;
    if constexpr (std::is_same<T, float>::value)
        if (fast) return kernel(FastThreeQuarters{});
    if (s.beta == 0.75) kernel(ExactPow<ThreeQuarters>{});
    else if (s.beta == 0.5) kernel(ExactPow<Half>{});
    else if (s.beta == 1.0) kernel(ExactPow<One>{});
    else kernel(ExactPow<AnyBeta>{});
}

}  // namespace lrn

template <class T> void local_response_norm_forward(T* y, const T* x, const LrnSizes& s) {
    // y, x: (N, C, S)
    const lrn::Params<T> p = lrn::params<T>(s);
    lrn::with_pow<T>(s, [&](auto pow) {
        using Pow = decltype(pow);
        if (lrn::by_columns<T, Pow, false>(y, nullptr, x, s, p)) return;
        const index_t rows = lrn::SlidingSum<T>::scratch_rows(p.size);
        lrn::for_each_block<T>(s, rows, [&](index_t first, index_t len, T* scratch) {
            lrn::forward_block<T, Pow>(y + first, x + first, len, p, scratch);
        });
    });
}

template <class T> void local_response_norm_backward(T* grad_x, const T* grad_out, const T* x, const LrnSizes& s) {
    // grad_x, grad_out, x: (N, C, S)
    const lrn::Params<T> p = lrn::params<T>(s);
    const index_t rows = lrn::backward_scratch_rows(p.size, p.before);
    lrn::with_pow<T>(s, [&](auto pow) {
        using Pow = decltype(pow);
        if (lrn::by_columns<T, Pow, true>(grad_x, grad_out, x, s, p)) return;
        lrn::for_each_block<T>(s, rows, [&](index_t first, index_t len, T* scratch) {
            lrn::backward_block<T, Pow>(grad_x + first, grad_out + first, x + first, len, p, scratch);
        });
    });
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
