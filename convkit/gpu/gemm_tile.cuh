// One thread block's tile of a GEMM C = A (M x K) * B (K x cols), tiled in shared memory --
// the engine of the implicit-GEMM conv kernels in conv2d.cu, which supply A and B through a
// "problem" object (the operands are gathered on the fly, never materialised).
//
// A tile geometry `Tile` (GemmTile<BK, TM, SUB, STAGES, A_PAD, B_PAD>) fixes, for 256 threads:
//     BM = BN = 16 * TM         the block tile (thread (tx, ty) = (t % 16, t / 16) owns TM x TM)
//     BK                        K per shared-memory step; LANES = 256 / BK, and BM = 4 * LANES
//     rows of (tx, ty):  Tile::row(ty, i) = ty*SUB + i % SUB + (i / SUB) * 16*SUB   (i < TM)
//     columns:           Tile::row(tx, j), the same rule
//   v2 = GemmTile<16, 4, 1, 1, 1, 0>: 64 x 64, rows ty + 16i -- a warp's shared reads are
//        broadcasts (A) or 16 consecutive words (B), its global writes 16 consecutive columns.
//   v3 = GemmTile<8, 8, 4, 2, 4, 0>: 128 x 128, 8 x 8 outputs per thread as 2 x 2 sub-tiles
//        of 4 x 4 (rows 4ty..4ty+3 and 64+4ty..), so each operand read is 2 x 4 consecutive
//        words (vectorisable LDS.128) and the 16 threads of a half-warp read 64 consecutive
//        words: no bank conflicts, 4 FMAs per shared load instead of v2's 2.
// Per K step each thread fetches 4 elements of each operand:
//     A:  k = t % BK,     rows t / BK + LANES*i      (one k per thread, a column cursor)
//     B:  k = t / LANES,  columns t % LANES + LANES*j (one k per thread, fixed columns)
// so a problem keeps ONE k cursor per operand and advances it by BK per fetch. The fetch of
// step s+1 is issued before the math of step s (register prefetch: global latency overlaps
// the math). STAGES = 1: one shared buffer, two barriers per step (v2); STAGES = 2: two
// buffers, the next step is stored into the other one while slower threads still read this
// one, one barrier per step (v3).
//
// Problem interface (P is a per-thread object built by the kernel, templated on the Tile):
//     __device__ void fetch(T (&a)[4], T (&b)[4]);   // this step's A and B elements (0 outside
//                                                    // the matrices), then advance the cursors
// Math interface (what one step does with the shared tiles; FmaMath below, MmaTf32Math in mma.cuh):
//     static __device__ T operand(T v);    // the value stored in shared memory for element v
//     static __device__ void step(const T (&a)[BK][BM + A_PAD], const T (&b)[BK][BN + B_PAD],
//                                 T (&acc)[TM][TM]);
//     static __device__ index_t row(int i), col(int j);   // tile row / column of acc[i][j]
#pragma once
#include "common.cuh"

enum : int { GEMM_THREADS = 256 };   // every tile geometry: a 16 x 16 thread grid

template <int BK_, int TM_, int SUB_, int STAGES_, int A_PAD_, int B_PAD_>
struct GemmTile {
    static constexpr int BK = BK_, TM = TM_, SUB = SUB_, STAGES = STAGES_;
    static constexpr int BM = 16 * TM, BN = 16 * TM, LANES = GEMM_THREADS / BK;
    static constexpr int A_PAD = A_PAD_;   // As row padding: the k-major stores hit distinct banks
    static constexpr int B_PAD = B_PAD_;
    static_assert(BM == 4 * LANES, "each thread fetches 4 elements of each operand per step");
    static_assert(TM % SUB == 0, "sub-tiles divide the micro-tile");

    // The i-th row (or column) of the thread whose 16-grid coordinate is `u` (ty, or tx).
    static __device__ __forceinline__ int row(int u, int i) { return u * SUB + i % SUB + (i / SUB) * 16 * SUB; }
};

using GemmV2 = GemmTile<16, 4, 1, 1, 1, 0>;
using GemmV3 = GemmTile<8, 8, 4, 2, 4, 0>;
using GemmTf32 = GemmTile<8, 8, 4, 2, 8, 8>;   // v3's geometry, pads for conflict-free mma fragment reads (mma.cuh)

