// convkit/src/depthwise_buffers.hpp -- the zero-padded plane buffers the depthwise kernels
// (depthwise_impl.hpp) read, their layouts, and how threads walk over planes.
#pragma once
#include <vector>
#include "depthwise_rows.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including this header (see depthwise_impl.hpp)"
#endif

namespace convkit {
namespace CONVKIT_ISA {
namespace depthwise {

// ------------------------------------------------------------------ threads and planes
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

// ------------------------------------------------------------------ zero-padded plane buffers
// d[i] = s[i] for i in [0, n); may also write zeros to d[n, round_up(n, VL)) (a full store
// instead of a slow partial one; PlaneCopy leaves room for it). Reads nothing past s[n-1].
template <class T>
inline void copy_run(T* __restrict d, const T* __restrict s, index_t n) {
    constexpr int VL = lanes<T>();
    index_t i = 0;
    for (; i + VL <= n; i += VL) store(d + i, load(s + i));
    if (i < n) store(d + i, load_first(s + i, n - i));
}

// even[j] = s[2j], odd[j] = s[2j+1] for the n source values s[0, n); like copy_run it may
// write zeros past the last value of each output.
template <class T>
inline void deinterleave(T* __restrict even, T* __restrict odd, const T* __restrict s, index_t n) {
    constexpr int VL = lanes<T>();
    index_t j = 0;   // pairs done
    for (; 2 * j + 2 * VL <= n; j += VL) {
        const V<T> a = load(s + 2 * j), b = load(s + 2 * j + VL);
        store(even + j, evens<T>(a, b));
        store(odd + j, odds<T>(a, b));
    }
    if (2 * j < n) {
        const index_t m = n - 2 * j;   // 1 .. 2VL - 1 values left
        const V<T> a = load_first(s + 2 * j, std::min<index_t>(m, VL));
        const V<T> b = m > VL ? load_first(s + 2 * j + VL, m - VL) : V<T>{};
        store(even + j, evens<T>(a, b));
        store(odd + j, odds<T>(a, b));
    }
}

// Copies the same part of every source plane (src_h x src_w) into a zero-padded buffer of
// `phases` phase planes, each `rows` rows of `run` values (+ VL values of room). Entry i of
// row r of phase p takes source row r - row_shift, column p + i*phases - col_shift; entries
// outside the source, or at columns >= col_limit, are zero. The buffer is cleared once per
// call (clear) and every plane then writes the same entries, so the zeros stay; rows are
// written in address order, so the zero spill of copy_run/deinterleave past a row's last
// value only lands on entries that are zero or written after it (or in the room).
struct PlaneCopy {
    index_t src_w = 0, rows = 0, run = 0, phases = 1, plane = 0;   // plane: values per phase plane
    index_t row_begin = 0, row_end = 0, row_shift = 0;           // buffer rows holding source rows
    index_t col_shift = 0, limit = 0;                            // source columns [0, limit) are read
    std::vector<index_t> lo, hi, first;                          // per phase: entries [lo, hi) <- columns first + i*phases

    template <class T>
    static PlaneCopy make(index_t src_h, index_t src_w, index_t rows, index_t row_shift,
                          index_t phases, index_t run, index_t col_shift, index_t col_limit) {
        PlaneCopy c;
        c.src_w = src_w; c.rows = rows; c.run = run; c.phases = phases;
        c.plane = rows * run + lanes<T>();
        c.row_shift = row_shift;
        c.row_begin = std::max<index_t>(0, row_shift);
        c.row_end = std::min(rows, src_h + row_shift);
        c.col_shift = col_shift;
        c.limit = std::max<index_t>(0, std::min(src_w, col_limit));
        for (index_t p = 0; p < phases; ++p) {
            const index_t first = p - col_shift;
            index_t lo = first >= 0 ? 0 : ceil_div(-first, phases);
            index_t hi = first < c.limit ? ceil_div(c.limit - first, phases) : 0;
            hi = std::min(hi, run);
            lo = std::min(lo, hi);
            c.lo.push_back(lo); c.hi.push_back(hi); c.first.push_back(first);
        }
        return c;
    }
    index_t size() const { return phases * plane; }
    template <class T> void clear(T* buf) const { std::fill(buf, buf + size(), T(0)); }
    template <class T> void operator()(T* buf, const T* src) const {
        if (phases == 2) {   // column c goes to phase (c + col_shift) % 2, entry (c + col_shift) / 2
            const index_t pe = col_shift % 2, ie = col_shift / 2, io = (col_shift + 1) / 2;
            T* even = buf + pe * plane + ie;         // source columns 0, 2, 4, ...
            T* odd = buf + (1 - pe) * plane + io;    // source columns 1, 3, 5, ...
            for (index_t r = row_begin; r < row_end; ++r)
                deinterleave(even + r * run, odd + r * run, src + (r - row_shift) * src_w, limit);
            return;
        }
        for (index_t r = row_begin; r < row_end; ++r) {
            const T* s = src + (r - row_shift) * src_w;
            for (index_t p = 0; p < phases; ++p) {
                T* d = buf + p * plane + r * run + lo[p];
                const T* from = s + first[p] + lo[p] * phases;
                if (phases == 1) copy_run(d, from, hi[p] - lo[p]);
                else for (index_t i = 0; i < hi[p] - lo[p]; ++i) d[i] = from[i * phases];
            }
        }
    }
};

// Buffer of one input plane (forward, backward-weight): sw phase planes (column phases) of
// padded rows r = ih + ph; entry i of phase p is padded column p + i*sw (iw = p + i*sw - pw).
// Output (oh, ow) with tap (kh, kw) reads
//   buf[oh*pitch + tap_offset[kh*KW + kw] + ow],  pitch = sh*len,
//   tap_offset = ((kw*dw) % sw)*plane + kh*dh*len + (kw*dw)/sw.
struct InputLayout {
    index_t len;                       // per row: round_up(OW, VL) + (KW-1)*dw/sw (vector tails stay inside)
    index_t pitch;                     // from one output row to the next: sh*len
    std::vector<index_t> tap_offset;
    PlaneCopy copy;                    // rows (OH-1)*sh + (KH-1)*dh + 1, columns < (OW-1)*sw + (KW-1)*dw + 1

