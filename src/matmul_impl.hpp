// convkit/src/matmul_impl.hpp -- C (m x n) = A (m x k) * B (k x n) (+ bias), for one instruction set.
//
// Three algorithms, chosen from the sizes and strides alone (never from the thread count):
//   dot     m <= kDotMaxRows and both operands contiguous along k (a_col == 1, b_row == 1):
//           the linear layer's forward pass up to batch 64, where B = W^T is read once
//           from memory and reused only m times. No packing: each C element is a
//           vectorised dot product of an A row and a B column (= a W row). Tasks are
//           ranges of columns (W rows); inside a task the k axis is cut into kDotKBlock
//           pieces so the A rows of a piece stay in L1 while the task's W rows stream.
//   axpy    m <= kAxpyMaxRows and B's rows contiguous (b_col == 1): backward-data at batch
//           1-3, where the packed path would compute a whole MR-row tile per row. C row
//           tiles in registers, B (= W) rows streamed unpacked, k cut into kAxpyKBlock pieces.
//   packed  everything else: the BLIS-style engine of gemm.hpp. Tasks are tiles of C
//           (row blocks of kRowBlock rows x column blocks of column_block() columns);
//           each task packs its own A rows and B columns per KC block (any strides:
//           pack_a, pack_b), then runs gemm.hpp's register-tile micro-kernel.
//
// Writes: C is fully OVERWRITTEN (k == 0 gives bias or zeros), never accumulated into.
// Determinism: each C element is computed by exactly one task, k summed in a fixed order
// (KC / kDotKBlock / kAxpyKBlock blocks in ascending order, each in a fixed lane order), so the
// result does not depend on the thread count or on which thread runs a task.
#pragma once
#include <vector>
#include "gemm.hpp"
#include "matmul.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Below this many multiply-adds (~50 us on one core) a call runs on the calling thread:
// waking the other threads would cost more than the work.
constexpr index_t kParallelMinMacs = index_t(1) << 20;

inline int matmul_threads(const MatmulSizes& s) {
    return s.m * s.n * s.k >= kParallelMinMacs ? num_threads() : 1;
}

// ------------------------------------------------------------------------------ dot path

// Dot tiles: IR rows of A (held in registers) x JR columns of B (streamed), IR*JR vector
// accumulators; groups of kDotRowGroup rows, the remainder in one smaller group.
constexpr index_t kDotRowGroup = 3;
#if defined(__AVX2__)
template <int IR> constexpr int kDotColumns = IR == 1 ? 8 : IR == 2 ? 6 : 4;   // 12 of 16 ymm accumulate
#else
template <int IR> constexpr int kDotColumns = IR == 1 ? 8 : IR == 2 ? 5 : 3;   // SSE: no FMA, a product temporary
#endif
constexpr index_t kDotMaxRows = 64;         // m up to this uses the dot path (measured: >= packed)
constexpr index_t kDotColumnsPerTask = 16;  // W rows per task: their k piece stays in L2
template <class T> constexpr index_t kDotKBlock = 8192 / sizeof(T);   // one A row piece: 8 KiB

// An empty asm that "modifies" v: the compiler must keep v in a register from here on,
// instead of re-reading the A row from memory in each FMA (which doubles the loads).
template <class V> inline void pin_register(V& v) {
#if defined(__AVX512F__)
    asm("" : "+v"(v));
#elif defined(__x86_64__)
    asm("" : "+x"(v));
#endif
}

