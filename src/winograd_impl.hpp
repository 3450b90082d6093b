// convkit/src/winograd_impl.hpp -- conv2d forward by Winograd's minimal filtering F(2x2, 3x3).
//
// For 3x3 kernels with stride 1 and dilation 1 (Lavin & Gray 2015). Each 2x2 block of output
// ("tile") is computed from the 4x4 block of input under it:
//     Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A
// so the 9 multiplies per output pixel and channel pair of the direct conv become 16 per 4
// output pixels (2.25x fewer). The sum over channels is 16 independent matrix products, one
// per position xi of the 4x4 transformed tile:
//     M[xi] (C_out x tiles) = U[xi] (C_out x C_in) * V[xi] (C_in x tiles)
//     U[xi] = (G g G^T)[xi]   weight transform, once per call, packed as the GEMM's A operand
//     V[xi] = (B^T d B)[xi]   input transform, written straight into packed-B panels
// and the micro-kernel of gemm.hpp does all the multiplying. The transforms use only adds,
// subtracts and halvings, so float32 errors stay at a few ulps of the products' magnitudes
// (tests/test_winograd.py checks against the float64 reference).
//
// Work split: a task is one group and a block of `nb` consecutive tiles, numbered across the
// whole batch (image, tile row, tile column), so batch 1 and batch 16 both give every thread
// tasks. Per thread: V (16 x C_in x nb) and M (16 x C_out x nb) scratch -- the extra memory
// is bounded by the block size, not the image.
//
// Writes: `out` fully OVERWRITTEN. Determinism: each output element is computed by one task,
// in a fixed order, whatever the thread count.
#pragma once
#include <vector>
#include "gemm.hpp"