    template <class T> static InputLayout of(const Conv2dSizes& s) {
        InputLayout L;
        L.len = round_up(s.ow, lanes<T>()) + (s.kw - 1) * s.dil_w / s.stride_w;
        L.pitch = s.stride_h * L.len;
        const index_t rows = windows_span(s.oh, s.stride_h, s.kh, s.dil_h);
        const index_t cols = windows_span(s.ow, s.stride_w, s.kw, s.dil_w);
        L.copy = PlaneCopy::make<T>(s.h, s.w, rows, s.pad_h, s.stride_w, L.len, s.pad_w, cols - s.pad_w);
        for (index_t kh = 0; kh < s.kh; ++kh)
            for (index_t kw = 0; kw < s.kw; ++kw) {
                const index_t q = kw * s.dil_w;
                L.tap_offset.push_back((q % s.stride_w) * L.copy.plane + kh * s.dil_h * L.len + q / s.stride_w);
            }
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
        G.copy = PlaneCopy::make<T>(s.oh, s.ow, rows, G.top, 1, row, G.left, s.ow);
        return G;
    }
    // First buffer value the rows of phase rh, column phase rho read (before tap offsets).
    index_t start(index_t rh, index_t rho, const Conv2dSizes& s) const {
        return ((ih0[rh] + s.pad_h) / s.stride_h + top) * copy.run + t0[rho] + left;
    }
};

// A grad_x plane (=|+=) its interleaved column phases: value k of phase (rh, rho), row r goes
// to row ih0[rh] + r*sh, column (t0[rho] + k)*sw + rho - pw. Block (rh, rho) starts at
// phases + (rh*sw + rho)*block, its rows count_max apart (rounded up to VL: room to read).
template <class T>
void interleave(T* __restrict gx, const Conv2dSizes& s, const GradLayout& G, const T* phases,
                index_t block, bool accumulate) {
    constexpr int VL = lanes<T>();
    const index_t sh = s.stride_h, sw = s.stride_w, w = s.w;
    for (index_t ih = 0; ih < s.h; ++ih) {   // rows in order: a full store may run into the next row
        const index_t rh = (ih + s.pad_h) % sh, r = (ih - G.ih0[rh]) / sh;
        const T* row_phases = phases + rh * sw * block + r * G.count_max;
        T* g = gx + ih * w;
        if (sw == 2 && !accumulate) {   // a zip: even columns from one phase, odd from the other
            const index_t re = s.pad_w % 2;   // iw = 2k + rho - pw is even <=> rho == pw mod 2
            const T* even = row_phases + re * block;
            const T* odd = row_phases + (1 - re) * block;
            auto zip = [&](index_t k) {   // grad_x values [2k, 2k + 2VL)
                const V<T> e = load(even + k), o = load(odd + k);
                store(g + 2 * k, zip_low<T>(e, o));
                store(g + 2 * k + VL, zip_high<T>(e, o));
            };
            index_t k = 0;
            for (; 2 * (k + VL) <= w; k += VL) zip(k);
            if (2 * k == w) continue;
            if (2 * (k + VL) <= (s.h - ih) * w) { zip(k); continue; }   // spill stays in the plane
            const index_t even_w = w - w % 2;   // an odd last value is an even column: its own store
            if (w % 2) g[w - 1] = even[(w - 1) / 2];
            if (even_w >= 2 * VL) { zip((even_w - 2 * VL) / 2); continue; }   // overlap: equal values
            for (; 2 * k < even_w; ++k) { g[2 * k] = even[k]; g[2 * k + 1] = odd[k]; }
            continue;
        }
        for (index_t rho = 0; rho < sw; ++rho) {
            T* d = g + G.t0[rho] * sw + rho - s.pad_w;
            const T* t = row_phases + rho * block;
            if (accumulate) for (index_t k = 0; k < G.count[rho]; ++k) d[k * sw] += t[k];
            else for (index_t k = 0; k < G.count[rho]; ++k) d[k * sw] = t[k];
        }
    }
}

}  // namespace depthwise
}  // namespace CONVKIT_ISA
}  // namespace convkit
