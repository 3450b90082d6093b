// convkit/src/gemm.hpp -- packed GEMM building blocks (BLIS-style) for one instruction set.
//
// C[m x n] (=|+=) A[m x k] * B[k x n], C row-major with leading dimension ldc.
// The convolution drivers never materialise A or B: they hand this file packing
// callbacks, so im2col is fused into the packing of B ("implicit GEMM").
//
//   packed A: for each KC-block of k, panels of MR rows, each panel kc*MR values
//             (k-major, so one k step is MR scalars to broadcast);
//   packed B: for each NR-wide panel of columns, kc*NR values (one k step is NR
//             contiguous values = NV vector registers).
//   micro-kernel: MR x NR tile of C held in MR*NV vector registers, one FMA per
//             (row, vector) per k step.
//
// This header is compiled once per instruction set (the *_isa.cpp files are built with
// CONVKIT_ISA = avx512 / avx2 / generic), so every symbol
// lives in namespace convkit::CONVKIT_ISA and the variants never collide.
#pragma once
#include <algorithm>
#include <cstring>
#include "common.hpp"

#ifndef CONVKIT_ISA
#error "define CONVKIT_ISA before including gemm.hpp"
#endif

namespace convkit {
namespace CONVKIT_ISA {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kRowsPerTile = 12;   // 12 x 2 = 24 of 32 zmm registers hold C
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
constexpr int kRowsPerTile = 6;    // 6 x 2 = 12 of 16 ymm registers hold C
#else
constexpr int kVecBytes = 16;
constexpr int kRowsPerTile = 4;    // 4 x 2 = 8 of 16 xmm registers hold C
#endif

template <class T> struct Vec;
template <> struct Vec<float>  { typedef float  type __attribute__((vector_size(kVecBytes))); };
template <> struct Vec<double> { typedef double type __attribute__((vector_size(kVecBytes))); };

template <class T> struct Tile {
    static constexpr int VL = kVecBytes / sizeof(T);   // lanes per vector
    static constexpr int NV = 2;                       // vectors per tile row
    static constexpr int NR = VL * NV;                 // tile width (columns of C)
    static constexpr int MR = kRowsPerTile;            // tile height (rows of C)
    static constexpr index_t KC = 256;                 // k-block: packed B panel kc*NR stays in L1/L2
    static constexpr index_t NC = 16 * NR;             // column block: packed B block stays in L2
};

// Pack rows [0, m) x cols [0, kc) of a strided matrix (element (i, k) at a[i*rs + k*cs])
// into MR-row panels, zero-padding the last panel.
template <class T>
void pack_a(T* __restrict dst, const T* a, index_t rs, index_t cs, index_t m, index_t kc) {
    constexpr int MR = Tile<T>::MR;
    for (index_t i0 = 0; i0 < m; i0 += MR) {
        const index_t mr = std::min<index_t>(MR, m - i0);
        for (index_t k = 0; k < kc; ++k) {
            for (index_t i = 0; i < mr; ++i) dst[k * MR + i] = a[(i0 + i) * rs + k * cs];
            for (index_t i = mr; i < MR; ++i) dst[k * MR + i] = T(0);
        }
        dst += kc * MR;
    }
}

// Size of a fully packed m x k matrix A (all KC-blocks): round_up(m, MR) * k.
template <class T> index_t packed_a_size(index_t m, index_t k) { return round_up(m, Tile<T>::MR) * k; }

// Pack all of A (m x k) block by block; block pc starts at dst + pc * round_up(m, MR).
template <class T>
void pack_a_full(T* dst, const T* a, index_t rs, index_t cs, index_t m, index_t k) {
    const index_t mpad = round_up(m, Tile<T>::MR);
    for (index_t pc = 0; pc < k; pc += Tile<T>::KC) {
        const index_t kc = std::min<index_t>(Tile<T>::KC, k - pc);
        pack_a(dst + pc * mpad, a + pc * cs, rs, cs, m, kc);
    }
}

// Pack rows [0, kc) x cols [0, n) of a strided matrix (element (k, j) at b[k*rs + j*cs])
// into NR-column panels, zero-padding the last panel: the general (scalar) loop.
template <class T>
void pack_b_strided(T* __restrict dst, const T* b, index_t rs, index_t cs, index_t kc, index_t n) {
    constexpr int NR = Tile<T>::NR;
    for (index_t j0 = 0; j0 < n; j0 += NR) {
        const index_t nr = std::min<index_t>(NR, n - j0);
        for (index_t k = 0; k < kc; ++k) {
            const T* src = b + k * rs + j0 * cs;
            for (index_t j = 0; j < nr; ++j) dst[k * NR + j] = src[j * cs];
            for (index_t j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
        }
        dst += kc * NR;
    }
}

// pack_b_strided with fixed-width loops for full panels of the two common layouts, where
// the general loop would call memmove per k row or gather one scalar per load:
//   cs == 1  (B rows contiguous): NR-wide row copies;
//   rs == 1  (B columns contiguous, e.g. W^T of a linear layer): runs of kRun along k.
template <class T>
void pack_b(T* __restrict dst, const T* b, index_t rs, index_t cs, index_t kc, index_t n) {
    constexpr int NR = Tile<T>::NR;
    constexpr index_t kRun = 8;
    const index_t full = n - n % NR;
    for (index_t j0 = 0; j0 < full; j0 += NR, dst += kc * NR) {
        const T* src = b + j0 * cs;
        if (cs == 1) {
            for (index_t k = 0; k < kc; ++k)
#pragma GCC unroll 64
                for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[k * rs + j];
        } else if (rs == 1) {
            for (index_t k0 = 0; k0 < kc; k0 += kRun) {
                const index_t run = std::min(kRun, kc - k0);
                for (int j = 0; j < NR; ++j)
                    for (index_t k = k0; k < k0 + run; ++k) dst[k * NR + j] = src[j * cs + k];
            }
        } else {
            pack_b_strided(dst, src, rs, cs, kc, NR);
        }
    }
    if (full < n) pack_b_strided(dst, b + full * cs, rs, cs, kc, n - full);
}

// C tile (mr <= MR rows, nr <= NR columns) (=|+=) packed A panel * packed B panel.
template <class T>
inline void micro_kernel(index_t kc, const T* __restrict a, const T* __restrict b,
                         T* __restrict c, index_t ldc, index_t mr, index_t nr, bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int MR = Tile<T>::MR, NV = Tile<T>::NV, VL = Tile<T>::VL, NR = Tile<T>::NR;
    V acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = V{};
#pragma GCC unroll 4
    for (index_t k = 0; k < kc; ++k) {
        V bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) bv[v] = reinterpret_cast<const V*>(b + k * NR)[v];
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i) {
            const T ai = a[k * MR + i];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
        }
    }
    if (mr == MR && nr == NR) {
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                T* p = c + i * ldc + v * VL;
                V old = V{};
                if (accumulate) std::memcpy(&old, p, sizeof(V));   // unaligned load
                V r = old + acc[i][v];
                std::memcpy(p, &r, sizeof(V));
            }
        return;
    }
    alignas(64) T tmp[MR * NR];   // edge tile: spill, then copy the valid part
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) std::memcpy(tmp + i * NR + v * VL, &acc[i][v], sizeof(V));
    for (index_t i = 0; i < mr; ++i)
        for (index_t j = 0; j < nr; ++j)
            c[i * ldc + j] = (accumulate ? c[i * ldc + j] : T(0)) + tmp[i * NR + j];
}