// C tile (ir <= IR rows, jr <= JR columns) (=|+=) A rows (ir x kb, row stride lda) times
// B columns (jr x kb, column stride ldb), both contiguous along k. Missing rows/columns of
// an edge tile repeat the last valid one; their results are discarded.
template <class T, int IR, int JR>
inline void dot_tile(T* c, index_t ldc, const T* a, index_t lda, index_t ir,
                     const T* b, index_t ldb, index_t jr, index_t kb, bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int VL = Tile<T>::VL;
    const T* ap[IR];
    const T* bp[JR];
    for (int i = 0; i < IR; ++i) ap[i] = a + std::min<index_t>(i, ir - 1) * lda;
    for (int j = 0; j < JR; ++j) bp[j] = b + std::min<index_t>(j, jr - 1) * ldb;
    V acc[IR][JR];
#pragma GCC unroll 16
    for (int i = 0; i < IR; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < JR; ++j) acc[i][j] = V{};
    const index_t kv = kb - kb % VL;
    for (index_t p = 0; p < kv; p += VL) {
        V av[IR];
#pragma GCC unroll 16
        for (int i = 0; i < IR; ++i) {
            std::memcpy(&av[i], ap[i] + p, sizeof(V));   // unaligned load
            pin_register(av[i]);
        }
#pragma GCC unroll 16
        for (int j = 0; j < JR; ++j) {
            V bv;
            std::memcpy(&bv, bp[j] + p, sizeof(V));
#pragma GCC unroll 16
            for (int i = 0; i < IR; ++i) acc[i][j] += av[i] * bv;
        }
    }
    for (index_t i = 0; i < ir; ++i)
        for (index_t j = 0; j < jr; ++j) {
            T sum = T(0);
            for (int l = 0; l < VL; ++l) sum += acc[i][j][l];
            for (index_t p = kv; p < kb; ++p) sum += ap[i][p] * bp[j][p];
            T* dst = c + i * ldc + j;
            *dst = accumulate ? *dst + sum : sum;
        }
}

// C rows (IR of them, ir valid) x columns [j0, j1) (=|+=) one k piece of the dot products.
template <class T, int IR>
void dot_rows(T* c, index_t ldc, const T* a, index_t lda, index_t ir, const T* b, index_t ldb,
              index_t j0, index_t j1, index_t kb, bool accumulate) {
    constexpr int JR = kDotColumns<IR>;
    for (index_t j = j0; j < j1; j += JR)
        dot_tile<T, IR, JR>(c + j, ldc, a, lda, ir, b + j * ldb, ldb, std::min<index_t>(JR, j1 - j),
                            kb, accumulate);
}

template <class T>
void matmul_dot(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    // c (m x n) = a (m x k, rows at stride a_row) * b (k x n, columns at stride b_col) + bias
    constexpr index_t JT = kDotColumnsPerTask, IR = kDotRowGroup;
    // One row group (GEMV-like): W rows are used once, so no k blocks: long sequential streams.
    const index_t KB = s.m <= IR ? s.k : kDotKBlock<T>;
    const index_t tasks = ceil_div(s.n, JT);
#pragma omp parallel for num_threads(matmul_threads(s)) schedule(dynamic)
    for (index_t task = 0; task < tasks; ++task) {
        const index_t j0 = task * JT, j1 = std::min(s.n, j0 + JT);
        for (index_t p0 = 0; p0 < s.k; p0 += KB) {
            const index_t kb = std::min(KB, s.k - p0);
            const bool acc = p0 > 0;
            for (index_t i0 = 0; i0 < s.m; i0 += IR) {
                const index_t ir = std::min(IR, s.m - i0);
                T* ci = c + i0 * s.n;
                const T* ai = a + i0 * s.a_row + p0;
                const T* bk = b + p0;
                switch (ir) {
                    case 3: dot_rows<T, 3>(ci, s.n, ai, s.a_row, ir, bk, s.b_col, j0, j1, kb, acc); break;
                    case 2: dot_rows<T, 2>(ci, s.n, ai, s.a_row, ir, bk, s.b_col, j0, j1, kb, acc); break;
                    default: dot_rows<T, 1>(ci, s.n, ai, s.a_row, ir, bk, s.b_col, j0, j1, kb, acc); break;
                }
            }
        }
        if (bias)
            for (index_t i = 0; i < s.m; ++i)
                for (index_t j = j0; j < j1; ++j) c[i * s.n + j] += bias[j];
    }
}

// ---------------------------------------------------------------------------- axpy path