namespace convkit {
namespace CONVKIT_ISA {

// Where column-tile j of a task reads its 4x4 input block and writes its 2x2 output block.
struct WinogradTile {
    index_t image;       // n
    index_t ih0, iw0;    // top-left input position (may be negative: padding)
    index_t oh0, ow0;    // top-left output position
    index_t offset;      // of input (ih0, iw0) from the image's channel-0 plane start
    bool inside;         // the whole 4x4 input block lies inside the plane (no bounds tests)
};

// U[xi] = G g G^T for output channel `co` of one group and every input channel ci, written
// into the packed-A layout of gemm.hpp (block pc at pc * mpad, MR-row panels of kc columns):
// A = U[xi] is Cog x Cig, xi_stride apart. G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
template <class T>
void winograd_weight_transform(T* packed, index_t xi_stride, const T* w, index_t co, index_t cog, index_t cig) {
    constexpr int MR = Tile<T>::MR;
    const index_t mpad = round_up(cog, MR);
    for (index_t ci = 0; ci < cig; ++ci) {
        const T* g = w + (co * cig + ci) * 9;
        T gg[4][3];   // G g: 4 x 3
        for (int s = 0; s < 3; ++s) {
            const T a = g[s], b = g[3 + s], c = g[6 + s];
            gg[0][s] = a;
            gg[1][s] = T(0.5) * (a + b + c);
            gg[2][s] = T(0.5) * (a - b + c);
            gg[3][s] = c;
        }
        const index_t pc = ci - ci % Tile<T>::KC, kc = std::min<index_t>(Tile<T>::KC, cig - pc);
        T* dst = packed + pc * mpad + (co / MR) * kc * MR + (ci - pc) * MR + co % MR;
        for (int r = 0; r < 4; ++r) {   // (G g) G^T: row r
            const T a = gg[r][0], b = gg[r][1], c = gg[r][2];
            const T u[4] = {a, T(0.5) * (a + b + c), T(0.5) * (a - b + c), c};
            for (int s = 0; s < 4; ++s) dst[(r * 4 + s) * xi_stride] = u[s];
        }
    }
}

// Zero the rows co >= cog of the last MR panel of every packed U[xi] (the micro-kernel reads them).
template <class T>
void winograd_weight_padding(T* packed, index_t xi_stride, index_t cog, index_t cig) {
    constexpr int MR = Tile<T>::MR;
    if (cog % MR == 0) return;
    const index_t mpad = round_up(cog, MR);
    for (index_t xi = 0; xi < 16; ++xi)
        for (index_t pc = 0; pc < cig; pc += Tile<T>::KC) {
            const index_t kc = std::min<index_t>(Tile<T>::KC, cig - pc);
            T* panel = packed + xi * xi_stride + pc * mpad + (cog / MR) * kc * MR;
            for (index_t k = 0; k < kc; ++k)
                for (index_t i = cog % MR; i < MR; ++i) panel[k * MR + i] = T(0);
        }
}

// V[xi][c] for the NR tiles of one panel: d = 4x4 input block (zero outside the plane),
// V = B^T d B with B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
// dst[xi * xi_stride + j] receives tile j's value (j < NR; lanes past `nr` get zeros).
template <class T>
void winograd_input_transform(T* __restrict dst, index_t xi_stride, const T* plane, const Conv2dSizes& s,
                              const WinogradTile* tiles, index_t nr) {
    constexpr int NR = Tile<T>::NR;
    alignas(64) T d[16][NR];
    for (index_t j = 0; j < nr; ++j) {
        const WinogradTile& t = tiles[j];
        const T* p = plane + t.offset;
        if (t.inside) {
            for (int r = 0; r < 4; ++r)
                for (int c = 0; c < 4; ++c) d[r * 4 + c][j] = p[r * s.w + c];
        } else {
            for (int r = 0; r < 4; ++r)
                for (int c = 0; c < 4; ++c) {
                    const index_t ih = t.ih0 + r, iw = t.iw0 + c;
                    d[r * 4 + c][j] = (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) ? p[r * s.w + c] : T(0);
                }
        }
    }
    for (index_t j = nr; j < NR; ++j)
        for (int e = 0; e < 16; ++e) d[e][j] = T(0);
    // B^T d (rows), then (B^T d) B (columns); vectorised over the NR tiles.
    alignas(64) T e[16][NR];
    for (int c = 0; c < 4; ++c)
#pragma GCC unroll 64
        for (int j = 0; j < NR; ++j) {
            const T d0 = d[c][j], d1 = d[4 + c][j], d2 = d[8 + c][j], d3 = d[12 + c][j];
            e[c][j] = d0 - d2;
            e[4 + c][j] = d1 + d2;
            e[8 + c][j] = d2 - d1;
            e[12 + c][j] = d1 - d3;
        }
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 64
        for (int j = 0; j < NR; ++j) {
            const T e0 = e[r * 4][j], e1 = e[r * 4 + 1][j], e2 = e[r * 4 + 2][j], e3 = e[r * 4 + 3][j];
            dst[(r * 4 + 0) * xi_stride + j] = e0 - e2;
            dst[(r * 4 + 1) * xi_stride + j] = e1 + e2;
            dst[(r * 4 + 2) * xi_stride + j] = e2 - e1;
            dst[(r * 4 + 3) * xi_stride + j] = e1 - e3;
        }
}

// out 2x2 blocks of one output channel for the NR tiles of one panel: Y = A^T m A + bias,
// A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]; m[xi] = src[xi * xi_stride + j]. Clipped at the
// output's bottom/right edge (odd OH/OW).
template <class T>
void winograd_output_transform(T* out_channel, index_t image_stride, const T* __restrict src, index_t xi_stride,
                               T bias, const Conv2dSizes& s, const WinogradTile* tiles, index_t nr) {
    constexpr int NR = Tile<T>::NR;
    alignas(64) T e[8][NR];   // A^T m: 2 x 4
    for (int c = 0; c < 4; ++c)
#pragma GCC unroll 64
        for (int j = 0; j < NR; ++j) {
            const T m0 = src[c * xi_stride + j], m1 = src[(4 + c) * xi_stride + j];
            const T m2 = src[(8 + c) * xi_stride + j], m3 = src[(12 + c) * xi_stride + j];
            e[c][j] = m0 + m1 + m2;
            e[4 + c][j] = m1 - m2 - m3;
        }
    alignas(64) T y[4][NR];   // (A^T m) A: 2 x 2
    for (int r = 0; r < 2; ++r)
#pragma GCC unroll 64
        for (int j = 0; j < NR; ++j) {
            const T e0 = e[r * 4][j], e1 = e[r * 4 + 1][j], e2 = e[r * 4 + 2][j], e3 = e[r * 4 + 3][j];
            y[r * 2][j] = e0 + e1 + e2 + bias;
            y[r * 2 + 1][j] = e1 - e2 - e3 + bias;
        }
    for (index_t j = 0; j < nr; ++j) {
        const WinogradTile& t = tiles[j];
        T* o = out_channel + t.image * image_stride + t.oh0 * s.ow + t.ow0;
        const bool full_w = t.ow0 + 1 < s.ow;
        o[0] = y[0][j];
        if (full_w) o[1] = y[1][j];
        if (t.oh0 + 1 < s.oh) {
            o[s.ow] = y[2][j];
            if (full_w) o[s.ow + 1] = y[3][j];
        }
    }
}

// out (N, C_out, OH, OW) = conv2d(x (N, C_in, H, W), w (C_out, C_in/G, 3, 3)) + bias, for
// stride 1, dilation 1, any padding (s.pad_h/pad_w before; OH/OW give the rest).
template <class T>
void conv2d_winograd_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    constexpr int NR = Tile<T>::NR, MR = Tile<T>::MR;
    constexpr index_t KC = Tile<T>::KC;
    const int nt = num_threads();
    const index_t G = s.groups, Cig = s.c_in / G, Cog = s.c_out / G, mpad = round_up(Cog, MR);
    const index_t tiles_h = ceil_div(s.oh, 2), tiles_w = ceil_div(s.ow, 2), tiles_image = tiles_h * tiles_w;
    const index_t tiles_total = s.n * tiles_image;

