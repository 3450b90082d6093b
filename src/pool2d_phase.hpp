// convkit/src/pool2d_phase.hpp -- the phase buffer of the windowed pooling kernels: its
// layout and the row copies into and out of it (included by pool2d_impl.hpp, compiled once
// per instruction set).
//
// Phase layout. Output (oh, ow) reads, for window tap (kh, kw), the padded input element
// (oh*sh + kh*dh, ow*sw + kw*dw): strided walks. So the padded input rows of a task are
// first copied into a per-thread buffer (padding filled with -inf for max, 0 for avg),
// de-interleaved by stride along both axes: padded element (r, c) is stored in phase
// (r % sh, c % sw) at row r / sh, position c / sw of that phase (rows of `len` values).
// Writing kh*dh = qh*sh + rh and kw*dw = qw*sw + rw, output (oh, ow) then reads
//     phase (rh, rw), row oh + qh, position ow + qw   =   tap_at(kh, kw) + oh*len + ow,
// so with the outputs numbered j = oh*len + ow (len >= OW; the few extra columns are
// computed and dropped), every tap is ONE contiguous run over all outputs of the task:
// branch-free, no bounds checks, vectorised in register-sized blocks of outputs that stay
// in registers while all taps stream past (pool2d_impl.hpp).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>
#include "pool2d.hpp"

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including pool2d_phase.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Where padded input element (r, c) of a task's rows lives (see the top of this file).
struct PhaseLayout {
    index_t sh, sw, pad_w;
    index_t len;         // positions per row of one phase: ceil(padded width / sw)
    index_t rows;        // rows per row phase: ceil(stored rows / sh)
    index_t col_phase;   // distance between column phases: rows*len
    index_t row_phase;   // distance between row phases: sw*rows*len
    index_t size;        // values in all: sh*row_phase

    PhaseLayout(const Pool2dSizes& s, index_t rows_in, index_t width)
        : sh(s.stride_h), sw(s.stride_w), pad_w(s.pad_w), len(ceil_div(width, s.stride_w)),
          rows(ceil_div(rows_in, s.stride_h)), col_phase(rows * len), row_phase(sw * col_phase),
          size(sh * row_phase) {}

    index_t at(index_t r, index_t c) const { return r % sh * row_phase + c % sw * col_phase + r / sh * len + c / sw; }
};

// Padded width holding the input and every window (ceil_mode windows may run past the padding).
inline index_t padded_width(const Pool2dSizes& s) {
    return std::max(s.pad_w + s.w, windows_span(s.ow, s.stride_w, s.kw, s.dil_w));
}

// How every padded row maps onto its sw column phases. Positions [j_in, j_end) of every
// phase hold input columns (phase rw, position j: column j*sw + rw - pad_w); the other
// positions, the "edges", are listed once: offset from the row's start and input column
// (-1: padding).
struct PhaseRuns {
    index_t j_in, j_end;
    std::vector<index_t> edge_at, edge_col;

    PhaseRuns(const PhaseLayout& p, index_t w)
        : j_in(std::min(p.len, ceil_div(p.pad_w, p.sw))), j_end(std::min(p.len, std::max(j_in, (w + p.pad_w) / p.sw))) {
        for (index_t rw = 0; rw < p.sw; ++rw)
            for (index_t j = 0; j < p.len; ++j) {
                if (j == j_in) j = j_end;
                if (j == p.len) break;
                const index_t c = j * p.sw + rw - p.pad_w;
                edge_at.push_back(rw * p.col_phase + j);
                edge_col.push_back(c >= 0 && c < w ? c : -1);
            }
    }
};

// Calls row(at, i) for buffer rows r = r0 + i, i in [0, n), at = p.at(r, 0) (without divisions).
template <class Row>
void for_each_buffer_row(const PhaseLayout& p, index_t r0, index_t n, Row row) {
    index_t rh = r0 % p.sh, q = r0 / p.sh;   // row phase and row within the phase
    for (index_t r = r0; r < r0 + n; ++r) {
        row(rh * p.row_phase + q * p.len, r - r0);
        if (++rh == p.sh) rh = 0, ++q;
    }
}

