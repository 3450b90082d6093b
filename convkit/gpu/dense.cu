// convkit/gpu/dense.cu -- CUDA kernels of the dense family's non-linear ops: relu, dropout,
// log_softmax and cross_entropy, forward and backward (linear runs on the conv kernels,
// convkit/gpu/linear.py). Glue: convkit/gpu/dense.py. Tests: tests/test_activation.py,
// tests/test_softmax.py (gpu case). Bench: bench/bench_gpu_memory.py -k relu.
//
// Every output is OVERWRITTEN.
//
// relu / dropout: elementwise, one thread per element in a grid-stride loop.
//
// log_softmax / cross_entropy work on rows: x is (outer, dim, inner) and row r = (o, q)
// holds the dim values x[o, :, q] at stride inner. A row is handled by a Team:
//   - a whole block (the glue's choice when inner < 32: rows are contiguous or nearly so):
//     threads stride over the row; the max and the sums go through a fixed shared-memory
//     tree; blocks loop over rows;
//   - one thread (inner >= 32: adjacent threads take adjacent rows q, q + 1, so each step
//     along dim reads consecutive addresses): the thread walks the row in order.
// Per row: m = max (NaN ignored, as the CPU: exp(NaN - m) then poisons the sum), then
// lse = m + log(sum exp(x - m)) with the sum in double. The block size and the team kind
// follow from the shape alone, so results are bit-identical run to run.
//
// nvcc --resource-usage, sm_90, CUDA 13.0 (registers float / double; static shared memory):
//   relu_forward 24 / 26, relu_backward 24 / 24, dropout_forward 24 / 28 regs
//   log_softmax_forward<256>   32 / 56 regs, 2 KiB     log_softmax_backward<256>   27 / 60 regs, 2 KiB
//   cross_entropy_forward<256> 44 / 64 regs, 2 KiB     cross_entropy_backward<256> 48 / 64 regs, 2 KiB
#include "common.cuh"

__device__ __forceinline__ float ck_exp(float v) { return expf(v); }
__device__ __forceinline__ double ck_exp(double v) { return exp(v); }
// +inf (NVRTC has no headers, hence no INFINITY macro)
template <typename T> __device__ __forceinline__ T ck_infinity() { return (T)1 / (T)0; }

// ------------------------------------------------------------------ relu, dropout

// y = x < 0 ? 0 : x (false for NaN and -0.0, which pass through, as torch.relu)
template <typename T>
__global__ void relu_forward(T* y, const T* x, index_t n) {
    CK_GRID_STRIDE_LOOP(i, n) {
        const T v = x[i];
        y[i] = v < (T)0 ? (T)0 : v;
    }
}

// grad_x = x <= 0 ? 0 : grad_out (grad_out where x is NaN)
template <typename T>
__global__ void relu_backward(T* grad_x, const T* grad_out, const T* x, index_t n) {
    CK_GRID_STRIDE_LOOP(i, n) grad_x[i] = x[i] <= (T)0 ? (T)0 : grad_out[i];
}

// y = x * (keep ? scale : 0); also the backward pass (the map is linear): grad_x = dy * (keep ? scale : 0)
template <typename T>
__global__ void dropout_forward(T* y, const T* x, const unsigned char* keep, index_t n, T scale) {
    CK_GRID_STRIDE_LOOP(i, n) y[i] = x[i] * (keep[i] ? scale : (T)0);
}

// ------------------------------------------------------------------ rows and teams

// The threads that handle one row together: a whole block (rank = threadIdx.x, size =
// blockDim.x, a power of two; tree = blockDim.x doubles of shared memory) or one thread.
struct Team {
    int rank, size;
    double* tree;   // null for a one-thread team

    __device__ double sum(double v) const {
        if (!tree) return v;
        tree[rank] = v;
        __syncthreads();
        for (int half = size / 2; half > 0; half /= 2) {
            if (rank < half) tree[rank] += tree[rank + half];
            __syncthreads();
        }
        const double total = tree[0];
        __syncthreads();
        return total;
    }

    // The largest value (NaN only if every value is NaN: comparisons with NaN are false).
    __device__ double max(double v) const {
        if (!tree) return v;
        tree[rank] = v;
        __syncthreads();
        for (int half = size / 2; half > 0; half /= 2) {
            if (rank < half && tree[rank + half] > tree[rank]) tree[rank] = tree[rank + half];
            __syncthreads();
        }
        const double top = tree[0];
        __syncthreads();
        return top;
    }
};

// fn(r, team, first) for every row r of (outer, dim, inner); first = offset of (o, 0, q).
template <class Fn>
__device__ void for_each_row(index_t outer, index_t dim, index_t inner, int thread_per_row, double* tree, Fn fn) {
    const index_t rows = outer * inner;
    if (thread_per_row) {
        const Team team{0, 1, nullptr};
        CK_GRID_STRIDE_LOOP(r, rows) fn(r, team, (r / inner) * dim * inner + r % inner);
    } else {
        const Team team{(int)threadIdx.x, (int)blockDim.x, tree};
        for (index_t r = blockIdx.x; r < rows; r += gridDim.x)   // uniform per block: barriers are safe
            fn(r, team, (r / inner) * dim * inner + r % inner);
    }
}