// C[m x n] (=|+=) A[m x k] * B[k x n] for one column block (n <= NC), single-threaded.
//   a_block(abuf, pc, kc) -> pointer to the packed A block for k in [pc, pc+kc)
//                            (either prepacked A, or packed into abuf now);
//   pack_b_block(bbuf, pc, kc) packs B rows [pc, pc+kc) of this column block into bbuf.
template <class T, class ABlock, class PackB>
void gemm_block(index_t m, index_t n, index_t k, ABlock&& a_block, PackB&& pack_b_block,
                T* c, index_t ldc, bool accumulate, T* abuf, T* bbuf) {
    constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
    for (index_t pc = 0; pc < k; pc += Tile<T>::KC) {
        const index_t kc = std::min<index_t>(Tile<T>::KC, k - pc);
        const T* ap = a_block(abuf, pc, kc);
        pack_b_block(bbuf, pc, kc);
        const bool acc = accumulate || pc > 0;
        for (index_t ir = 0; ir < m; ir += MR) {
            const T* a_panel = ap + ir * kc;
            for (index_t jr = 0; jr < n; jr += NR)
                micro_kernel<T>(kc, a_panel, bbuf + jr * kc, c + ir * ldc + jr, ldc,
                                std::min<index_t>(MR, m - ir), std::min<index_t>(NR, n - jr), acc);
        }
    }
}

// Column-block width so that `tasks_per_block * ceil(n / width)` gives every thread work.
template <class T> index_t column_block(index_t n, index_t tasks_per_block, int threads) {
    constexpr index_t NR = Tile<T>::NR;
    index_t nc = std::min<index_t>(Tile<T>::NC, round_up(n, NR));
    while (nc > NR && tasks_per_block * ceil_div(n, nc) < 2 * threads) nc = round_up(nc / 2, NR);
    return nc;
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
