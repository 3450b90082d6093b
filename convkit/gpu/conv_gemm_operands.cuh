// The operands of conv2d.cu's implicit-GEMM kernels (v2, v3, tf32): per-thread "problem"
// objects for gemm_tile.cuh's gemm_tile_accumulate, one per pass, templated on the tile
// geometry (which A / B elements a thread fetches each step: see gemm_tile.cuh). Each gathers
// its operands on the fly from the NCHW tensors (im2col / the backward-data gather are never
// materialised) and keeps one k cursor per operand as mixed-radix digits (no divisions per step).
#pragma once
#include "common.cuh"
#include "conv_common.cuh"

// Forward, one block tile: A = weight rows of group g, B = im2col(x) columns (n, oh, ow).
template <typename Tile, typename T>
struct ForwardOperands {
    const ConvSizes& s;
    const T* x;
    const T* w_group;      // weight[g*Cog], rows of K = Cig*KH*KW
    index_t k_total, row0;
    index_t ka;            // A cursor: this thread's k (t % BK, + BK per step)
    Digits3 kb, kb_step;   // B cursor: this thread's k = (channel, kh, kw) (t / Tile::LANES, + BK per step)
    index_t x_off[4], ih0[4], iw0[4];   // B columns t % LANES + LANES*j: image/group offset (-1: none), window origin

    __device__ ForwardOperands(const ConvSizes& s_, const T* x_, const T* weight, index_t g, index_t row0_, index_t col0)
        : s(s_), x(x_), w_group(weight + g * s_.cog * s_.cig * s_.khw), k_total(s_.cig * s_.khw), row0(row0_) {
        const int t = threadIdx.x;
        ka = t % Tile::BK;
        kb = Digits3::of(t / Tile::LANES, s.kh, s.kw);
        kb_step = Digits3::of(Tile::BK, s.kh, s.kw);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % Tile::LANES + Tile::LANES * j, img = col / s.ohw, pix = col % s.ohw;
            x_off[j] = img < s.n ? (img * s.c_in + g * s.cig) * s.hw : -1;
            ih0[j] = (pix / s.ow) * s.stride_h - s.pad_h;
            iw0[j] = (pix % s.ow) * s.stride_w - s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        for (int i = 0; i < 4; ++i) {
            const index_t row = row0 + t / Tile::BK + Tile::LANES * i;
            a[i] = (row < s.cog && ka < k_total) ? __ldg(&w_group[row * k_total + ka]) : T(0);
        }
        ka += Tile::BK;
        const bool k_ok = kb.hi < s.cig;
        const index_t dh = kb.mid * s.dil_h, dw = kb.lo * s.dil_w, plane = kb.hi * s.hw;
        for (int j = 0; j < 4; ++j) {
            const index_t ih = ih0[j] + dh, iw = iw0[j] + dw;
            const bool ok = k_ok && x_off[j] >= 0 && inside(ih, s.h) && inside(iw, s.w);
            b[j] = ok ? __ldg(&x[x_off[j] + plane + ih * s.w + iw]) : T(0);
        }
        kb.advance(kb_step, s.kh, s.kw);
    }
};

// Backward-data, one block tile: A = W[g]^T (row c, column k = (m, kh, kw)), B = dy gathered
// for the dx columns (n, ih, iw).
template <typename Tile, typename T>
struct BackwardDataOperands {
    const ConvSizes& s;
    const T* dy;
    const T* w_group;      // weight[g*Cog]
    index_t row0;
    Digits3 ka, kb, k_step;              // A and B cursors, k = (m, kh, kw)
    index_t dy_off[4], ihp[4], iwp[4];   // B columns: dy image/group offset (-1: none), ih + pad_h, iw + pad_w