// The row's largest value (NaN ignored), all -inf for an all -inf row.
template <typename T>
__device__ T row_max(const T* row, index_t dim, index_t stride, const Team& team) {
    T m = -ck_infinity<T>();
    for (index_t k = team.rank; k < dim; k += team.size) {
        const T v = row[k * stride];
        m = v > m ? v : m;
    }
    return (T)team.max((double)m);
}

// log(sum exp(row)), stable: m + log(sum exp(row - m)), the sum in double.
template <typename T>
__device__ double row_logsumexp(const T* row, index_t dim, index_t stride, const Team& team) {
    const T m = row_max(row, dim, stride, team);
    double s = 0.0;
    for (index_t k = team.rank; k < dim; k += team.size) s += (double)ck_exp(row[k * stride] - m);
    return (double)m + log(team.sum(s));
}

template <typename T>
__device__ double row_sum(const T* row, index_t dim, index_t stride, const Team& team) {
    double s = 0.0;
    for (index_t k = team.rank; k < dim; k += team.size) s += (double)row[k * stride];
    return team.sum(s);
}

// ------------------------------------------------------------------ log_softmax

// y = x - logsumexp(x) along dim.
template <typename T, int kMaxThreads>
__global__ void log_softmax_forward(T* y, const T* x, index_t outer, index_t dim, index_t inner,
                                    int thread_per_row) {
    // y, x: (outer, dim, inner)
    __shared__ double tree[kMaxThreads];
    for_each_row(outer, dim, inner, thread_per_row, tree, [&](index_t, const Team& team, index_t first) {
        const T lse = (T)row_logsumexp(x + first, dim, inner, team);
        for (index_t k = team.rank; k < dim; k += team.size) y[first + k * inner] = x[first + k * inner] - lse;
    });
}

// grad_x = grad_y - exp(y) * sum(grad_y) along dim (y = log_softmax's output).
template <typename T, int kMaxThreads>
__global__ void log_softmax_backward(T* grad_x, const T* grad_y, const T* y, index_t outer, index_t dim,
                                     index_t inner, int thread_per_row) {
    // grad_x, grad_y, y: (outer, dim, inner)
    __shared__ double tree[kMaxThreads];
    for_each_row(outer, dim, inner, thread_per_row, tree, [&](index_t, const Team& team, index_t first) {
        const T total = (T)row_sum(grad_y + first, dim, inner, team);
        for (index_t k = team.rank; k < dim; k += team.size) {
            const index_t i = first + k * inner;
            grad_x[i] = grad_y[i] - ck_exp(y[i]) * total;
        }
    });
}

// ------------------------------------------------------------------ cross_entropy

// loss[r] = (1 - eps) (lse - x[target]) + eps (lse - mean(x)), 0 where target == ignore_index
// (eps = label_smoothing); rows r = (n, q) of logits (N, C = dim, inner).
template <typename T, int kMaxThreads>
__global__ void cross_entropy_forward(T* loss, const T* logits, const long long* target, index_t outer, index_t dim,
                                      index_t inner, long long ignore_index, T label_smoothing, int thread_per_row) {
    // loss, target: (outer, inner); logits: (outer, dim, inner)
    __shared__ double tree[kMaxThreads];
    const double eps = label_smoothing;
    for_each_row(outer, dim, inner, thread_per_row, tree, [&](index_t r, const Team& team, index_t first) {
        // Ignored rows run the same reductions (uniform control flow in every block; they are rare).
        const long long t = target[r];
        const T* row = logits + first;
        const double lse = row_logsumexp(row, dim, inner, team);
        const double mean = eps > 0.0 ? row_sum(row, dim, inner, team) / (double)dim : 0.0;
        if (team.rank != 0) return;
        if (t == ignore_index) {
            loss[r] = (T)0;
            return;
        }
        const double l = lse - (double)row[t * inner];
        loss[r] = (T)(eps > 0.0 ? (1.0 - eps) * l + eps * (lse - mean) : l);
    });
}

// grad[c] = scale * (softmax[c] - eps / C - (1 - eps) [c == target]), 0 on ignored rows;
// scale = row_scale[r] (the upstream gradient of the row's loss).
template <typename T, int kMaxThreads>
__global__ void cross_entropy_backward(T* grad_logits, const T* logits, const long long* target, const T* row_scale,
                                       index_t outer, index_t dim, index_t inner, long long ignore_index,
                                       T label_smoothing, int thread_per_row) {
    // grad_logits, logits: (outer, dim, inner); target, row_scale: (outer, inner)
    __shared__ double tree[kMaxThreads];
    const double eps = label_smoothing;
    for_each_row(outer, dim, inner, thread_per_row, tree, [&](index_t r, const Team& team, index_t first) {
        const long long t = target[r];
        const T* row = logits + first;
        const T lse = (T)row_logsumexp(row, dim, inner, team);   // also for ignored rows, as in the forward
        T* g = grad_logits + first;
        if (t == ignore_index) {
            for (index_t k = team.rank; k < dim; k += team.size) g[k * inner] = (T)0;
            return;
        }
        const T scale = row_scale[r];
        const T uniform = (T)((double)scale * eps / (double)dim), hit = (T)((double)scale * (1.0 - eps));
        for (index_t k = team.rank; k < dim; k += team.size) {
            const T v = ck_exp(row[k * inner] - lse) * scale - uniform;
            g[k * inner] = k == t ? v - hit : v;
        }
    });
}