// m <= kAxpyMaxRows rows of C with B's rows contiguous (b_col == 1): the linear layer's
// backward-data at batch 1-3, grad_x = grad_y * W. Each C row is a sum of B rows scaled
// by A entries, so W is streamed row by row, unpacked, into IR x VB register tiles (the
// packed path would compute MR rows to use one). Tasks are column ranges of C; the k
// axis is cut into kAxpyKBlock pieces so a task's piece of W stays in L2 across the rows.
constexpr index_t kAxpyMaxRows = 3;
constexpr index_t kAxpyKBlock = 256;
template <int IR> constexpr int kAxpyVectors = IR == 1 ? 12 : IR == 2 ? 6 : 4;   // 12 accumulators
template <class T> constexpr index_t kAxpyColumnsPerTask = 2 * kAxpyVectors<1> * Tile<T>::VL;

// C tile (IR rows, ncols <= VB*VL columns) (=|+=) A (IR x kb, any strides) * B (kb x ncols,
// rows at stride ldb). A full tile lives in registers; the ragged last tile of a row is
// accumulated in a local array instead.
template <class T, int IR, int VB>
inline void axpy_tile(T* c, index_t ldc, const T* a, index_t a_row, index_t a_col, const T* b, index_t ldb,
                      index_t kb, index_t ncols, bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int VL = Tile<T>::VL, W = VB * VL;
    if (ncols < W) {
        T acc[IR][W];
        for (int i = 0; i < IR; ++i)
            for (index_t j = 0; j < ncols; ++j) acc[i][j] = accumulate ? c[i * ldc + j] : T(0);
        for (index_t p = 0; p < kb; ++p)
            for (int i = 0; i < IR; ++i) {
                const T ai = a[i * a_row + p * a_col];
                for (index_t j = 0; j < ncols; ++j) acc[i][j] += ai * b[p * ldb + j];
            }
        for (int i = 0; i < IR; ++i)
            for (index_t j = 0; j < ncols; ++j) c[i * ldc + j] = acc[i][j];
        return;
    }
    V acc[IR][VB];
#pragma GCC unroll 16
    for (int i = 0; i < IR; ++i)
#pragma GCC unroll 16
        for (int v = 0; v < VB; ++v) {
            acc[i][v] = V{};
            if (accumulate) std::memcpy(&acc[i][v], c + i * ldc + v * VL, sizeof(V));
        }
    for (index_t p = 0; p < kb; ++p) {
        T ai[IR];
#pragma GCC unroll 16
        for (int i = 0; i < IR; ++i) ai[i] = a[i * a_row + p * a_col];
#pragma GCC unroll 16
        for (int v = 0; v < VB; ++v) {
            V bv;
            std::memcpy(&bv, b + p * ldb + v * VL, sizeof(V));
#pragma GCC unroll 16
            for (int i = 0; i < IR; ++i) acc[i][v] += ai[i] * bv;
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < IR; ++i)
#pragma GCC unroll 16
        for (int v = 0; v < VB; ++v) std::memcpy(c + i * ldc + v * VL, &acc[i][v], sizeof(V));
}

// C rows [0, IR) x columns [j0, j1) (=|+=) one k piece, in tiles of kAxpyVectors<IR> vectors.
template <class T, int IR>
void axpy_rows(T* c, const T* a, const T* b, const MatmulSizes& s, index_t j0, index_t j1, index_t kb,
               bool accumulate) {
    constexpr index_t W = kAxpyVectors<IR> * Tile<T>::VL;
    for (index_t j = j0; j < j1; j += W)
        axpy_tile<T, IR, kAxpyVectors<IR>>(c + j, s.n, a, s.a_row, s.a_col, b + j, s.b_row, kb,
                                           std::min(W, j1 - j), accumulate);
}

template <class T>
void matmul_axpy(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    // c (m <= 3 x n) = a (m x k, any strides) * b (k x n, rows at stride b_row) + bias
    constexpr index_t KB = kAxpyKBlock, JW = kAxpyColumnsPerTask<T>;
    const index_t tasks = ceil_div(s.n, JW);
#pragma omp parallel for num_threads(matmul_threads(s)) schedule(dynamic)
    for (index_t task = 0; task < tasks; ++task) {
        const index_t j0 = task * JW, j1 = std::min(s.n, j0 + JW);
        for (index_t p0 = 0; p0 < s.k; p0 += KB) {
            const index_t kb = std::min(KB, s.k - p0);
            const T* ap = a + p0 * s.a_col;
            const T* bp = b + p0 * s.b_row;
            switch (s.m) {
                case 3: axpy_rows<T, 3>(c, ap, bp, s, j0, j1, kb, p0 > 0); break;
                case 2: axpy_rows<T, 2>(c, ap, bp, s, j0, j1, kb, p0 > 0); break;
                default: axpy_rows<T, 1>(c, ap, bp, s, j0, j1, kb, p0 > 0); break;
            }
        }
        if (bias)
            for (index_t i = 0; i < s.m; ++i)
                for (index_t j = j0; j < j1; ++j) c[i * s.n + j] += bias[j];
    }
}

// --------------------------------------------------------------------------- packed path

template <class T> constexpr index_t kRowBlock = 16 * Tile<T>::MR;   // rows of C per task

template <class T>
void matmul_packed(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    // c (m x n) = a (m x k, any strides) * b (k x n, any strides) + bias
    const int nt = matmul_threads(s);
    constexpr index_t MR = Tile<T>::MR, NR = Tile<T>::NR, KC = Tile<T>::KC;
    const index_t mc = std::min(kRowBlock<T>, round_up(s.m, MR)), row_blocks = ceil_div(s.m, mc);
    const index_t nc = column_block<T>(s.n, row_blocks, nt), col_blocks = ceil_div(s.n, nc);

    std::vector<AlignedBuffer<T>> abufs, bbufs;
    for (int t = 0; t < nt; ++t) {
        abufs.push_back(aligned_buffer<T>(mc * KC));
        bbufs.push_back(aligned_buffer<T>(KC * round_up(nc, NR)));
    }

#pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (index_t task = 0; task < row_blocks * col_blocks; ++task) {
        // consecutive tasks share a row block, so its packed A rows are reused from cache
        const index_t i0 = (task / col_blocks) * mc, j0 = (task % col_blocks) * nc;
        const index_t m = std::min(mc, s.m - i0), n = std::min(nc, s.n - j0);
        const T* ai = a + i0 * s.a_row;
        const T* bj = b + j0 * s.b_col;
        T* cij = c + i0 * s.n + j0;
        gemm_block<T>(m, n, s.k,
            [&](T* dst, index_t pc, index_t kc) {
                pack_a(dst, ai + pc * s.a_col, s.a_row, s.a_col, m, kc);
                return static_cast<const T*>(dst); },
            [&](T* dst, index_t pc, index_t kc) { pack_b(dst, bj + pc * s.b_row, s.b_row, s.b_col, kc, n); },
            cij, s.n, false, abufs[thread_index()].get(), bbufs[thread_index()].get());
        if (bias)
            for (index_t i = 0; i < m; ++i)
                for (index_t j = 0; j < n; ++j) cij[i * s.n + j] += bias[j0 + j];
    }
}

