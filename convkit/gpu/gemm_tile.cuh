// One thread block's 64 x 64 tile of a GEMM C = A (M x K) * B (K x cols), tiled in shared
// memory -- the engine of the implicit-GEMM conv kernels in conv2d.cu, which supply A and B
// through a "problem" object (the operands are gathered on the fly, never materialised).
//
// 256 threads; thread t owns a 4 x 4 register micro-tile: rows ty + 16*i, columns tx + 16*j
// (ty = t / 16, tx = t % 16, i, j < 4), strided so that a warp's shared-memory reads are
// broadcasts (A) or 16 consecutive words (B), and its global writes 16 consecutive columns.
// Per K step of BK = 16 each thread fetches
//     4 elements of A:  k = t % 16,  rows t / 16 + 16*i     (a column cursor: one k per thread)
//     4 elements of B:  k = t / 16,  columns t % 16 + 16*j  (one k per thread, fixed columns)
// so a problem keeps ONE k cursor per operand and advances it by BK per fetch. The fetch of
// step s+1 is issued before the math of step s (register prefetch: global latency overlaps
// the 16 x 16 FMAs); two barriers per step.
//
// Problem interface (P is a per-thread object built by the kernel):
//     __device__ void fetch(T (&a)[4], T (&b)[4]);   // this step's A and B elements (0 outside
//                                                    // the matrices), then advance the cursors
#pragma once
#include "common.cuh"

enum : int {
    GEMM_BM = 64,          // tile rows (M)
    GEMM_BN = 64,          // tile columns
    GEMM_BK = 16,          // K per shared-memory step
    GEMM_THREADS = 256,    // = (GEMM_BM / 4) * (GEMM_BN / 4)
    GEMM_A_PAD = 1,        // As row padding: the k-major stores of 16 threads hit distinct banks
};

// The block's shared-memory operand tiles (declared __shared__ at kernel scope, passed here).
template <typename T>
struct GemmSmem {
    T a[GEMM_BK][GEMM_BM + GEMM_A_PAD];   // A tile, transposed: a[k][row]
    T b[GEMM_BK][GEMM_BN];                // B tile: b[k][column]
};

// acc[i][j] += sum over `steps` K steps of A[ty + 16i][k] * B[k][tx + 16j] (acc zeroed by caller).
// Every thread of the block must call it with the same `steps` (it contains barriers).
template <typename T, typename Problem>
__device__ void gemm_tile_accumulate(Problem& problem, index_t steps, GemmSmem<T>& smem, T (&acc)[4][4]) {
    const int t = threadIdx.x, tx = t % 16, ty = t / 16;
    T a[4], b[4];
    if (steps > 0) problem.fetch(a, b);
    for (index_t step = 0; step < steps; ++step) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            smem.a[t % GEMM_BK][t / GEMM_BK + 16 * i] = a[i];
            smem.b[t / 16][t % 16 + 16 * i] = b[i];
        }
        __syncthreads();
        if (step + 1 < steps) problem.fetch(a, b);     // next step's loads in flight during the math
#pragma unroll
        for (int k = 0; k < GEMM_BK; ++k) {
            T ra[4], rb[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                ra[i] = smem.a[k][ty + 16 * i];
                rb[i] = smem.b[k][tx + 16 * i];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += ra[i] * rb[j];
        }
        __syncthreads();
    }
}

template <typename T>
__device__ void zero_tile(T (&acc)[4][4]) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
}

// Grid-stride loops over the tiles of a launch: columns on x, rows on y, an outer index
// (group, or group x split) on z, each loop uniform per block so the barriers stay uniform.
#define CK_TILE_LOOP(var, count, dim) \
    for (index_t var = blockIdx.dim; var < (index_t)(count); var += gridDim.dim)