// The block's shared-memory operand tiles (declared __shared__ at kernel scope, passed here).
template <typename Tile, typename T>
struct __align__(16) GemmSmem {   // v3 / tf32 pads keep every row 16-byte aligned (vector loads)
    T a[Tile::STAGES][Tile::BK][Tile::BM + Tile::A_PAD];   // A tiles, transposed: a[k][row]
    T b[Tile::STAGES][Tile::BK][Tile::BN + Tile::B_PAD];   // B tiles: b[k][column]
};

// The CUDA-core math: thread (tx, ty) accumulates its TM x TM register micro-tile, k in order.
template <typename Tile>
struct FmaMath {
    template <typename T>
    static __device__ __forceinline__ T operand(T v) { return v; }
    static __device__ __forceinline__ index_t row(int i) { return Tile::row(threadIdx.x / 16, i); }
    static __device__ __forceinline__ index_t col(int j) { return Tile::row(threadIdx.x % 16, j); }

    template <typename T>
    static __device__ __forceinline__ void step(const T (&a)[Tile::BK][Tile::BM + Tile::A_PAD],
                                                const T (&b)[Tile::BK][Tile::BN + Tile::B_PAD],
                                                T (&acc)[Tile::TM][Tile::TM]) {
        const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
        for (int k = 0; k < Tile::BK; ++k) {
            T ra[Tile::TM], rb[Tile::TM];
#pragma unroll
            for (int i = 0; i < Tile::TM; ++i) {
                ra[i] = a[k][Tile::row(ty, i)];
                rb[i] = b[k][Tile::row(tx, i)];
            }
#pragma unroll
            for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
                for (int j = 0; j < Tile::TM; ++j) acc[i][j] += ra[i] * rb[j];
        }
    }
};

// Stores this thread's fetched A and B elements into shared buffer `stage` (see the mapping above).
template <typename Tile, typename Math, typename T>
__device__ __forceinline__ void gemm_tile_store(GemmSmem<Tile, T>& smem, int stage, const T (&a)[4], const T (&b)[4]) {
    const int t = threadIdx.x;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        smem.a[stage][t % Tile::BK][t / Tile::BK + Tile::LANES * i] = Math::operand(a[i]);
        smem.b[stage][t / Tile::LANES][t % Tile::LANES + Tile::LANES * i] = Math::operand(b[i]);
    }
}

// acc[i][j] += sum over `steps` K steps of A[Math::row(i)][k] * B[k][Math::col(j)] (acc zeroed
// by the caller). Every thread of the block must call it with the same `steps` (it contains
// barriers). Step s stores its (prefetched) operands into buffer s % STAGES, meets the block,
// issues step s+1's loads, then does the math. With one buffer a second barrier keeps the
// next store from overwriting what slower threads still read; with two, step s+1 writes the
// other buffer, whose last readers (step s-1) all passed step s's barrier -- one barrier per
// step, plus one at the end so the next tile's first store waits for the last math.
template <typename Tile, typename Math, typename T, typename Problem>
__device__ void gemm_tile_accumulate(Problem& problem, index_t steps, GemmSmem<Tile, T>& smem,
                                     T (&acc)[Tile::TM][Tile::TM]) {
    T a[4], b[4];
    if (steps > 0) problem.fetch(a, b);
    for (index_t step = 0; step < steps; ++step) {
        const int stage = Tile::STAGES == 1 ? 0 : int(step % Tile::STAGES);
        gemm_tile_store<Tile, Math>(smem, stage, a, b);
        __syncthreads();
        if (step + 1 < steps) problem.fetch(a, b);     // next step's loads in flight during the math
        Math::step(smem.a[stage], smem.b[stage], acc);
        if (Tile::STAGES == 1) __syncthreads();
    }
    if (Tile::STAGES > 1) __syncthreads();
}

template <typename T, int TM>
__device__ void zero_tile(T (&acc)[TM][TM]) {
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TM; ++j) acc[i][j] = T(0);
}

// Grid-stride loops over the tiles of a launch: columns on x, rows on y, an outer index
// (group, or group x split) on z, each loop uniform per block so the barriers stay uniform.
#define CK_TILE_LOOP(var, count, dim) \
    for (index_t var = blockIdx.dim; var < (index_t)(count); var += gridDim.dim)