    __device__ BackwardDataOperands(const ConvSizes& s_, const T* dy_, const T* weight, index_t g, index_t row0_, index_t col0)
        : s(s_), dy(dy_), w_group(weight + g * s_.cog * s_.cig * s_.khw), row0(row0_) {
        const int t = threadIdx.x;
        ka = Digits3::of(t % Tile::BK, s.kh, s.kw);
        kb = Digits3::of(t / Tile::LANES, s.kh, s.kw);
        k_step = Digits3::of(Tile::BK, s.kh, s.kw);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % Tile::LANES + Tile::LANES * j, img = col / s.hw, pix = col % s.hw;
            dy_off[j] = img < s.n ? (img * s.c_out + g * s.cog) * s.ohw : -1;
            ihp[j] = pix / s.w + s.pad_h;
            iwp[j] = pix % s.w + s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        const index_t a_col = (ka.hi * s.cig) * s.khw + ka.mid * s.kw + ka.lo;   // (m, c = 0, kh, kw)
        for (int i = 0; i < 4; ++i) {
            const index_t c = row0 + t / Tile::BK + Tile::LANES * i;
            a[i] = (c < s.cig && ka.hi < s.cog) ? __ldg(&w_group[a_col + c * s.khw]) : T(0);
        }
        ka.advance(k_step, s.kh, s.kw);
        const bool k_ok = kb.hi < s.cog;
        const index_t dh = kb.mid * s.dil_h, dw = kb.lo * s.dil_w, plane = kb.hi * s.ohw;
        for (int j = 0; j < 4; ++j) {
            index_t oh, ow;
            const bool ok = k_ok && dy_off[j] >= 0 && stride_multiple(ihp[j] - dh, s.stride_h, oh) &&
                            stride_multiple(iwp[j] - dw, s.stride_w, ow) && oh < s.oh && ow < s.ow;
            b[j] = ok ? __ldg(&dy[dy_off[j] + plane + oh * s.ow + ow]) : T(0);
        }
        kb.advance(k_step, s.kh, s.kw);
    }
};

// Backward-weight, one block tile of one split: A = dy rows m, B = im2col(x)^T, K = positions
// p = (n, oh, ow) in [p0, p1).
template <typename Tile, typename T>
struct BackwardWeightOperands {
    const ConvSizes& s;
    const T* dy;
    const T* x;
    index_t g, row0, p1;
    index_t pa, pb;                      // this thread's positions for A (t % BK) and B (t / LANES)
    Digits3 pa_d, pa_step, pb_d, pb_step;   // pa as (n, 0, oh*OW + ow), pb as (n, oh, ow)
    index_t x_off[4], dh[4], dw[4];      // B columns k = (c, kh, kw): channel plane offset (-1: none), tap offset

    __device__ BackwardWeightOperands(const ConvSizes& s_, const T* dy_, const T* x_, index_t g_, index_t row0_,
                                      index_t col0, index_t p0, index_t p1_)
        : s(s_), dy(dy_), x(x_), g(g_), row0(row0_), p1(p1_) {
        const int t = threadIdx.x;
        pa = p0 + t % Tile::BK;
        pb = p0 + t / Tile::LANES;
        pa_d = Digits3::of(pa, 1, s.ohw);
        pa_step = Digits3::of(Tile::BK, 1, s.ohw);
        pb_d = Digits3::of(pb, s.oh, s.ow);
        pb_step = Digits3::of(Tile::BK, s.oh, s.ow);
        for (int j = 0; j < 4; ++j) {
            const index_t col = col0 + t % Tile::LANES + Tile::LANES * j, c = col / s.khw, tap = col % s.khw;
            x_off[j] = c < s.cig ? (g * s.cig + c) * s.hw : -1;
            dh[j] = (tap / s.kw) * s.dil_h - s.pad_h;
            dw[j] = (tap % s.kw) * s.dil_w - s.pad_w;
        }
    }

    __device__ void fetch(T (&a)[4], T (&b)[4]) {
        const int t = threadIdx.x;
        const index_t a_base = (pa_d.hi * s.c_out + g * s.cog) * s.ohw + pa_d.lo;
        for (int i = 0; i < 4; ++i) {
            const index_t m = row0 + t / Tile::BK + Tile::LANES * i;
            a[i] = (m < s.cog && pa < p1) ? __ldg(&dy[a_base + m * s.ohw]) : T(0);
        }
        pa += Tile::BK;
        pa_d.advance(pa_step, 1, s.ohw);
        const index_t ih_base = pb_d.mid * s.stride_h, iw_base = pb_d.lo * s.stride_w;
        const index_t img = pb_d.hi * s.c_in * s.hw;
        for (int j = 0; j < 4; ++j) {
            const index_t ih = ih_base + dh[j], iw = iw_base + dw[j];
            const bool ok = pb < p1 && x_off[j] >= 0 && inside(ih, s.h) && inside(iw, s.w);
            b[j] = ok ? __ldg(&x[img + x_off[j] + ih * s.w + iw]) : T(0);
        }
        pb += Tile::BK;
        pb_d.advance(pb_step, s.oh, s.ow);
    }
};