    // Tasks: (group, block of nb tiles, block of output channels). Blocks of 4 panels of tiles,
    // fewer when that would leave threads idle; if even single panels are too few tasks (small
    // images at batch 1), the output channels are split too -- each such task then repeats the
    // input transform of its tiles, which is cheap next to its share of the products.
    index_t panels = 4;
    while (panels > 1 && G * ceil_div(tiles_total, panels * NR) < 4 * nt) --panels;
    const index_t nb = panels * NR, blocks = ceil_div(tiles_total, nb);
    index_t co_block = mpad;
    while (co_block > 4 * MR && G * blocks * ceil_div(Cog, co_block) < 2 * nt) co_block = round_up(co_block / 2, MR);
    const index_t co_blocks = ceil_div(Cog, co_block);
    const index_t u_size = mpad * Cig;                  // one packed U[xi]
    const index_t v_stride = Cig * nb, m_stride = Cog * nb;

    AlignedBuffer<T> u = aligned_buffer<T>(G * 16 * u_size);
    std::vector<AlignedBuffer<T>> vbufs, mbufs;
    std::vector<std::vector<WinogradTile>> tilebufs(nt, std::vector<WinogradTile>(nb));
    for (int t = 0; t < nt; ++t) {
        vbufs.push_back(aligned_buffer<T>(16 * v_stride));
        mbufs.push_back(aligned_buffer<T>(16 * m_stride));
    }

#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (index_t gco = 0; gco < G * Cog; ++gco) {
            const index_t g = gco / Cog;
            winograd_weight_transform(u.get() + g * 16 * u_size, u_size, w + g * Cog * Cig * 9, gco % Cog, Cog, Cig);
        }
#pragma omp for schedule(static)
        for (index_t g = 0; g < G; ++g) winograd_weight_padding(u.get() + g * 16 * u_size, u_size, Cog, Cig);

        T* v = vbufs[thread_index()].get();
        T* m = mbufs[thread_index()].get();
        WinogradTile* tiles = tilebufs[thread_index()].data();
#pragma omp for schedule(dynamic)
        for (index_t task = 0; task < G * blocks * co_blocks; ++task) {
            const index_t g = task / (blocks * co_blocks), block = task / co_blocks % blocks;
            const index_t co0 = task % co_blocks * co_block, co1 = std::min(Cog, co0 + co_block);
            const index_t t0 = block * nb, count = std::min(nb, tiles_total - t0);
            for (index_t j = 0; j < count; ++j) {
                const index_t t = t0 + j, img = t / tiles_image, r = t % tiles_image;
                const index_t oh0 = (r / tiles_w) * 2, ow0 = (r % tiles_w) * 2;
                const index_t ih0 = oh0 - s.pad_h, iw0 = ow0 - s.pad_w;
                tiles[j] = {img, ih0, iw0, oh0, ow0, img * s.c_in * s.h * s.w + ih0 * s.w + iw0,
                            ih0 >= 0 && iw0 >= 0 && ih0 + 4 <= s.h && iw0 + 4 <= s.w};
            }
            // V[xi] (Cig x nb), packed as NR-column panels: element (c, j) at (j/NR)*Cig*NR + c*NR + j%NR.
            const T* xg = x + g * Cig * s.h * s.w;
            for (index_t p = 0; p < count; p += NR)
                for (index_t c = 0; c < Cig; ++c)
                    winograd_input_transform(v + (p / NR) * Cig * NR + c * NR, v_stride, xg + c * s.h * s.w, s,
                                             tiles + p, std::min<index_t>(NR, count - p));
            // M[xi] = U[xi] V[xi]: Cog x nb, row-major with leading dimension nb.
            const index_t used = round_up(count, NR);
            for (index_t xi = 0; xi < 16; ++xi) {
                const T* uxi = u.get() + (g * 16 + xi) * u_size;
                const T* vxi = v + xi * v_stride;
                T* mxi = m + xi * m_stride;
                for (index_t pc = 0; pc < Cig; pc += KC) {
                    const index_t kc = std::min(KC, Cig - pc);
                    for (index_t ir = co0; ir < co1; ir += MR)
                        for (index_t jr = 0; jr < used; jr += NR)
                            micro_kernel<T>(kc, uxi + pc * mpad + ir * kc, vxi + jr * Cig + pc * NR,
                                            mxi + ir * nb + jr, nb, std::min<index_t>(MR, co1 - ir), NR, pc > 0);
                }
            }
            T* og = out + g * Cog * s.oh * s.ow;
            for (index_t co = co0; co < co1; ++co)
                for (index_t p = 0; p < count; p += NR)
                    winograd_output_transform(og + co * s.oh * s.ow, s.c_out * s.oh * s.ow, m + co * nb + p, m_stride,
                                              bias ? bias[g * Cog + co] : T(0), s, tiles + p,
                                              std::min<index_t>(NR, count - p));
        }
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