// ------------------------------------------------------------------------------ entries

template <class T>
void matmul(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    // c (m x n) = a (m x k) * b (k x n) + bias (n, or null)
    if (s.k == 0) {   // empty sum: nothing for the engines to do, the result is the bias
        for (index_t i = 0; i < s.m; ++i)
            for (index_t j = 0; j < s.n; ++j) c[i * s.n + j] = bias ? bias[j] : T(0);
        return;
    }
    if (s.m <= kDotMaxRows && s.a_col == 1 && s.b_row == 1) matmul_dot(c, a, b, bias, s);
    else if (s.m <= kAxpyMaxRows && s.b_col == 1) matmul_axpy(c, a, b, bias, s);
    else matmul_packed(c, a, b, bias, s);
}

template <class T>
void column_sums(T* sums, const T* g, const MatmulSizes& s) {
    // sums (n) = g (m x n) summed over rows, accumulated in double, rows in order
    constexpr index_t JB = 256;   // columns per task
    const int nt = s.m * s.n >= kParallelMinMacs / 8 ? num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t j0 = 0; j0 < s.n; j0 += JB) {
        const index_t nb = std::min(JB, s.n - j0);
        double acc[JB] = {};
        for (index_t i = 0; i < s.m; ++i) {
            const T* row = g + i * s.n + j0;
            for (index_t j = 0; j < nb; ++j) acc[j] += row[j];
        }
        for (index_t j = 0; j < nb; ++j) sums[j0 + j] = static_cast<T>(acc[j]);
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
