// The TF32 tensor-core primitive of conv2d_forward_tf32 (conv2d.cu): one warp-wide
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (sm_80+), and the float -> TF32 rounding
// its operands need (cvt.rna.tf32.f32: round to nearest, ties away from zero, to a 10-bit
// mantissa; the tensor core itself ignores the low 13 bits, i.e. it would truncate).
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), lane = 4 * group + tig
// (group = lane / 4 in 0..7, tig = lane % 4):
//     A (16 x 8, row-major)  a[0] = A[group][tig]      a[1] = A[group + 8][tig]
//                            a[2] = A[group][tig + 4]  a[3] = A[group + 8][tig + 4]
//     B (8 x 8, column)      b[0] = B[tig][group]      b[1] = B[tig + 4][group]
//     C, D (16 x 8)          d[0] = D[group][2 tig]    d[1] = D[group][2 tig + 1]
//                            d[2] = D[group + 8][2 tig]  d[3] = D[group + 8][2 tig + 1]
// D = A * B + D in float32. All 32 lanes of the warp must execute it together (uniformly).
//
// Under the CUDA emulator (tests/cuda_emulator, which defines CUDA_EMULATOR and cannot run
// PTX) both functions are the emulator's: ck_emu::cvt_rna_tf32 rounds the bits the same way,
// ck_emu::mma_m16n8k8_tf32 gathers every lane's fragments at a warp-wide meeting point and
// computes each lane's d from the layout above -- so the tests check our fragment indexing
// against an independent implementation of the ISA's layout.
#pragma once
#include "common.cuh"

// The TF32 value of x (as float32 bits with the low 13 bits zero).
__device__ __forceinline__ unsigned to_tf32(float x) {
#ifdef CUDA_EMULATOR
    return ck_emu::cvt_rna_tf32(x);
#else
    unsigned bits;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(x));
    return bits;
#endif
}

// d += A * B for one 16 x 8 x 8 product of the warp (fragments as above).
__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef CUDA_EMULATOR
    ck_emu::mma_m16n8k8_tf32(d, a, b, __LINE__);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

#include "gemm_tile.cuh"

// The tensor-core math of gemm_tile_accumulate for GemmTf32 (128 x 128 tile, BK = 8, 8 warps):
// warp w computes rows 64 * (w / 4) .. +64 and columns 32 * (w % 4) .. +32 of the tile as
// 4 x 4 m16n8k8 products per k step (4 A fragments, 4 B fragments, 16 mma). Operands are
// rounded to TF32 once, when stored to shared memory (operand()). The thread's accumulator
// acc[i][j], i = 2 mt + h, j = 2 nt + e, is D element (h * 2 + e) of product (mt, nt):
// tile row 64 (w / 4) + 16 mt + 8 h + group, column 32 (w % 4) + 8 nt + 2 tig + e.
// Shared reads: A[k][row] at bank 8 tig + group (+ const) with the row pad of 8, B alike: no
// conflicts.
struct MmaTf32Math {
    static __device__ __forceinline__ float operand(float v) { return __int_as_float((int)to_tf32(v)); }

    static __device__ __forceinline__ index_t row(int i) {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        return 64 * (warp / 4) + 16 * (i / 2) + 8 * (i % 2) + lane / 4;
    }
    static __device__ __forceinline__ index_t col(int j) {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        return 32 * (warp % 4) + 8 * (j / 2) + 2 * (lane % 4) + j % 2;
    }

    using Tile = GemmTf32;
    static __device__ __forceinline__ void step(const float (&a)[Tile::BK][Tile::BM + Tile::A_PAD],
                                                const float (&b)[Tile::BK][Tile::BN + Tile::B_PAD],
                                                float (&acc)[Tile::TM][Tile::TM]) {
        static_assert(Tile::BK == 8 && Tile::BM == 128 && Tile::BN == 128, "one m16n8k8 k step per stage, 8 warps");
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, group = lane / 4, tig = lane % 4;
        const int row0 = 64 * (warp / 4) + group, col0 = 32 * (warp % 4) + group;
        unsigned fa[4][4], fb[4][2];
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
            const int r = row0 + 16 * mt;
            fa[mt][0] = (unsigned)__float_as_int(a[tig][r]);
            fa[mt][1] = (unsigned)__float_as_int(a[tig][r + 8]);
            fa[mt][2] = (unsigned)__float_as_int(a[tig + 4][r]);
            fa[mt][3] = (unsigned)__float_as_int(a[tig + 4][r + 8]);
        }
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
            fb[nt][0] = (unsigned)__float_as_int(b[tig][col0 + 8 * nt]);
            fb[nt][1] = (unsigned)__float_as_int(b[tig + 4][col0 + 8 * nt]);
        }
#pragma unroll
        for (int mt = 0; mt < 4; ++mt)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                float d[4] = {acc[2 * mt][2 * nt], acc[2 * mt][2 * nt + 1], acc[2 * mt + 1][2 * nt],
                              acc[2 * mt + 1][2 * nt + 1]};
                mma_tf32_16x8x8(d, fa[mt], fb[nt]);
                acc[2 * mt][2 * nt] = d[0];
                acc[2 * mt][2 * nt + 1] = d[1];
                acc[2 * mt + 1][2 * nt] = d[2];
                acc[2 * mt + 1][2 * nt + 1] = d[3];
            }
    }
};