// One buffer row d = input row src, padded (S: see store_rows_as).
template <int S, class T>
inline void store_row(T* __restrict d, const T* __restrict src, const PhaseLayout& p, const PhaseRuns& runs, T fill) {
    const index_t sw = S ? S : p.sw, cp = p.col_phase;
    for (std::size_t e = 0; e < runs.edge_at.size(); ++e)
        d[runs.edge_at[e]] = runs.edge_col[e] >= 0 ? src[runs.edge_col[e]] : fill;
    const T* s = src + runs.j_in * sw - p.pad_w;   // s[0]: padded column j_in*sw, an input column
    T* di = d + runs.j_in;
    for (index_t j = 0; j < runs.j_end - runs.j_in; ++j)
        for (index_t rw = 0; rw < sw; ++rw) di[rw * cp + j] = s[j * sw + rw];
}

// Buffer rows r0 + [0, n) = input rows ih0 + [0, n) of plane (outside the input: all `fill`).
// S > 0: the stride sw as a compile-time constant, so GCC vectorises the de-interleave
// with permutes; S = 0: any stride.
template <int S, class T>
void store_rows_as(T* buf, index_t r0, const T* plane, index_t ih0, index_t n, index_t h, index_t w,
                   const PhaseLayout& p, const PhaseRuns& runs, T fill) {
    for_each_buffer_row(p, r0, n, [&](index_t at, index_t i) {
        const index_t ih = ih0 + i;
        if (ih >= 0 && ih < h) store_row<S>(buf + at, plane + ih * w, p, runs, fill);
        else for (index_t rw = 0; rw < p.sw; ++rw) std::fill_n(buf + at + rw * p.col_phase, p.len, fill);
    });
}

template <class T>
void store_rows(T* buf, index_t r0, const T* plane, index_t ih0, index_t n, const Pool2dSizes& s,
                const PhaseLayout& p, const PhaseRuns& runs, T fill) {
    switch (p.sw) {
        case 1: return store_rows_as<1>(buf, r0, plane, ih0, n, s.h, s.w, p, runs, fill);
        case 2: return store_rows_as<2>(buf, r0, plane, ih0, n, s.h, s.w, p, runs, fill);
        case 3: return store_rows_as<3>(buf, r0, plane, ih0, n, s.h, s.w, p, runs, fill);
        default: return store_rows_as<0>(buf, r0, plane, ih0, n, s.h, s.w, p, runs, fill);
    }
}

// The inverse for a whole plane: input rows [0, H) = the input positions of buffer rows pad_h + [0, H).
template <int S, class T>
inline void load_row(T* __restrict dst, const T* __restrict d, const PhaseLayout& p, const PhaseRuns& runs) {
    const index_t sw = S ? S : p.sw, cp = p.col_phase;
    for (std::size_t e = 0; e < runs.edge_at.size(); ++e)
        if (runs.edge_col[e] >= 0) dst[runs.edge_col[e]] = d[runs.edge_at[e]];
    T* x = dst + runs.j_in * sw - p.pad_w;
    const T* di = d + runs.j_in;
    for (index_t j = 0; j < runs.j_end - runs.j_in; ++j)
        for (index_t rw = 0; rw < sw; ++rw) x[j * sw + rw] = di[rw * cp + j];
}

template <int S, class T>
void load_plane_as(T* plane, const T* buf, const Pool2dSizes& s, const PhaseLayout& p, const PhaseRuns& runs) {
    for_each_buffer_row(p, s.pad_h, s.h, [&](index_t at, index_t ih) {
        load_row<S>(plane + ih * s.w, buf + at, p, runs);
    });
}

template <class T>
void load_plane(T* plane, const T* buf, const Pool2dSizes& s, const PhaseLayout& p, const PhaseRuns& runs) {
    switch (p.sw) {
        case 1: return load_plane_as<1>(plane, buf, s, p, runs);
        case 2: return load_plane_as<2>(plane, buf, s, p, runs);
        case 3: return load_plane_as<3>(plane, buf, s, p, runs);
        default: return load_plane_as<0>(plane, buf, s, p, runs);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
